"""Kafka alone: produce a tiny record, consume it back, no models and no workers.

The same producer and consumer settings and the same pacing as the load phases,
at the same rates, then one unpaced burst: what the broker and the client
library cost before banter does anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.bench.load import at_end, pace, partitions_of
from benchmarks.bench.results import EchoSummary
from benchmarks.bench.stats import Latency, PhaseRecord, Seen, end_to_end_ms, rate_in, steady_window
from streams.kafka import kafka_options
from streams.settings import Settings

Progress = Callable[[str], None]
UNPACED = 0.0  # offered_rps of the burst: as fast as the producer goes
WARM_UP = 50


async def create_topic(settings: Settings, name: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(name, settings.partitions, settings.replication)])
    finally:
        await admin.close()


async def run(
    settings: Settings, rates: Sequence[float], seconds: float, burst: int, warmup: float, progress: Progress
) -> list[EchoSummary]:
    """One summary per rate, then the burst's."""
    topic = settings.topic("echo")
    await create_topic(settings, topic)
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        consumer.assign(tps)
        await at_end(consumer, tps)
        await _one(producer, consumer, topic, UNPACED, WARM_UP, warmup)  # leaders elected, connections open
        out = []
        for rate in (*rates, UNPACED):
            count = burst if rate == UNPACED else max(1, int(rate * seconds))
            out.append(await _one(producer, consumer, topic, rate, count, warmup))
            progress(f"echo {_label(rate)}: {out[-1].throughput_rps:.0f} msg/s, p99 {out[-1].latency_ms.p99:.1f} ms")
        return out
    finally:
        await consumer.stop()
        await producer.stop()


async def _one(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str, rate: float, count: int, warmup: float
) -> EchoSummary:
    record = PhaseRecord()
    reader = asyncio.create_task(_read(consumer, record))
    acks: list[asyncio.Future[object]] = []

    async def send(i: int) -> None:
        key = f"{time.monotonic_ns()}-{i}"
        record.sent[key] = time.time()
        acks.append(await producer.send(topic, orjson.dumps({"key": key}), key=key.encode()))

    try:
        await pace(count, rate if rate != UNPACED else math.inf, send)
        await asyncio.gather(*acks, return_exceptions=True)
        deadline = time.monotonic() + 10.0
        while len(record.replies) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return _summary(record, rate, warmup)


def _summary(record: PhaseRecord, rate: float, warmup: float) -> EchoSummary:
    arrivals = [seen.arrived_at for seen in record.replies.values()]
    if rate == UNPACED:
        span = max(arrivals, default=0.0) - min(record.sent.values(), default=0.0)
        throughput = len(arrivals) / span if span > 0 else math.nan
    else:
        throughput = rate_in(arrivals, steady_window(record.sent.values(), warmup))
    return EchoSummary(rate, len(record.sent), len(arrivals), throughput, Latency.of(end_to_end_ms(record)))


async def _read(consumer: AIOKafkaConsumer, record: PhaseRecord) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for records in batch.values():
            for message in records:
                key = orjson.loads(message.value)["key"]
                if key in record.sent:
                    record.replies[key] = Seen(key, now, "echo", 0.0)


def _label(rate: float) -> str:
    return "unpaced burst" if rate == UNPACED else f"@ {rate:g}/s"
