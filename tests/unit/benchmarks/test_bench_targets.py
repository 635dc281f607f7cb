"""The issue's targets against made-up figures."""

from __future__ import annotations

import dataclasses
import math

from benchmarks.bench.results import BenchResult, ConfigResult, ModelCeilings
from benchmarks.bench.stats import Latency
from benchmarks.bench.summary import Health, PhaseSummary
from benchmarks.bench.targets import (
    check_efficiency,
    check_light,
    check_memory,
    check_overload,
    check_throughput,
    checks,
)


def _phase(offered: float, sustained: bool = True, model_rps: float | None = None, **changes: object) -> PhaseSummary:
    phase = PhaseSummary(
        config="one",
        phase=f"{offered:g}/s",
        offered_rps=offered,
        sent=100,
        answered=100,
        unanswered=0,
        duplicates=0,
        send_errors=0,
        seconds=10.0,
        achieved_rps=offered,
        throughput_rps=offered,
        model_rps=offered if model_rps is None else model_rps,
        e2e_ms=Latency(50.0, 200.0, 400.0, 500.0),
        reply_ms=Latency(40.0, 190.0, 390.0, 490.0),
        sources={"canned": 30, "retrieval": 70},
        shares={"canned": 0.3, "retrieval": 0.7, "generative": 0.0, "fallback": 0.0},
        fallback_share=0.0,
        generator_share=0.1,
        canned_p50_ms=12.0,
        sustained=sustained,
        health=Health(0, 900 * 1024**2, 0.01),
    )
    return dataclasses.replace(phase, **changes)  # type: ignore[arg-type]


def test_throughput_target_takes_the_highest_sustained_rate() -> None:
    one = ConfigResult("one", ["all"], sweep=[_phase(50), _phase(120), _phase(150, sustained=False)])
    check = check_throughput(one)
    assert check.passed is True and "highest sustained 120 msg/s" in check.figure
    assert "150/s 10.0%" in check.figure  # the generator share at every rate
    assert check_throughput(ConfigResult("one", ["all"], sweep=[_phase(100)])).passed is False
    assert check_throughput(ConfigResult("one", ["all"], sweep=[_phase(200, sustained=False)])).passed is False
    assert check_throughput(None).passed is None


def test_overload_target() -> None:
    good = ConfigResult("one", ["all"], overload=_phase(240, sustained=False))
    assert check_overload(good).passed is True
    for bad in ({"unanswered": 1}, {"e2e_ms": Latency(50, 900, 1500, 2000)}, {"fallback_share": 0.01}):
        assert check_overload(ConfigResult("one", ["all"], overload=_phase(240, **bad))).passed is False


def test_efficiency_target_needs_the_ceiling_and_the_baseline() -> None:
    one = ConfigResult("one", ["all"], sweep=[_phase(100, model_rps=100.0)], overload=_phase(200, model_rps=120.0))
    result = BenchResult(
        "bench",
        1000.0,
        2,
        configs=[one],
        models=ModelCeilings(16, nongen_mps=200.0),
        baseline=_phase(200, model_rps=20.0),
    )
    check = check_efficiency(one, result)
    assert check.passed is True and "60.0% of in-process 200.0" in check.figure and " 6.0x" in check.figure
    result.baseline = _phase(200, model_rps=30.0)
    assert check_efficiency(one, result).passed is False
    result.baseline = None
    assert check_efficiency(one, result).passed is None
    result.models = ModelCeilings(16, nongen_mps=300.0, nongen_shared_mps=400.0)
    assert check_efficiency(one, result).passed is False  # 30% of the faster ceiling fails whatever the baseline


def test_a_worker_that_kept_up_gives_only_a_bound() -> None:
    kept_up = ConfigResult("one", ["all"], sweep=[_phase(100, model_rps=100.0)])
    saturated = ConfigResult("one", ["all"], overload=_phase(200, model_rps=120.0))
    idle_baseline = _phase(20, model_rps=20.0)
    result = BenchResult("bench", 1000.0, 2, models=ModelCeilings(16, nongen_mps=150.0), baseline=idle_baseline)
    check = check_efficiency(kept_up, result)
    assert "at least 100.0 model replies/s (kept up with every rate)" in check.figure
    assert "an unknown multiple of the unbatched worker's at least 20.0 replies/s (it kept up" in check.figure
    assert check.passed is None  # 67% of the ceiling passes, but 5x of a baseline that kept up is not known
    result.baseline = _phase(40, model_rps=10.0)
    assert check_efficiency(kept_up, result).passed is True  # at least 10x
    result.baseline = _phase(40, model_rps=25.0)
    assert check_efficiency(kept_up, result).passed is None  # at least 4x: could be more
    result.baseline = idle_baseline
    assert check_efficiency(saturated, result).passed is None  # at most 6x: could be less
    result.baseline = _phase(20, model_rps=19.0)  # kept up within 5%: not saturated either
    result.models = ModelCeilings(16, nongen_mps=400.0)
    assert check_efficiency(kept_up, result).passed is None  # at least 25% of the ceiling: could be 50%
    assert check_efficiency(saturated, result).passed is False  # 30% of the ceiling, measured


def test_light_and_memory_targets() -> None:
    assert check_light(_phase(1)).passed is True
    assert check_light(_phase(1, canned_p50_ms=31.0)).passed is False
    assert check_light(_phase(1, sources={"retrieval": 20})).passed is False
    assert check_light(None).passed is None
    result = BenchResult("bench", 1000.0, 2, configs=[ConfigResult("one", ["all"], sweep=[_phase(10)])])
    assert check_memory(result).passed is True
    result.baseline = _phase(10, health=Health(0, 2 * 1024**3, None))
    assert check_memory(result).passed is False
    assert check_memory(BenchResult("bench", 1000.0, 2)).passed is None


def test_every_target_is_listed_even_with_nothing_measured() -> None:
    found = checks(BenchResult("bench", 1000.0, 2, configs=[ConfigResult("one", ["all"], error="boom")]))
    assert [c.target[:2] for c in found] == ["1.", "3.", "4.", "5.", "ev"]
    assert all(c.passed is None for c in found[:-1]) and found[-1].passed is False
    assert math.isnan(ConfigResult("one", ["all"]).capacity())
