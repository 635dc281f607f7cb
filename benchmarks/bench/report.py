"""The run's reports: ``bench.json`` (everything), ``bench.md`` (tables) and ``bench.png`` (plot)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.bench.results import BenchResult, Check, EchoSummary, ModelCeilings
from benchmarks.bench.stats import SOURCES
from benchmarks.bench.summary import PhaseSummary

DEFINITIONS = (
    "Latency is end to end as a platform sees it: from producing the message to the reply reaching the "
    "benchmark's consumer; `reply ms` is the reply's own `latency_ms` (message in Kafka to reply produced).",
    "Percentiles interpolate linearly between closest ranks (numpy's default).",
    "replies/s is the sustained throughput: distinct replies arriving in the steady window (the sending "
    "period without its first part), divided by its length; model replies/s leaves out fallback lines.",
    "An offered rate is sustained when replies/s >= 95% of it, p99 <= the budget and fallback lines < 1% "
    "(the router answers every message at its deadline, so replies/s alone cannot show overload).",
    "Shares are of the replies received; unanswered counts messages with no reply after the drain timeout.",
)
PHASE_HEAD = (
    "| phase | offered/s | sent/s | sent | answered | unanswered | replies/s | model replies/s | sustained "
    "| p50 ms | p95 ms | p99 ms | max ms | reply ms p50 | reply ms p99 | canned | retrieval | generative "
    "| fallback | dead letters | RSS MiB | loop lag ms |"
)


def write_json(result: BenchResult, path: Path) -> None:
    path.write_text(json.dumps(_plain(dataclasses.asdict(result)), indent=1) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def markdown(result: BenchResult) -> str:
    lines = [
        "# banter bench",
        "",
        f"`{result.command}`; {result.cores} cores; budget {result.budget_ms:g} ms.",
        "",
        *(f"- {d}" for d in DEFINITIONS),
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
        *(_check_row(c) for c in result.checks),
        "",
        "## Offered load",
        "",
    ]
    for config in result.configs:
        lines += [f"### `{config.name}`: {len(config.workers)} worker(s), roles {' | '.join(config.workers)}", ""]
        rows = [p for p in (config.light, *config.sweep, config.overload) if p is not None]
        if rows:
            lines += [PHASE_HEAD, _separator(PHASE_HEAD), *(_phase_row(p) for p in rows), ""]
        if config.error:
            lines += [f"**Failed**: {config.error}", ""]
    lines += ["## Ceilings", "", *_models(result.models), *_echo(result.echo), *_baseline(result.baseline)]
    if result.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in result.notes), ""]
    return "\n".join(lines)


def _check_row(check: Check) -> str:
    verdict = {True: "pass", False: "**FAIL**", None: "not measured"}[check.passed]
    return f"| {check.target} | {check.figure} | {verdict} |"


def _phase_row(p: PhaseSummary) -> str:
    shares = [_pct(p.shares.get(s, 0.0)) for s in SOURCES]
    lag = "" if p.health.loop_lag_max_s is None else f"{1000 * p.health.loop_lag_max_s:.0f}"
    e2e, reply = p.e2e_ms, p.reply_ms
    cells = [
        p.phase,
        f"{p.offered_rps:g}",
        _f(p.achieved_rps),
        str(p.sent),
        str(p.answered),
        str(p.unanswered),
        _f(p.throughput_rps),
        _f(p.model_rps),
        "yes" if p.sustained else "no",
        *(_f(v, 0) for v in (e2e.p50, e2e.p95, e2e.p99, e2e.max, reply.p50, reply.p99)),
        *shares,
        str(p.health.dead_letters),
        f"{p.health.rss_max_bytes / 1024**2:.0f}",
        lag,
    ]
    return "| " + " | ".join(cells) + " |"


def _models(models: ModelCeilings | None) -> list[str]:
    if models is None:
        return []
    rows = [
        ("sentence encoder alone", models.batch, models.encoder_mps),
        ("intent + responder, each encoding (as the worker runs them)", models.batch, models.nongen_mps),
        ("encode once, intent head + responder", models.batch, models.nongen_shared_mps),
        ("generator", models.generator_batch, models.generator_mps),
    ]
    out = [
        "### Models in this process, no Kafka",
        "",
        "| path | batch | msg/s |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {batch} | {_f(mps)} |" for name, batch, mps in rows),
        "",
    ]
    return out + ([f"Not measured: {models.error}", ""] if models.error else [])


def _echo(echo: list[EchoSummary]) -> list[str]:
    if not echo:
        return []
    head = "| offered/s | sent | received | msg/s | p50 ms | p95 ms | p99 ms | max ms |"
    rows = [
        f"| {'unpaced' if e.offered_rps == 0 else f'{e.offered_rps:g}'} | {e.sent} | {e.received} | "
        f"{_f(e.throughput_rps)} | {_f(e.latency_ms.p50)} | {_f(e.latency_ms.p95)} | {_f(e.latency_ms.p99)} | "
        f"{_f(e.latency_ms.max)} |"
        for e in echo
    ]
    return ["### Kafka produce → consume, no models", "", head, _separator(head), *rows, ""]


def _baseline(baseline: PhaseSummary | None) -> list[str]:
    if baseline is None:
        return []
    return [
        "### Naive baseline: one worker, `BANTER_MAX_BATCH=1` (unbatched inference)",
        "",
        PHASE_HEAD,
        _separator(PHASE_HEAD),
        _phase_row(baseline),
        "",
    ]


def _separator(head: str) -> str:
    return "|" + " --- |" * (head.count("|") - 1)


def _f(value: float | None, digits: int = 1) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"
