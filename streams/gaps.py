"""Every input record reaches its agent, in order, even where faust skips one.

faust 0.15 can acknowledge, and then commit, an offset that an agent never
processed. Records fetched before a rebalance carry the old generation and are
acked as "skipped" when they come out after it (faust-streaming#221/#223); an
offset jump is booked as acked, and a gap of one at the head of the acked
offsets passes the commit check (faust-streaming#216, #312; robinhood/faust#115).
In banter's kill -9 test the restarted worker's agents lose the first record of
some partitions this way. The worker reads on past such a record; after a
crash or a seek nobody reads it again, and its message never gets a reply.

So each agent keeps, per input partition, the last offset handed to it, in the
changelog-backed ``progress`` table. The mark in memory is set before the handler
runs, so before faust can ack the record; the changelog gets it at most every
``FLUSH_INTERVAL_S`` and when the worker stops (one write per agent and
partition, not one per record: they were most of what a message produced). A
mark restored after a crash may so be a little behind: the catch-up then reads
and handles again a few records that were handled already, which every agent
takes as a replay. Two checks use the marks:

* in the stream: a record that comes after a jump is preceded by the records
  skipped, read straight from Kafka;
* every few seconds: a partition whose committed offset is past the mark + 1
  (faust committed records this agent never saw, then the worker restarted
  and nothing new has arrived since) has the missing records read and handled.

Both hand the records to the agent's own handler, under its lock. A record
handled twice is harmless: every agent is idempotent by ``message_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, EventT
from mode import Service

from streams import tables
from streams.app import app, metrics, settings
from streams.client import kafka_options

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 30.0

Handler = Callable[[list[EventT]], Awaitable[None]]


def missed(last: int | None, offset: int) -> range:
    """The offsets between the last one handled and ``offset`` (empty when none was skipped)."""
    if last is None or offset <= last + 1:
        return range(0)
    return range(last + 1, offset)


@dataclass(frozen=True)
class ReplayedMessage:
    """The part of faust's Message that banter's agents read."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds, as faust gives it


@dataclass(frozen=True)
class Replayed:
    """A record read straight from Kafka, shaped like the faust event an agent takes."""

    key: bytes | None
    value: bytes
    message: ReplayedMessage


class Inputs:
    """One agent's input: records go to ``handler`` in offset order per partition, none skipped."""

    def __init__(self, agent: str, topics: Iterable[str], handler: Handler) -> None:
        self.agent = agent
        self.topics = frozenset(topics)
        self.handler = handler
        self.lock = asyncio.Lock()
        self.unsaved: dict[TP, int] = {}  # marks set in memory, not yet in the changelog
        INPUTS.append(self)

    async def take(self, events: Sequence[EventT]) -> None:
        """Hand ``events`` to the handler, each preceded by whatever faust skipped before it."""
        async with self.lock:
            records: list[EventT] = []
            last: dict[TP, int] = {}
            for event in events:
                tp, offset = event.message.tp, event.message.offset
                skipped = missed(last.get(tp, self._mark(tp)), offset)
                if skipped:
                    records += await self._read(tp, skipped, "stream")
                records.append(event)
                last[tp] = offset
            self._remember(last)
            await self.handler(records)

    async def catch_up(self, committed: Mapping[TP, int | None]) -> None:
        """Handle the records before each partition's committed offset that this agent never saw."""
        for tp, offset in committed.items():
            if tp.topic not in self.topics or offset is None:
                continue
            async with self.lock:
                skipped = missed(self._mark(tp), offset)
                if not skipped:
                    continue
                records = await self._read(tp, skipped, "committed")
                self._remember({tp: skipped[-1]})
                await self.handler(records)

    def _key(self, tp: TP) -> bytes:
        return f"{self.agent}|{tp.topic}|{tp.partition}".encode()

    def _mark(self, tp: TP) -> int | None:
        mark = tables.progress.data.get(self._key(tp))
        return int(mark) if mark is not None else None

    def _remember(self, last: Mapping[TP, int]) -> None:
        for tp, offset in last.items():
            tables.progress.data[self._key(tp)] = offset
        self.unsaved.update(last)

    def save(self) -> None:
        """Write the marks set since the last save to the changelog."""
        unsaved, self.unsaved = self.unsaved, {}
        for tp, offset in unsaved.items():
            tables.progress.send_changelog(tp.partition, self._key(tp), offset)

    async def _read(self, tp: TP, skipped: range, found_by: str) -> list[EventT]:
        records = await read_range(tp, skipped.start, skipped.stop)
        metrics.input_gaps.labels(self.agent, found_by).inc()
        metrics.input_gap_records.labels(self.agent).inc(len(records))
        log.warning("faust skipped input records; read them from Kafka", extra={
            "agent": self.agent, "topic": tp.topic, "partition": tp.partition, "first": skipped.start,
            "last": skipped.stop - 1, "read": len(records), "found_by": found_by})  # fmt: skip
        # Replayed is shaped like the EventT members the agents read (key, value, message.*)
        return [cast(EventT, record) for record in records]


INPUTS: list[Inputs] = []
FLUSH_INTERVAL_S = 0.5


def save_marks() -> None:
    """Every agent's unsaved marks to the changelog (a timer, and the worker's stop)."""
    for inputs in INPUTS:
        inputs.save()


async def read_range(tp: TP, start: int, stop: int) -> list[Replayed]:
    """Records ``start`` to ``stop - 1`` of one partition (fewer if retention removed some)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, start)
        return await asyncio.wait_for(_read_until(consumer, partition, stop), READ_TIMEOUT_S)
    finally:
        await consumer.stop()


async def _read_until(consumer: AIOKafkaConsumer, partition: TopicPartition, stop: int) -> list[Replayed]:
    records: list[Replayed] = []
    while await consumer.position(partition) < stop:
        batch = await consumer.getmany(partition, timeout_ms=500, max_records=500)
        for record in batch.get(partition, []):
            if record.offset < stop:
                message = ReplayedMessage(record.topic, record.partition, record.offset, record.timestamp / 1000)
                records.append(Replayed(record.key, record.value, message))
    return records


class CommittedOffsets(Service):
    """The worker group's committed offsets, read by a consumer that never joins the group."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._consumer: AIOKafkaConsumer | None = None

    async def on_stop(self) -> None:
        save_marks()  # before the producer stops: a graceful stop leaves exact marks
        if self._consumer is not None:
            await self._consumer.stop()

    async def of(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=settings.app_id,
                                        enable_auto_commit=False)  # fmt: skip
            await consumer.start()
            self._consumer = consumer
        return {tp: await self._consumer.committed(TopicPartition(tp.topic, tp.partition)) for tp in tps}


committed_offsets = CommittedOffsets()
app.service(committed_offsets)  # type: ignore[arg-type]  # faust accepts instances too
