"""The reports: JSON without NaN, the Markdown tables, the PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.bench import targets
from benchmarks.bench.report import markdown, write_json
from benchmarks.bench.results import BenchResult, ConfigResult, EchoSummary, ModelCeilings
from benchmarks.bench.stats import Latency, PhaseRecord, Seen
from benchmarks.bench.summary import Health, PhaseSummary, summarise

SOURCES = ("canned", "retrieval", "generative")


def _summary(offered: float, phase: str, fallback_every: int = 0) -> PhaseSummary:
    record = PhaseRecord()
    for i in range(50):
        mid = f"m{i}"
        record.sent[mid] = 100.0 + i / offered
        source = "fallback" if fallback_every and i % fallback_every == 0 else SOURCES[i % 3]
        record.replies[mid] = Seen(mid, record.sent[mid] + 0.05, source, 45.0)
    return summarise(record, "one", phase, offered, 1000.0, 0.2, Health(0, 800 * 1024**2, 0.004))


def _result() -> BenchResult:
    one = ConfigResult(
        "one",
        ["all"],
        sweep=[_summary(10, "10/s"), _summary(30, "30/s", 5)],
        overload=_summary(60, "overload", 2),
        light=_summary(1, "light"),
    )
    result = BenchResult(
        "banter bench --rates 10,30",
        1000.0,
        2,
        configs=[one, ConfigResult("two", ["all", "all"], error="TimeoutError: not ready")],
        models=ModelCeilings(16, 400.0, 150.0, None, 3.0, 4),
        echo=[
            EchoSummary(10.0, 100, 100, 10.0, Latency(2.0, 3.0, 4.0, 5.0)),
            EchoSummary(0.0, 2000, 1990, math.nan, Latency(2.0, 3.0, 4.0, 5.0)),
        ],
        baseline=_summary(60, "60/s", 2),
    )
    result.checks = targets.checks(result)
    return result


def test_markdown_has_the_targets_and_one_row_per_phase() -> None:
    text = markdown(_result())
    assert "| target | measured | result |" in text
    assert "| light | 1 |" in text and "| 10/s | 10 |" in text and "| overload | 60 |" in text
    assert "**Failed**: TimeoutError: not ready" in text
    assert "| unpaced | 2000 | 1990 |" in text and "Naive baseline" in text
    assert "| generator | 4 | 3.0 |" in text


def test_json_is_strict(tmp_path: Path) -> None:
    write_json(_result(), tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert data["configs"][0]["sweep"][0]["offered_rps"] == 10
    assert data["echo"][1]["throughput_rps"] is None


def test_plot_is_a_png(tmp_path: Path) -> None:
    from benchmarks.bench.plot import write_png

    write_png(_result(), tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
