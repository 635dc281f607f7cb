"""One phase's figures from a synthetic record."""

from __future__ import annotations

import math

import pytest

from benchmarks.bench.stats import PhaseRecord, Seen
from benchmarks.bench.summary import Health, summarise


def _record(sources: list[str], latency_s: float = 0.1, rate: float = 10.0, answered: int | None = None) -> PhaseRecord:
    record = PhaseRecord()
    for i, source in enumerate(sources):
        mid = f"m{i}"
        record.sent[mid] = 1000.0 + i / rate
        record.kinds[mid] = "canned" if source == "canned" else "chat"
        if answered is None or i < answered:
            record.replies[mid] = Seen(mid, record.sent[mid] + latency_s, source, latency_s * 900, record.kinds[mid])
    return record


def test_a_steady_phase() -> None:
    sources = ["canned", "retrieval", "generative", "retrieval"] * 25
    got = summarise(_record(sources), "one", "10/s", 10.0, budget_ms=1000.0, warmup=0.2, health=Health(2, 5, 0.01))
    assert (got.sent, got.answered, got.unanswered) == (100, 100, 0)
    assert got.achieved_rps == pytest.approx(10.0)
    assert got.throughput_rps == pytest.approx(10.0, rel=0.05)
    assert got.model_rps == got.throughput_rps
    assert got.e2e_ms.p50 == pytest.approx(100.0) and got.reply_ms.p50 == pytest.approx(90.0)
    assert got.sources == {"canned": 25, "retrieval": 50, "generative": 25}
    assert (got.generator_share, got.fallback_share) == (0.25, 0.0)
    assert got.canned_p50_ms == pytest.approx(100.0)
    assert got.sustained and got.health.dead_letters == 2


def test_fallbacks_and_missing_replies() -> None:
    sources = ["fallback", "retrieval"] * 50
    got = summarise(_record(sources, latency_s=0.95, answered=80), "one", "10/s", 10.0, 1000.0, 0.2)
    assert (got.answered, got.unanswered) == (80, 20)
    assert got.fallback_share == 0.5
    assert got.model_rps == pytest.approx(got.throughput_rps / 2, rel=0.1)
    assert math.isnan(got.canned_p50_ms)
    assert not got.sustained


def test_late_replies_are_not_sustained() -> None:
    got = summarise(_record(["retrieval"] * 50, latency_s=1.2), "one", "10/s", 10.0, 1000.0, 0.2)
    assert got.e2e_ms.p99 == pytest.approx(1200.0) and not got.sustained


def test_nothing_sent() -> None:
    got = summarise(PhaseRecord(), "one", "10/s", 10.0, 1000.0, 0.2)
    assert (got.sent, got.answered, got.sustained) == (0, 0, False)
    assert math.isnan(got.e2e_ms.p99)
