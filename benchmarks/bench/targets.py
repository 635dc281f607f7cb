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
    found = [
        check_throughput(one),
        *overloads,
        check_efficiency(one, result),
        check_light(one.light if one else None),
        check_memory(result),
    ]
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
    figure = (
        f"highest sustained {best.offered_rps:g} msg/s ({best.throughput_rps:.1f} replies/s, "
        f"p99 {best.e2e_ms.p99:.0f} ms, fallback {_pct(best.fallback_share)}); generator share {gen}"
    )
    return Check(name, figure, best.offered_rps >= TARGET_RPS)


def check_overload(config: ConfigResult) -> Check:
    """(2) at 2x the highest sustained rate: nothing unanswered, p99 < 1.5 s, < 1% fallback lines."""
    phase = config.overload
    assert phase is not None
    name = f"2. `{config.name}` at {phase.offered_rps:g} msg/s: all answered, p99 < 1.5 s, fallback < 1%"
    figure = (
        f"{phase.unanswered} unanswered of {phase.sent}, p99 {phase.e2e_ms.p99:.0f} ms, "
        f"fallback {_pct(phase.fallback_share)}"
    )
    ok = phase.unanswered == 0 and phase.e2e_ms.p99 < OVERLOAD_P99_MS and phase.fallback_share < OVERLOAD_MAX_FALLBACK
    return Check(name, figure, ok)


def check_efficiency(one: ConfigResult | None, result: BenchResult) -> Check:
    """(3) the pipeline's model-answered capacity against the in-process ceiling and the naive baseline.

    A capacity is the most model replies/s seen: measured when the workers fell
    behind some offered rate, only a lower bound when they kept up with every
    rate offered. A ratio passes or fails when its bounds settle it, and stays
    undecided otherwise (offer more load).
    """
    name = "3. non-generative path >= 50% of the in-process ceiling and >= 5x the unbatched baseline"
    if one is None or one.capacity_phase() is None:
        return Check(name, "not measured (configuration `one` not run)", None)
    low, high = capacity_bounds([*one.sweep, *([one.overload] if one.overload else [])])
    kept_up = " (kept up with every rate)" if math.isinf(high) else ""
    parts = [f"one worker {_range(low, high)} model replies/s{kept_up}"]
    ceiling = result.models.best_nongen() if result.models else None
    vs_ceiling = vs_baseline = None
    if ceiling:
        parts.append(f"{_range(100 * low / ceiling, 100 * high / ceiling)}% of in-process {ceiling:.1f} msg/s")
        vs_ceiling = _judge(low / ceiling, high / ceiling, CEILING_SHARE)
    if result.baseline is not None and result.baseline.model_rps > 0:
        base_low, base_high = capacity_bounds([result.baseline])
        kept_up = " (it kept up: raise --baseline-rate)" if math.isinf(base_high) else ""
        times = _range(low / base_high, high / base_low)
        parts.append(
            f"{'an unknown multiple of' if times == 'unknown' else times + 'x'} the unbatched worker's "
            f"{_range(base_low, base_high)} replies/s{kept_up}"
        )
        vs_baseline = _judge(low / base_high, high / base_low, BASELINE_FACTOR)
    return Check(name, "; ".join(parts), _all(vs_ceiling, vs_baseline))


def capacity_bounds(phases: list[PhaseSummary]) -> tuple[float, float]:
    """(at least, at most) model replies/s: the most seen, exact once the workers fell behind an offered rate."""
    best = max((p.model_rps for p in phases if not math.isnan(p.model_rps)), default=0.0)
    fell_behind = any(p.model_rps < SATURATED_SHARE * p.offered_rps for p in phases)
    return best, best if fell_behind else math.inf


def _judge(low: float, high: float, threshold: float) -> bool | None:
    """Pass if even the lower bound reaches ``threshold``, fail if even the upper bound misses it."""
    if low >= threshold:
        return True
    if high < threshold:
        return False
    return None


def _range(low: float, high: float) -> str:
    """A bounded figure in words: exact, at least, at most, or unknown."""
    if math.isinf(high):
        return "unknown" if low == 0 else f"at least {low:.1f}"
    if low == 0:
        return f"at most {high:.1f}"
    return f"{low:.1f}" if high - low < 0.05 else f"{low:.1f} to {high:.1f}"


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
    figure = (
        f"canned p50 {light.canned_p50_ms:.1f} ms ({canned}/{light.sent} canned; "
        f"all replies p50 {light.e2e_ms.p50:.1f} ms)"
    )
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
