"""The benchmark's arithmetic: percentiles, windows, rates, shares, the sustained rule."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from benchmarks.bench.stats import (
    Latency,
    PhaseRecord,
    Seen,
    end_to_end_ms,
    is_sustained,
    percentile,
    rate_in,
    shares,
    steady_window,
)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_percentile_matches_numpys_linear_method(n: int, q: float) -> None:
    values = [random.Random(n).uniform(0, 1000) for _ in range(n)]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, 100 * q, method="linear")))


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile([40.0, 10.0, 30.0, 20.0], 0.5) == 25.0  # order does not matter
    assert percentile([5.0], 0.99) == 5.0


def test_percentile_of_nothing_is_nan_and_bad_quantiles_raise() -> None:
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_latency_summary() -> None:
    latency = Latency.of([float(v) for v in range(1, 101)])
    assert (latency.p50, latency.max) == (50.5, 100.0)
    assert latency.p99 == pytest.approx(99.01)
    assert math.isnan(Latency.of([]).p50) and math.isnan(Latency.of([]).max)


def test_steady_window_skips_the_warmup_share() -> None:
    assert steady_window([100.0, 110.0, 105.0], 0.2) == (102.0, 110.0)
    assert steady_window([], 0.2) == (0.0, 0.0)


def test_rate_counts_events_inside_the_window() -> None:
    times = [0.5 * i for i in range(41)]  # 2 per second over 20 s
    assert rate_in(times, (10.0, 20.0)) == pytest.approx(2.1)  # both ends count: 21 events in 10 s
    assert math.isnan(rate_in(times, (5.0, 5.0)))


def test_shares_name_every_source() -> None:
    got = shares(["canned", "canned", "fallback", "retrieval"])
    assert got == {"canned": 0.5, "retrieval": 0.25, "generative": 0.0, "fallback": 0.25}
    assert shares([]) == {"canned": 0.0, "retrieval": 0.0, "generative": 0.0, "fallback": 0.0}
    assert shares(["other"])["other"] == 1.0


def test_end_to_end_runs_from_produce_to_arrival() -> None:
    record = PhaseRecord(sent={"a": 10.0, "b": 11.0})
    record.replies = {"a": Seen("a", 10.25, "canned", 200.0), "x": Seen("x", 12.0, "canned", 1.0)}
    assert end_to_end_ms(record) == [250.0]


@pytest.mark.parametrize(
    ("throughput", "p99", "fallback", "held"),
    [
        (95.0, 1000.0, 0.0, True),
        (94.9, 500.0, 0.0, False),
        (100.0, 1000.1, 0.0, False),
        (100.0, 500.0, 0.01, False),
        (math.nan, 500.0, 0.0, False),
        (100.0, math.nan, 0.0, False),
    ],
)
def test_sustained_needs_throughput_latency_and_few_fallbacks(
    throughput: float, p99: float, fallback: float, held: bool
) -> None:
    assert is_sustained(100.0, throughput, p99, fallback, budget_ms=1000.0) is held
