"""The router's crash ordering, in one object: persist, send, await acks, forget.

The router works a step at a time under one lock: every record of a micro-batch
(or every due deadline) changes the state in memory, then each conversation
touched is written to the changelog once, then the replies and events are sent.
Crash safety rests on two orders:

1. the state that records a reply reaches Kafka before the reply does (the step
   waits for those changelog acks before sending);
2. an entry is forgotten only once Kafka acknowledged its reply (the next step
   that opens the conversation marks it delivered, and only then may its event
   go and the entry be dropped).

So after kill -9 the restored state either still holds the reply (and ``rescan``
resends it, same text) or the reply is already on ``banter.replies``. A reply
repeated that way has the same ``message_id``, and a platform keeps the first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from faust.types import TableT, TopicT

from schemas import encode
from streams import routing, store
from streams.metrics import Metrics
from streams.routing import Conversation, Outbox, RouterConfig


class Step:
    """One state change: the conversations it touched (with their partitions) and what it will send."""

    def __init__(self, delivery: Delivery, now: float) -> None:
        self._delivery = delivery
        self.now = now  # the clock when the step began: what its routing calls take as ``now``
        self.touched: dict[str, tuple[Conversation, int]] = {}
        self.box = Outbox()

    def open(self, conversation_id: str, partition: int) -> Conversation:
        """The conversation's state for this step, with the replies Kafka acked since marked.

        A reply the state holds but this process never sent (restored after a crash) is sent first, before
        any later turn's reply this step may release: left to the rescan timer, it went out up to a second
        later, after replies to later messages of its conversation.
        """
        if conversation_id not in self.touched:
            conv = self._delivery.stored(conversation_id) or Conversation()
            self._delivery.settle(conv)
            conv.partition, conv.active_at = partition, self.now
            self.touched[conversation_id] = (conv, partition)
            self.box.add(Outbox(replies=routing.unsent_replies(conv, self._delivery.acks.__contains__)))
        return self.touched[conversation_id][0]

    def add(self, box: Outbox | None) -> None:
        self.box.add(box)


class Delivery:
    """Owns the ``routing`` table's writes, the sends to ``replies`` and ``events`` and the replies'
    acks, and the deadlines; ``clock`` is the time every step and timer takes."""

    def __init__(
        self,
        table: TableT,
        replies: TopicT,
        events: TopicT,
        metrics: Metrics,
        config: RouterConfig,
        clock: Callable[[], float] = time.time,
        inputs: str = "",
    ) -> None:
        self.table, self.metrics, self.config, self.clock = table, metrics, config, clock
        self.inputs = inputs  # a topic the router reads: its partitions are those of the state this worker holds
        self.replies, self.events = replies, events
        self.deadlines = routing.Deadlines()
        self.acks: dict[str, Awaitable[Any]] = {}  # message_id -> Kafka's ack of the reply this process sent
        # The conversations this worker serves, as objects; the table (on disk, or faust's memory store) holds
        # them as plain data for a restart. ``_complete``: every stored one is here too (false after a rebalance
        # until the next rescan reads the table, whose recovery may have brought conversations in).
        self.memory: dict[bytes, Conversation] = {}
        self._complete = False
        self._lock = asyncio.Lock()  # one state change at a time, from its decision to its records sent

    @asynccontextmanager
    async def step(self) -> AsyncIterator[Step]:
        """A state change under the lock; on leaving, its state is written, then its records sent."""
        async with self._lock:
            step = Step(self, self.clock())
            yield step
            await self._commit(step)

    def stored(self, conversation_id: str) -> Conversation | None:
        return self._load(conversation_id.encode())

    def _load(self, key: bytes) -> Conversation | None:
        """The conversation under ``key``: from memory, or read from the table once and kept in memory."""
        conv = self.memory.get(key)
        if conv is None and not self._complete:
            conv = routing.stored(self.table.data.get(key))
            if conv is not None:
                self.memory[key] = conv
        return conv

    def _load_all(self) -> None:
        """Read into memory every stored conversation not there yet (after a restart or a rebalance)."""
        for key, value in self.table.data.items():
            if key not in self.memory:
                conv = routing.stored(value)
                if conv is not None:
                    self.memory[key] = conv
        self._complete = True

    def settle(self, conv: Conversation) -> None:
        """Mark the replies Kafka acked; a failed send is forgotten here, so the rescan resends it."""
        routing.mark_delivered(conv, self.acked)
        for mid, entry in conv.pending.items():
            ack = self.acks.get(mid)
            if ack is not None and (entry.delivered or _failed(ack)):
                del self.acks[mid]

    def acked(self, message_id: str) -> bool:
        """Kafka acknowledged the reply this process sent."""
        ack = self.acks.get(message_id)
        return ack is not None and ack.done() and not _failed(ack)  # type: ignore[attr-defined]

    async def enforce_deadlines(self) -> None:
        """Answer every message whose deadline has passed; emit events after their grace."""
        due = self.deadlines.pop_due(self.clock())
        if not due:
            return
        async with self.step() as step:
            for item in due:
                conv = self.stored(item.conversation_id)
                entry = conv.pending.get(item.message_id) if conv else None
                if entry is None or entry.partition is None:
                    continue
                conv = step.open(item.conversation_id, entry.partition)
                step.add(routing.on_due(conv, item, self.config, step.now))

    async def rescan(self) -> None:
        """Resend replies restored without their send after a restart, forget entries whose replies
        Kafka acked since, and count what waits."""
        if not self._complete:
            self._load_all()
        waiting, work, idle, now = 0, [], [], self.clock()
        for key, conv in list(self.memory.items()):
            if routing.idle(conv, now, self.config.idle_s):
                idle.append(key)
            if not conv.pending:
                continue
            waiting += len(conv.pending)
            conversation_id = key.decode() if isinstance(key, bytes) else str(key)
            self._schedule(conv, conversation_id, now)
            if routing.unsent_replies(conv, self.acks.__contains__) or routing.newly_acked(conv, self.acked):
                work.append(conversation_id)
        self.metrics.pending.set(waiting)
        if idle:
            await self._forget(idle)
        if work:
            async with self.step() as step:  # the state may have moved on while the lock was awaited: read again
                for conversation_id in work:
                    found = self.stored(conversation_id)
                    partition = routing.partition_of(found) if found else None
                    if found is None or partition is None:
                        continue
                    opened = step.open(conversation_id, partition)  # resends what the restart restored unsent
                    step.add(routing.release(opened, step.now))

    def on_assigned(self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        """faust's ``on_partitions_assigned`` signal: ``args`` is (this worker's partitions after a rebalance,)."""
        self.keep_partitions({tp.partition for tp in args[0] if tp.topic == self.inputs})
        self._complete = False  # the recovery of new partitions brings conversations into the table

    def keep_partitions(self, partitions: set[int]) -> None:
        """Drop, locally only, the conversations of every other partition: this worker no longer holds
        them, and their new owner restores them from the changelog and answers them."""
        for key, conv in list(self.memory.items()):
            if conv.partition is not None and conv.partition not in partitions:
                del self.memory[key]
                store.release(self.table, key)

    async def _forget(self, keys: list[bytes]) -> None:
        """Conversations idle with nothing pending: out of memory, and a tombstone in the changelog."""
        async with self._lock:  # a step may have opened one since: it is checked again under the lock
            now = self.clock()
            for key in keys:
                conv = self._load(key)
                if conv is not None and conv.partition is not None and routing.idle(conv, now, self.config.idle_s):
                    del self.memory[key]
                    store.delete(self.table, key)
                    self.table.send_changelog(conv.partition, key, None)

    async def _commit(self, step: Step) -> None:
        """Write each touched conversation once; with replies to send, wait until Kafka holds that state."""
        durable = bool(step.box.replies)
        writes = [self._persist(cid, conv, partition, durable) for cid, (conv, partition) in step.touched.items()]
        await asyncio.gather(*writes)
        now = self.clock()
        for cid, (conv, _) in step.touched.items():
            self._schedule(conv, cid, now)
        await self._send(step.box)

    async def _persist(self, conversation_id: str, conv: Conversation, partition: int, durable: bool) -> None:
        """Write the state on its partition (a timer has no current event to take it from); with
        ``durable``, wait for Kafka's ack, so that a reply never reaches Kafka before its state."""
        key, stored = conversation_id.encode(), routing.to_stored(conv)
        self.memory[key] = conv
        store.put(self.table, key, stored, partition)
        sent = self.table.send_changelog(partition, key, stored)
        if durable:
            await sent

    def _schedule(self, conv: Conversation, conversation_id: str, now: float) -> None:
        for due in routing.due_times(conv, conversation_id, self.config, now):
            self.deadlines.add(due)

    async def _send(self, box: Outbox) -> None:
        metrics = self.metrics
        for reply in box.replies:
            self.acks[reply.message_id] = await self.replies.send(
                key=reply.conversation_id.encode(), value=encode(reply)
            )
            metrics.replies.labels(reply.source).inc()
            metrics.end_to_end.labels(reply.source).observe(reply.latency_ms / 1000)
            if reply.fallback_reason:
                metrics.fallbacks.labels(reply.fallback_reason).inc()
        for event in box.events:
            await self.events.send(key=event.conversation_id.encode(), value=encode(event))
            metrics.intents.labels(event.intent or "none").inc()
        for model in box.late:
            metrics.late_outputs.labels(model).inc()


def _failed(ack: Any) -> bool:
    return bool(ack.done() and not ack.cancelled() and ack.exception() is not None)
