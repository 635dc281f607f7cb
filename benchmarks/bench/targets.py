"""The issue's targets, checked against a run's figures (pure; None = not measured)."""

from __future__ import annotations

import math

from benchmarks.bench.results import BenchResult, Check, ConfigResult
from benchmarks.bench.summary import PhaseSummary

TARGET_RPS = 116.0
OVERLOAD_P99_MS = 1500.0
OVERLOAD_MAX_FALLBACK = 0.01
CEILING_SHARE = 0.5
BASELINE_FACTOR = 5.0
CANNED_P50_MS = 30.0
RSS_LIMIT_BYTES = 2 * 1024**3
SATURATED_SHARE = 0.95
ONE = "one"


def checks(result: BenchResult) -> list[Check]:
    """Every target, in the issue's order; a configuration that failed says so in its figures."""
    one = result.config(ONE)
    overloads = [check_overload(c) for c in result.configs if c.overload is not None]
    found = [check_throughput(one), *overloads, check_efficiency(one, result),
             check_light(one.light if one else None), check_memory(result)]  # fmt: skip
    failed = [f"`{c.name}`: {c.error}" for c in result.configs if c.error]
    if failed:  # the figures above are those measured before the failure
        found.append(Check("every configuration ran to the end", "; ".join(failed), False))
    return found


def check_throughput(one: ConfigResult | None) -> Check:
    """(1) one worker sustains >= 116 msg/s with p99 within the budget."""
    name = f"1. one worker sustains >= {TARGET_RPS:.0f} msg/s, p99 <= budget"
    if one is None or not one.sweep:
        return Check(name, "not measured (configuration `one` not run)", None)
    gen = ", ".join(f"{p.offered_rps:g}/s {_pct(p.generator_share)}" for p in one.sweep)
    best = one.highest_sustained()
    if best is None:
        return Check(name, f"no offered rate sustained; generator share {gen}", False)
    figure = (f"highest sustained {best.offered_rps:g} msg/s ({best.throughput_rps:.1f} replies/s, "
              f"p99 {best.e2e_ms.p99:.0f} ms, fallback {_pct(best.fallback_share)}); generator share {gen}")
    return Check(name, figure, best.offered_rps >= TARGET_RPS)


def check_overload(config: ConfigResult) -> Check:
    """(2) at 2x the highest sustained rate: nothing unanswered, p99 < 1.5 s, < 1% fallback lines."""
    phase = config.overload
    assert phase is not None
    name = f"2. `{config.name}` at {phase.offered_rps:g} msg/s: all answered, p99 < 1.5 s, fallback < 1%"
    figure = (f"{phase.unanswered} unanswered of {phase.sent}, p99 {phase.e2e_ms.p99:.0f} ms, "
              f"fallback {_pct(phase.fallback_share)}")
    ok = phase.unanswered == 0 and phase.e2e_ms.p99 < OVERLOAD_P99_MS and phase.fallback_share < OVERLOAD_MAX_FALLBACK
    return Check(name, figure, ok)


def check_efficiency(one: ConfigResult | None, result: BenchResult) -> Check:
    """(3) the pipeline's model-answered capacity against the in-process ceiling and the naive baseline.

    A capacity is measured only where the workers fell behind the offered rate
    (saturated); a worker that kept up with everything offered has a capacity
    of at least what it did, and a ratio that bound cannot settle stays undecided.
    """
    name = "3. non-generative path >= 50% of the in-process ceiling and >= 5x the unbatched baseline"
    best = one.capacity_phase() if one else None
    if best is None:
        return Check(name, "not measured (configuration `one` not run)", None)
    capacity, full = best.model_rps, saturated(best)
    parts = [f"one worker {capacity:.1f} model replies/s{'' if full else ' (kept up: at least)'}"]
    ceiling = result.models.best_nongen() if result.models else None
    vs_ceiling = vs_baseline = None
    if ceiling:
        parts.append(f"{_pct(capacity / ceiling)} of in-process {ceiling:.1f} msg/s")
        vs_ceiling = _judge(capacity / ceiling, CEILING_SHARE, lower=True, upper=full)
    base = result.baseline
    if base is not None and base.model_rps > 0:
        kept_up = "" if saturated(base) else f" (kept up with {base.offered_rps:g}/s: at least; raise --baseline-rate)"
        parts.append(f"{capacity / base.model_rps:.1f}x the unbatched worker's {base.model_rps:.1f} replies/s{kept_up}")
        vs_baseline = _judge(capacity / base.model_rps, BASELINE_FACTOR, lower=saturated(base), upper=full)
    return Check(name, "; ".join(parts), _all(vs_ceiling, vs_baseline))


def saturated(phase: PhaseSummary) -> bool:
    """The workers fell behind the offered rate: model replies/s is their capacity, not a lower bound."""
    return phase.model_rps < SATURATED_SHARE * phase.offered_rps


def _judge(measured: float, threshold: float, lower: bool, upper: bool) -> bool | None:
    """Pass or fail where the measured ratio is a bound of the true one that settles it (lower: true >= measured)."""
    if measured >= threshold and lower:
        return True
    if measured < threshold and upper:
        return False
    return None


def _all(*results: bool | None) -> bool | None:
    """False if any failed, else None if any is missing, else True."""
    if False in results:
        return False
    return None if None in results else True


def check_light(light: PhaseSummary | None) -> Check:
    """(4) a canned reply at light load: p50 < 30 ms end to end."""
    name = f"4. light load (1 msg/s): canned reply p50 < {CANNED_P50_MS:.0f} ms end to end"
    if light is None:
        return Check(name, "not measured", None)
    canned = light.sources.get("canned", 0)
    if canned == 0:
        return Check(name, f"no canned reply among {light.answered}", False)
    figure = (f"canned p50 {light.canned_p50_ms:.1f} ms ({canned}/{light.sent} canned; "
              f"all replies p50 {light.e2e_ms.p50:.1f} ms)")
    return Check(name, figure, light.canned_p50_ms < CANNED_P50_MS)


def check_memory(result: BenchResult) -> Check:
    """(5) no worker's resident memory reaches 2 GiB."""
    name = "5. worker RSS < 2 GiB"
    phases = [p for c in result.configs for p in c.phases] + ([result.baseline] if result.baseline else [])
    top = max((p.health.rss_max_bytes for p in phases), default=0)
    if top == 0:
        return Check(name, "not measured", None)
    return Check(name, f"max {top / 1024**2:.0f} MiB (one worker's process group)", top < RSS_LIMIT_BYTES)


def _pct(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{100 * share:.1f}%"
