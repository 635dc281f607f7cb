"""Live model latency: a sliding-window estimate, which messages a batch can still
serve in time, and a degradation level with hysteresis for the generator."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

PROBE_AFTER_S = 5.0
"""A latency estimate without a sample this long is stale: the model is tried again (a probe)
rather than trusted to be as slow as it last was."""
PROBE_MAX_S = 40.0
"""While probes keep finding the model too slow, each waits twice as long as the last, up to this: a
probe of the generator takes a core for most of a second, which an overloaded worker needs more."""


@dataclass
class LatencyTracker:
    """Per-item latency of one model over its last ``window`` batches."""

    window: int = 200
    quantile: float = 0.95
    prior_s: float = 0.05
    refresh_every: int = 8
    """The quantile is recomputed after this many new samples: the router asks for it on
    every output it routes, and a fresh numpy quantile each time cost 8% of the event loop."""
    _samples: deque[float] = field(default_factory=deque)
    _last_at: float | None = None
    _cached: float | None = None
    _fresh: int = 0

    def observe(self, per_item_s: float, now: float | None = None) -> None:
        self._last_at = time.monotonic() if now is None else now
        self._samples.append(per_item_s)
        while len(self._samples) > self.window:
            self._samples.popleft()
        self._fresh += 1
        if self._fresh >= self.refresh_every or len(self._samples) < self.refresh_every:
            self._cached = None  # recomputed on the next read

    def estimate(self) -> float:
        """The ``quantile`` of recent per-item latency (the prior before any sample)."""
        if not self._samples:
            return self.prior_s
        if self._cached is None:
            self._cached = float(np.quantile(np.fromiter(self._samples, float), self.quantile))
            self._fresh = 0
        return self._cached

    def stale(self, after_s: float, now: float | None = None) -> bool:
        """True when no sample came for ``after_s``: the estimate may no longer hold.

        A model whose estimate says "too slow" gets skipped, and a skipped model
        yields no new samples, so without a probe now and then the estimate
        could never recover.
        """
        now = time.monotonic() if now is None else now
        return self._last_at is None or now - self._last_at >= after_s

    def __len__(self) -> int:
        return len(self._samples)


def plan_batch(deadlines: list[float], now: float, per_item_s: float) -> list[bool]:
    """For each message of a batch run in order, whether it can finish before its deadline.

    Messages predicted to miss are left out, which shortens the batch for the rest:
    item ``k`` of the kept ones finishes at ``now + (k + 1) * per_item_s``.
    """
    keep: list[bool] = []
    kept = 0
    for deadline in deadlines:
        fits = now + (kept + 1) * per_item_s <= deadline
        keep.append(fits)
        kept += fits
    return keep


@dataclass
class Degrader:
    """A level from 0 (normal) to ``max_level`` (off), driven by a miss rate.

    The level rises when the recent miss rate exceeds ``enter`` and falls only
    when it has stayed below ``leave`` for ``calm`` observations (hysteresis),
    so that it does not flap.
    """

    enter: float = 0.2
    leave: float = 0.05
    window: int = 50
    calm: int = 50
    max_level: int = 2
    level: int = 0
    _misses: deque[bool] = field(default_factory=deque)
    _calm_run: int = 0

    def observe(self, missed: bool) -> int:
        """Record one outcome (True = missed its deadline or was late); returns the level."""
        self._misses.append(missed)
        while len(self._misses) > self.window:
            self._misses.popleft()
        rate = self.miss_rate()
        if rate > self.enter and len(self._misses) >= self.window // 2:
            self._raise()
        elif rate < self.leave:
            self._calm_run += 1
            if self._calm_run >= self.calm and self.level > 0:
                self.level -= 1
                self._calm_run = 0
        else:
            self._calm_run = 0
        return self.level

    def miss_rate(self) -> float:
        return sum(self._misses) / len(self._misses) if self._misses else 0.0

    def _raise(self) -> None:
        if self.level < self.max_level:
            self.level += 1
        self._misses.clear()
        self._calm_run = 0
