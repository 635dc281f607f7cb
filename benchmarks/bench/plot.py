"""``bench.png``: per configuration, latency percentiles and reply sources against offered load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.bench.results import BenchResult, ConfigResult
from benchmarks.bench.stats import SOURCES
from benchmarks.bench.summary import PhaseSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PERCENTILES = (("p50", "o"), ("p95", "s"), ("p99", "^"))
COLOURS = {"canned": "#4c9f70", "retrieval": "#3b75af", "generative": "#b07aa1", "fallback": "#d1495b"}


def points(config: ConfigResult) -> list[PhaseSummary]:
    """The sweep and the overload, by offered rate."""
    phases = [*config.sweep, *([config.overload] if config.overload else [])]
    return sorted(phases, key=lambda p: p.offered_rps)


def write_png(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in result.configs if points(c)]  # a failed configuration shows what it measured
    fig, axes = plt.subplots(max(1, len(configs)), 2, figsize=(12, 3.6 * max(1, len(configs))), squeeze=False)
    for row, config in zip(axes, configs, strict=False):
        _latency(row[0], config, result.budget_ms)
        _sources(row[1], config)
    if not configs:
        axes[0][0].text(0.5, 0.5, "no configuration measured", ha="center")
    fig.suptitle(f"banter bench: {result.cores} cores, budget {result.budget_ms:g} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(ax: Axes, config: ConfigResult, budget_ms: float) -> None:
    """The sweep as lines; the overload phase (a separate run after it) as unconnected markers."""
    sweep = sorted(config.sweep, key=lambda p: p.offered_rps)
    for name, marker in PERCENTILES:
        line = ax.plot(
            [p.offered_rps for p in sweep], [getattr(p.e2e_ms, name) for p in sweep], marker=marker, label=name
        )
        if config.overload is not None:
            ax.plot(
                [config.overload.offered_rps],
                [getattr(config.overload.e2e_ms, name)],
                marker=marker,
                linestyle="none",
                markerfacecolor="none",
                markersize=9,
                color=line[0].get_color(),
            )
    ax.axhline(budget_ms, color="grey", linestyle="--", label="budget")
    ax.set(title=f"{config.name}: end-to-end latency (hollow: overload)", xlabel="offered msg/s", ylabel="ms")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)


def _sources(ax: Axes, config: ConfigResult) -> None:
    phases = points(config)
    labels = [f"{p.offered_rps:g}" + ("\noverload" if p.phase == "overload" else "") for p in phases]
    bottom = [0.0] * len(phases)
    for source in SOURCES:
        shares = [100 * p.shares.get(source, 0.0) for p in phases]
        ax.bar(labels, shares, bottom=bottom, label=source, color=COLOURS[source])
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set(title=f"{config.name}: reply sources", xlabel="offered msg/s", ylabel="% of replies", ylim=(0, 100))
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
