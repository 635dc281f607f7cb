"""The platform's side of a phase: offer messages at a fixed rate, read every reply.

Open loop: message ``i`` is produced at ``start + i / rate`` whatever became of
the earlier ones, so the next turn of a conversation never waits for a reply.
Replies are read from ``banter.replies`` with no consumer group, from the end
as it was before the first message, and taken once per ``message_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.bench.stats import PhaseRecord, Seen, percentile
from benchmarks.bench.workload import Planned
from schemas import Reply, SchemaError, decode, encode
from streams.client import new_message
from streams.kafka import kafka_options
from streams.settings import Settings

Progress = Callable[[str], None]
PROGRESS_EVERY_S = 5.0


async def pace(count: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call ``send(i)`` for i in 0..count-1 at ``rate`` per second (late calls go at once)."""
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, once the client's metadata knows it."""
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await consumer._client.force_metadata_update()  # a topic created a moment ago
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found")


async def at_end(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
    """Position every partition at its end now, before anything is sent."""
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)


class Phase:
    """One phase against one deployment: a producer, and a reader of replies and dead letters."""

    def __init__(self, settings: Settings, label: str, progress: Progress) -> None:
        self.settings, self.label, self.progress = settings, label, progress
        self.record = PhaseRecord()
        self.tag = f"{re.sub(r'[^A-Za-z0-9]+', '-', label)}-{uuid.uuid4().hex[:6]}"
        self._producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=0)
        self._replies = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
        self.dead_letters = 0  # records on banter.deadletter since the phase began
        self._tasks: list[asyncio.Task[None]] = []
        self._planned, self.rate = 0, 0.0

    async def __aenter__(self) -> Phase:
        try:
            await self._producer.start()
            await self._replies.start()
            tps = [
                tp
                for name in ("replies", "deadletter")
                for tp in await partitions_of(self._replies, self.settings.topic(name))
            ]
            self._replies.assign(tps)
            await at_end(self._replies, tps)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._report())]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._replies.stop()
        await self._producer.stop()

    async def offer(self, messages: Sequence[Planned], rate: float) -> None:
        """Produce ``messages`` in order at ``rate`` per second, then wait for Kafka's acks."""
        self._planned, self.rate = len(messages), rate
        acks: list[asyncio.Future[object]] = []

        async def send(i: int) -> None:
            planned = messages[i]
            conversation = f"{self.tag}-c{planned.conversation}"
            message = new_message(planned.text, conversation, f"{conversation}-user", platform="bench")
            self.record.kinds[message.message_id] = planned.kind
            self.record.sent[message.message_id] = time.time()
            acks.append(
                await self._producer.send(self.settings.topic("messages"), encode(message), key=conversation.encode())
            )

        await pace(len(messages), rate, send)
        results = await asyncio.gather(*acks, return_exceptions=True)
        self.record.send_errors = sum(isinstance(r, BaseException) for r in results)

    async def drain(self, timeout_s: float) -> None:
        """Wait until every message is answered, or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while len(self.record.replies) < len(self.record.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def _read(self) -> None:
        dead = self.settings.topic("deadletter")
        while True:
            batch = await self._replies.getmany(timeout_ms=100)
            now = time.time()
            for tp, records in batch.items():
                if tp.topic == dead:
                    self.dead_letters += len(records)
                    continue
                for record in records:
                    self._take(record.value, now)

    def _take(self, value: bytes | None, now: float) -> None:
        try:
            reply = decode(value, Reply)
        except SchemaError:
            return
        mid = reply.message_id
        if mid not in self.record.sent:
            return  # a warm-up greeting's reply, or another phase's
        if mid in self.record.replies:
            self.record.duplicates += 1
            return
        self.record.replies[mid] = Seen(mid, now, reply.source, reply.latency_ms, self.record.kinds.get(mid, "chat"))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self.progress(self.status())

    def status(self) -> str:
        """One line: rate, sent, answered, p99 and fallback share so far."""
        record = self.record
        e2e = [(s.arrived_at - record.sent[m]) * 1000.0 for m, s in record.replies.items()]
        fallback = sum(s.source == "fallback" for s in record.replies.values())
        answered = len(record.replies)
        return (
            f"{self.label} @ {self.rate:g}/s: sent {len(record.sent)}/{self._planned}, "
            f"answered {answered}, p99 {percentile(e2e, 0.99):.0f} ms, "
            f"fallback {100 * fallback / max(1, answered):.1f}%"
        )
