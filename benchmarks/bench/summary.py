"""One phase's figures (a rate of the sweep, the overload, the light load), from its raw record."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.bench.stats import Latency, PhaseRecord, end_to_end_ms, is_sustained, rate_in, shares, steady_window


@dataclass(frozen=True)
class Health:
    """What the workers showed during a phase: dead letters, memory and loop lag."""

    dead_letters: int = 0
    rss_max_bytes: int = 0
    loop_lag_max_s: float | None = None


@dataclass(frozen=True)
class PhaseSummary:
    """The figures of one phase of one configuration."""

    config: str
    phase: str
    offered_rps: float
    sent: int
    answered: int
    unanswered: int
    duplicates: int
    send_errors: int
    seconds: float
    achieved_rps: float
    throughput_rps: float
    model_rps: float
    e2e_ms: Latency
    reply_ms: Latency
    sources: dict[str, int]
    shares: dict[str, float]
    fallback_share: float
    generator_share: float
    canned_p50_ms: float
    sustained: bool
    health: Health = field(default_factory=Health)


def summarise(
    record: PhaseRecord,
    config: str,
    phase: str,
    offered: float,
    budget_ms: float,
    warmup: float,
    health: Health | None = None,
) -> PhaseSummary:
    """Every figure of a phase; ``warmup`` is the share of the sending period left out of rates."""
    window = steady_window(record.sent.values(), warmup)
    replies = list(record.replies.values())
    by_source = Counter(seen.source for seen in replies)
    share = shares(seen.source for seen in replies)
    e2e = Latency.of(end_to_end_ms(record))
    throughput = rate_in((r.arrived_at for r in replies), window)
    canned = [
        (r.arrived_at - record.sent[r.message_id]) * 1000.0
        for r in replies
        if r.source == "canned" and r.message_id in record.sent
    ]
    return PhaseSummary(
        config=config,
        phase=phase,
        offered_rps=offered,
        sent=len(record.sent),
        answered=len(replies),
        unanswered=len(record.sent) - sum(mid in record.replies for mid in record.sent),
        duplicates=record.duplicates,
        send_errors=record.send_errors,
        seconds=_span(record),
        achieved_rps=_achieved(record),
        throughput_rps=throughput,
        model_rps=rate_in((r.arrived_at for r in replies if r.source != "fallback"), window),
        e2e_ms=e2e,
        reply_ms=Latency.of([r.latency_ms for r in replies]),
        sources=dict(by_source),
        shares=share,
        fallback_share=share["fallback"],
        generator_share=share["generative"],
        canned_p50_ms=Latency.of(canned).p50,
        sustained=is_sustained(offered, throughput, e2e.p99, share["fallback"], budget_ms),
        health=health or Health(),
    )


def _span(record: PhaseRecord) -> float:
    times = record.sent.values()
    return max(times) - min(times) if times else 0.0


def _achieved(record: PhaseRecord) -> float:
    """Messages per second actually produced (the offered load as sent)."""
    span = _span(record)
    return (len(record.sent) - 1) / span if span > 0 else math.nan
