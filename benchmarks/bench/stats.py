"""The benchmark's arithmetic, as pure functions over what was sent and received.

Definitions (the report repeats them):

- Percentiles use linear interpolation between closest ranks, numpy's default
  (``method="linear"``): for sorted values ``x[0..n-1]`` and quantile ``q``,
  ``h = (n - 1) q`` and ``p = x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])``.
- The steady window skips the first ``warmup`` share of the sending period and
  ends with the last message sent: replies arriving inside it, divided by its
  length, are the sustained throughput (replies/s). Counting arrivals, not
  sends, is what a platform sees; in a steady state both rates are equal.
- Model-answered throughput counts only replies not from the fallback line.
- Shares are of the replies received (distinct ``message_id``s).
- An offered rate is *sustained* when the throughput is at least 95% of it,
  end-to-end p99 is within the budget and fallback lines stay under 1%: the
  router answers every message at its deadline, with a safe line if no model
  kept up, so replies/s and p99 alone cannot show an overloaded worker.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SOURCES = ("canned", "retrieval", "generative", "fallback")
SUSTAINED_SHARE = 0.95
MAX_FALLBACK_SHARE = 0.01


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    h = (len(xs) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (h - low) * (xs[high] - xs[low])


@dataclass(frozen=True, slots=True)
class Seen:
    """One reply as the benchmark's consumer saw it."""

    message_id: str
    arrived_at: float
    source: str
    latency_ms: float
    kind: str = "chat"


@dataclass
class PhaseRecord:
    """Raw observations of one phase: produce times by message id, replies, extras."""

    sent: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    replies: dict[str, Seen] = field(default_factory=dict)
    duplicates: int = 0
    send_errors: int = 0


@dataclass(frozen=True)
class Latency:
    """Percentiles and maximum in milliseconds."""

    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latency:
        top = max(values_ms) if values_ms else math.nan
        return cls(percentile(values_ms, 0.5), percentile(values_ms, 0.95), percentile(values_ms, 0.99), top)


def steady_window(sent_times: Iterable[float], warmup: float) -> tuple[float, float]:
    """(start, end) epoch seconds of the steady window of a sending period."""
    times = list(sent_times)
    if not times:
        return (0.0, 0.0)
    first, last = min(times), max(times)
    return (first + warmup * (last - first), last)


def rate_in(times: Iterable[float], window: tuple[float, float]) -> float:
    """Events per second whose time falls inside ``window``; NaN for an empty window."""
    start, end = window
    if end <= start:
        return math.nan
    return sum(start <= t <= end for t in times) / (end - start)


def shares(sources: Iterable[str]) -> dict[str, float]:
    """Share of each source (every name in SOURCES, 0.0 when absent)."""
    counts = Counter(sources)
    total = sum(counts.values())
    return {s: counts[s] / total if total else 0.0 for s in (*SOURCES, *sorted(set(counts) - set(SOURCES)))}


def end_to_end_ms(record: PhaseRecord) -> list[float]:
    """Produce-to-arrival milliseconds of every reply to a message of this phase."""
    return [(seen.arrived_at - record.sent[mid]) * 1000.0 for mid, seen in record.replies.items() if mid in record.sent]


def is_sustained(offered: float, throughput: float, p99_ms: float, fallback_share: float, budget_ms: float) -> bool:
    """The offered rate held: enough replies/s, p99 within budget, few fallback lines."""
    if not offered > 0 or math.isnan(throughput) or math.isnan(p99_ms):
        return False
    return throughput >= SUSTAINED_SHARE * offered and p99_ms <= budget_ms and fallback_share < MAX_FALLBACK_SHARE
