"""Live latency estimates, batch planning against deadlines, and degradation hysteresis."""

from __future__ import annotations

import pytest

from models.latency import Degrader, LatencyTracker, plan_batch


def test_estimate_is_the_quantile_of_the_window() -> None:
    tracker = LatencyTracker(window=100, quantile=0.95)
    for i in range(200):
        tracker.observe(0.010 if i % 10 else 0.100)
    assert 0.010 <= tracker.estimate() <= 0.100
    assert len(tracker) == 100


def test_prior_before_any_sample() -> None:
    assert LatencyTracker(prior_s=0.2).estimate() == 0.2


def test_plan_keeps_what_fits_and_skips_what_would_miss() -> None:
    now = 100.0
    deadlines = [100.5, 100.05, 100.5, 100.15]
    assert plan_batch(deadlines, now, per_item_s=0.1) == [True, False, True, False]


def test_skipped_items_do_not_delay_the_rest() -> None:
    assert plan_batch([100.01, 100.1], 100.0, 0.1) == [False, True]


def test_degrader_rises_on_misses_and_recovers_slowly() -> None:
    degrader = Degrader(enter=0.2, leave=0.05, window=20, calm=30)
    for _ in range(20):
        degrader.observe(True)
    assert degrader.level >= 1
    level = degrader.level
    for _ in range(29):
        degrader.observe(False)
    assert degrader.level == level  # hysteresis: not yet
    for _ in range(2):
        degrader.observe(False)
    assert degrader.level == level - 1


def test_degrader_stays_calm_when_misses_are_rare() -> None:
    degrader = Degrader(enter=0.2, window=20)
    for i in range(200):
        degrader.observe(i % 25 == 0)
    assert degrader.level == 0


def test_tracker_goes_stale_without_samples() -> None:
    tracker = LatencyTracker()
    assert tracker.stale(5.0, now=0.0)
    tracker.observe(2.0, now=100.0)
    assert not tracker.stale(5.0, now=104.0)
    assert tracker.stale(5.0, now=105.0)


def test_the_estimate_follows_new_samples_within_a_few_observations() -> None:
    tracker = LatencyTracker(quantile=0.5, refresh_every=4)
    for _ in range(20):
        tracker.observe(0.01)
    assert tracker.estimate() == pytest.approx(0.01)
    for _ in range(40):
        tracker.observe(1.0)
    assert tracker.estimate() == pytest.approx(1.0)  # recomputed: the window is now mostly slow samples
