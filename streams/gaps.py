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

The whole workaround is this module: ``Gaps`` installs the ``progress`` table,
the two timers and the committed-offsets reader on the app, and ``streams.app``
wraps each agent's handler with ``Gaps.guard``. Once faust is fixed, deleting
this module and those two lines of ``streams.app`` removes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP, TableT
from mode import Service

from streams import store
from streams.inputs import Handler, Record
from streams.kafka import kafka_options
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)
Take = Callable[[Sequence[Record]], Awaitable[None]]  # what an agent's loop hands each micro-batch to
READ_TIMEOUT_S = 30.0
CATCH_UP_INTERVAL_S = 5.0
FLUSH_INTERVAL_S = 0.5


def missed(last: int | None, offset: int) -> range:
    """The offsets between the last one handled and ``offset`` (empty when none was skipped)."""
    if last is None or offset <= last + 1:
        return range(0)
    return range(last + 1, offset)


@dataclass(frozen=True)
class ReplayedMessage:
    """Where a record read straight from Kafka came from (an ``inputs.Origin``)."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds, as faust gives it


@dataclass(frozen=True)
class Replayed:
    """A record read straight from Kafka: an ``inputs.Record`` like the faust events an agent takes."""

    key: bytes | None
    value: bytes
    message: ReplayedMessage


class Gaps:
    """The workaround on one app: the progress marks of every agent, and the catch-up."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        # "agent|topic|partition" -> the last input offset handed to that agent; the value is written
        # to the changelog partition of the input partition, so it moves with it
        self.progress: TableT = store.table(app, settings, "progress")
        self.agents: list[AgentInputs] = []
        self.committed = CommittedOffsets(settings, on_stop=self.save_marks)
        app.service(self.committed)  # type: ignore[arg-type]  # faust accepts instances too
        app.timer(interval=CATCH_UP_INTERVAL_S, name="banter.gaps.catch_up")(self.catch_up)
        app.timer(interval=FLUSH_INTERVAL_S, name="banter.gaps.save_marks")(self.save_marks_timer)

    def guard(self, agent: str, topics: Iterable[str], handler: Handler) -> Take:
        """``handler``, handed every record of its topics in offset order, none skipped."""
        inputs = AgentInputs(self, agent, topics, handler)
        self.agents.append(inputs)
        return inputs.take

    def save_marks(self) -> None:
        """Every agent's unsaved marks to the changelog (a timer, and the worker's stop)."""
        for inputs in self.agents:
            inputs.save()

    async def save_marks_timer(self, _app: Any = None) -> None:
        """Each agent's last input offsets to the changelog: one write per partition, not per record."""
        self.save_marks()

    async def catch_up(self, _app: Any = None) -> None:
        """Compare each agent's last input offsets with the group's committed offsets (a timer).

        The stream check finds a skipped record when the next one arrives; this finds those with
        nothing after them: after a restart, a partition whose committed offset is past an agent's
        last record."""
        app = self.app
        if app.rebalancing or app.in_recovery or not self.agents:
            return
        ours = set().union(*(inputs.topics for inputs in self.agents))
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in ours]
        try:
            committed = await self.committed.of(assigned)
        except KafkaError as exc:  # the broker may be moving a coordinator: the next tick asks again
            log.warning("could not read committed offsets", extra={"error": repr(exc), "retry_s": CATCH_UP_INTERVAL_S})
            return
        for inputs in self.agents:
            await inputs.catch_up(committed)

    async def read(self, agent: str, tp: TP, skipped: range, found_by: str) -> list[Record]:
        """The records ``skipped`` of ``tp``, read straight from Kafka, logged and counted."""
        records = await read_range(self.settings, tp, skipped.start, skipped.stop)
        self.metrics.input_gaps.labels(agent, found_by).inc()
        self.metrics.input_gap_records.labels(agent).inc(len(records))
        log.warning(
            "faust skipped input records; read them from Kafka",
            extra={
                "agent": agent,
                "topic": tp.topic,
                "partition": tp.partition,
                "first": skipped.start,
                "last": skipped.stop - 1,
                "read": len(records),
                "found_by": found_by,
            },
        )
        return list(records)


class AgentInputs:
    """One agent's input: records go to ``handler`` in offset order per partition, none skipped."""

    def __init__(self, gaps: Gaps, agent: str, topics: Iterable[str], handler: Handler) -> None:
        self.gaps = gaps
        self.agent = agent
        self.topics = frozenset(topics)
        self.handler = handler
        self.lock = asyncio.Lock()
        self.unsaved: dict[TP, int] = {}  # marks set in memory, not yet in the changelog

    async def take(self, events: Sequence[Record]) -> None:
        """Hand ``events`` to the handler, each preceded by whatever faust skipped before it."""
        async with self.lock:
            records: list[Record] = []
            last: dict[TP, int] = {}
            for event in events:
                tp, offset = TP(event.message.topic, event.message.partition), event.message.offset
                skipped = missed(last.get(tp, self._mark(tp)), offset)
                if skipped:
                    records += await self.gaps.read(self.agent, tp, skipped, "stream")
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
                records = await self.gaps.read(self.agent, tp, skipped, "committed")
                self._remember({tp: skipped[-1]})
                await self.handler(records)

    def _key(self, tp: TP) -> bytes:
        return f"{self.agent}|{tp.topic}|{tp.partition}".encode()

    def _mark(self, tp: TP) -> int | None:
        mark = self.gaps.progress.data.get(self._key(tp))
        return int(mark) if mark is not None else None

    def _remember(self, last: Mapping[TP, int]) -> None:
        for tp, offset in last.items():
            store.put(self.gaps.progress, self._key(tp), offset, tp.partition)
        self.unsaved.update(last)

    def save(self) -> None:
        """Write the marks set since the last save to the changelog."""
        unsaved, self.unsaved = self.unsaved, {}
        for tp, offset in unsaved.items():
            self.gaps.progress.send_changelog(tp.partition, self._key(tp), offset)


async def read_range(settings: Settings, tp: TP, start: int, stop: int) -> list[Replayed]:
    """Records ``start`` to ``stop - 1`` of one partition (fewer if retention removed some)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
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

    def __init__(self, settings: Settings, on_stop: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self._on_stop = on_stop
        self._consumer: AIOKafkaConsumer | None = None

    async def on_stop(self) -> None:
        self._on_stop()  # before the producer stops: a graceful stop leaves exact marks
        if self._consumer is not None:
            await self._consumer.stop()

    async def of(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **kafka_options(self.settings), group_id=self.settings.app_id, enable_auto_commit=False
            )
            await consumer.start()
            self._consumer = consumer
        return {tp: await self._consumer.committed(TopicPartition(tp.topic, tp.partition)) for tp in tps}
