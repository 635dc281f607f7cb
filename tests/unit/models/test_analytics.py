"""Windowed analytics: each message counted once, windows folded and expired, partitions summed."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import pytest

from models import analytics
from models.analytics import HOUR_S, MINUTE_S, Shard

NOW = 1_750_000_000.0 - 1_750_000_000.0 % HOUR_S + 30 * MINUTE_S + 5  # half past some hour


@dataclass(frozen=True)
class Cand:
    model: str
    status: str = "ok"
    latency_ms: float = 10.0
    picked: bool = False
    late: bool = False


@dataclass(frozen=True)
class Ev:
    message_id: str
    at: float = NOW
    turn: int = 1
    intent: str | None = "greeting"
    source: str = "canned"
    fallback_reason: str | None = None
    latency_ms: float = 50.0
    flags: tuple[str, ...] = ()
    candidates: tuple[Cand, ...] = field(default_factory=tuple)


def test_a_message_counts_once_even_when_repeated_with_another_time() -> None:
    shard = Shard(0, {})
    assert shard.add(Ev("m1", flags=("love_declaration",), intent="love_declaration"), 0, NOW)
    assert not shard.add(Ev("m1"), 1, NOW)  # the router sent it again
    assert not shard.add(Ev("m1", at=NOW - 300), 2, NOW)  # again, stamped in another minute
    assert shard.add(Ev("m2", source="retrieval", fallback_reason="deadline"), 3, NOW)
    result = analytics.report(shard.records.items(), NOW)["last_hour"]
    assert result["messages"] == 2
    assert result["love_declarations"] == 1
    assert result["intents"] == {"greeting": 1, "love_declaration": 1}
    assert result["sources"] == {"canned": 1, "retrieval": 1}
    assert result["fallback_reasons"] == {"deadline": 1}
    assert result["not_preferred_rate"] == 0.5


def test_a_replay_after_a_crash_counts_nothing_twice() -> None:
    """State restored from the changelog (a JSON round trip) still knows what it counted."""
    import json

    shard = Shard(3, {})
    for i in range(50):
        shard.add(Ev(f"m{i}"), i, NOW)
    restored = Shard(3, json.loads(json.dumps(shard.records)))
    counted = [restored.add(Ev(f"m{i}"), i, NOW) for i in range(40, 60)]
    assert counted == [False] * 10 + [True] * 10
    assert analytics.report(restored.records.items(), NOW)["last_hour"]["messages"] == 60


def test_ids_are_forgotten_past_the_hold_so_memory_stays_bounded() -> None:
    shard = Shard(0, {})
    shard.add(Ev("old", at=NOW - 600), 0, NOW)
    shard.add(Ev("new"), analytics.HOLD_OFFSETS + 1, NOW)
    shard.tidy(NOW)
    ids = [record["ids"] for record in shard.records.values()]
    assert sum(len(i) for i in ids) == 1
    assert analytics.report(shard.records.items(), NOW)["last_hour"]["messages"] == 2


def test_old_minutes_fold_into_their_hour_once_even_if_the_fold_is_repeated() -> None:
    shard = Shard(1, {})
    two_hours_ago = NOW - 2 * HOUR_S
    for i in range(5):
        shard.add(Ev(f"m{i}", at=two_hours_ago), i, NOW)
    shard.add(Ev("recent"), analytics.HOLD_OFFSETS + 10, NOW)
    before = analytics.report(shard.records.items(), NOW)
    leftover = {k: v for k, v in shard.records.items() if "|m|" in k}  # a crash before the minute's tombstone
    shard.tidy(NOW)
    changes = shard.changes()
    hour_key = analytics.record_key(1, "h", analytics.floor_to(two_hours_ago, HOUR_S))
    minute_key = analytics.record_key(1, "m", analytics.floor_to(two_hours_ago, MINUTE_S))
    assert list(changes).index(hour_key) < list(changes).index(minute_key)  # the hour is written first
    assert changes[minute_key] is None
    crashed = Shard(1, {**shard.records, minute_key: leftover[minute_key]})
    after = analytics.report(crashed.records.items(), NOW)
    assert after["last_week"]["messages"] == before["last_week"]["messages"] == 6
    assert after["last_hour"]["messages"] == 1
    crashed.tidy(NOW)
    assert minute_key not in crashed.records
    assert analytics.report(crashed.records.items(), NOW)["last_week"]["messages"] == 6


def test_a_late_event_for_a_folded_minute_still_counts() -> None:
    shard = Shard(0, {})
    old = NOW - 2 * HOUR_S
    shard.add(Ev("a", at=old), 0, NOW)
    shard.add(Ev("b"), analytics.HOLD_OFFSETS + 1, NOW)
    shard.tidy(NOW)
    shard.add(Ev("c", at=old), analytics.HOLD_OFFSETS + 2, NOW)
    assert analytics.report(shard.records.items(), NOW)["last_week"]["messages"] == 3


def test_windows_past_a_week_are_dropped_and_older_events_ignored() -> None:
    shard = Shard(0, {})
    assert not shard.add(Ev("ancient", at=NOW - 8 * 24 * HOUR_S), 0, NOW)
    shard.add(Ev("a", at=NOW - 2 * HOUR_S), 1, NOW)
    shard.add(Ev("b"), analytics.HOLD_OFFSETS + 5, NOW)
    shard.tidy(NOW)
    later = NOW + 7 * 24 * HOUR_S
    shard.tidy(later)
    assert all(analytics.parse_key(k)[2] >= later - 7 * 24 * HOUR_S for k in shard.records if "|h|" in k)
    assert analytics.report(shard.records.items(), later)["last_week"]["messages"] <= 1


def test_partitions_add_up_and_windows_land_in_their_minute_and_hour() -> None:
    a, b = Shard(0, {}), Shard(1, {})
    a.add(Ev("m1", at=NOW - 120), 0, NOW)
    b.add(Ev("m2", at=NOW - 120), 0, NOW)
    b.add(Ev("m3", at=NOW - 3 * HOUR_S), 1, NOW)
    result = analytics.report([*a.records.items(), *b.records.items()], NOW)
    assert result["partitions"] == [0, 1]
    assert result["last_hour"]["messages"] == 2
    assert result["last_week"]["messages"] == 3
    by_minute = {p["start"]: p["messages"] for p in result["per_minute"]}
    assert by_minute[analytics.floor_to(NOW - 120, MINUTE_S)] == 2
    assert len(result["per_minute"]) == 60 and len(result["per_hour"]) == 168
    assert sum(p["messages"] for p in result["per_hour"]) == 3


def test_models_picked_late_skipped_and_their_latency() -> None:
    shard = Shard(0, {})
    for i in range(100):
        shard.add(
            Ev(
                f"m{i}",
                candidates=(
                    Cand("intent", latency_ms=5.0 + i % 3),
                    Cand("responder", latency_ms=20.0, picked=i % 2 == 0),
                    Cand("generator", status="skipped", latency_ms=0.0)
                    if i % 4 == 0
                    else Cand("generator", latency_ms=100.0 + i, picked=i % 2 == 1, late=i % 10 == 1),
                ),
            ),
            i,
            NOW,
        )
    models = analytics.report(shard.records.items(), NOW)["last_hour"]["models"]
    assert models["responder"]["picked"] == 50 and models["generator"]["picked"] == 50
    assert models["generator"]["skipped"] == 25 and models["generator"]["skipped_rate"] == 0.25
    assert models["generator"]["late"] == 10
    assert models["responder"]["latency_ms"]["p50"] == pytest.approx(20.0, rel=analytics.SKETCH_ERROR)
    assert models["generator"]["latency_ms"]["p99"] <= 200 * (1 + analytics.SKETCH_ERROR)


def test_quantiles_are_within_the_sketch_error() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1) for _ in range(5000)]
    sketch: analytics.Sketch = {}
    for value in values:
        analytics.sketch_add(sketch, value)
    exact = statistics.quantiles(values, n=100)
    for q, true in ((0.5, exact[49]), (0.95, exact[94]), (0.99, exact[98])):
        assert analytics.quantile(sketch, q) == pytest.approx(true, rel=2 * analytics.SKETCH_ERROR)
    assert analytics.quantile({}, 0.5) is None
    assert analytics.quantile({"z": 3}, 0.5) == 0.0


def test_median_turns_per_conversation_from_the_turn_histogram() -> None:
    shard = Shard(0, {})
    offset = 0
    for conversation, length in enumerate([1, 2, 2, 3, 7]):
        for turn in range(1, length + 1):
            shard.add(Ev(f"c{conversation}-{turn}", turn=turn), offset, NOW)
            offset += 1
    result = analytics.report(shard.records.items(), NOW)["last_hour"]
    assert result["conversations"] == 5
    assert result["median_turns"] == 2
    assert analytics.median_turns({"1": 2, "2": 1}) == 1.5
    assert analytics.median_turns({}) is None
    assert analytics.conversation_lengths({"2": 3, "3": 1}) == {2: 2, 3: 1}  # begun before the range


def test_fallback_rate_is_the_share_of_fallback_lines() -> None:
    shard = Shard(0, {})
    for i in range(4):
        shard.add(Ev(f"m{i}", source="fallback" if i == 0 else "canned"), i, NOW)
    assert analytics.report(shard.records.items(), NOW)["last_hour"]["fallback_rate"] == 0.25
    assert analytics.report([], NOW)["last_hour"]["fallback_rate"] is None
