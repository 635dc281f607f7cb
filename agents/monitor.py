"""Monitor: consumer lag per topic, event-loop lag and the latency budget, sampled into /metrics."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from streams.app import app, metrics, settings

LOOP_PROBE_S = 0.1


@app.timer(interval=5.0)
async def sample_consumer_lag() -> None:
    """Records not yet read on each assigned partition of banter's topics, summed per topic."""
    consumer = app.consumer
    lag: dict[str, int] = defaultdict(int)
    ours = settings.topic("")
    # changelog and assignor partitions are assigned too, but only read while recovering:
    # their "lag" would grow forever and page someone for nothing
    for tp in (tp for tp in consumer.assignment() if tp.topic.startswith(ours)):
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if position is not None and highwater is not None:
            lag[tp.topic] += max(0, highwater - position)
    metrics.consumer_lag.clear()  # topics taken away by a rebalance must not keep a stale value
    for topic, value in lag.items():
        metrics.consumer_lag.labels(topic).set(value)


@app.task
async def sample_loop_lag() -> None:
    """How late a 100 ms sleep wakes up: blocking work on the loop shows here first."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(LOOP_PROBE_S)
        metrics.loop_lag.set(max(0.0, time.monotonic() - started - LOOP_PROBE_S))


@app.task
async def publish_budget() -> None:
    """The default budget as a gauge, so the end-to-end alert follows BANTER_BUDGET_MS."""
    metrics.budget.set(settings.budget_ms / 1000)
