"""Router agent: banter.turns + banter.outputs → banter.replies + banter.events.

The agent joins each turn with its outputs and answers as soon as the policy
allows; a timer enforces each message's deadline, so a reply never waits for
the next message to arrive. State lives in the changelog-backed ``routing`` table.

Work is done a micro-batch at a time, under one lock shared with the timers:
every record of the batch changes the state in memory, then each conversation
touched is written to the changelog once, then the replies and events are sent.
Crash safety rests on two orders: the state that records a reply reaches Kafka
before the reply does (the batch waits for those changelog acks), and an entry
is forgotten only once Kafka acknowledged its reply (``routing.mark_delivered``).
So after kill -9 the restored state either still holds the reply (and the
rescan resends it, same text) or the reply is already on ``banter.replies``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from functools import partial
from typing import Any

from faust import Stream
from faust.types import EventT

from schemas import ModelOutput, Turn
from streams import gaps, routing, tables, topics
from streams.app import metrics, role_agent, role_timer, settings
from streams.pipeline import decode_event, guarded

CONTEXT = routing.context(settings)
deadlines = routing.Deadlines()
step = asyncio.Lock()  # one state change at a time, from its decision to its records sent
delivering: dict[str, Awaitable[Any]] = {}  # message_id -> Kafka's ack of the reply this process sent

Touched = dict[str, tuple[routing.Conversation, int]]  # conversation_id -> (state, partition)


@role_agent("router", topics.router_inputs)
async def route_replies(stream: Stream) -> None:
    """banter.turns + banter.outputs → banter.replies + banter.events, a micro-batch at a time."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


async def _route_all(events: list[EventT]) -> None:
    async with step:
        touched: Touched = {}
        box = routing.Outbox()
        for event in events:
            routed = await guarded(event, "router", partial(_route, event, touched))
            box.add(routed or routing.Outbox())
        await _commit(touched, box)


async def _route(event: EventT, touched: Touched) -> routing.Outbox:
    partition = event.message.partition
    if event.message.topic == topics.turns.get_topic_name():
        turn = await decode_event(event, Turn, "router")
        if turn is None:
            return routing.Outbox()
        conv = _open(turn.conversation_id, partition, touched)
        return routing.on_turn(conv, turn, partition, CONTEXT)
    output = await decode_event(event, ModelOutput, "router")
    if output is None:
        return routing.Outbox()
    conv = _open(output.conversation_id, partition, touched)
    return routing.on_output(conv, output, CONTEXT, partition)


INPUTS = gaps.Inputs("router", topics.router_inputs.topics, _route_all)


def _open(conversation_id: str, partition: int, touched: Touched) -> routing.Conversation:
    """The conversation's state for this batch, with the replies Kafka acked since marked."""
    if conversation_id not in touched:
        conv = tables.routing.data.get(conversation_id.encode()) or routing.new_conversation()
        _settle(conv)
        touched[conversation_id] = (conv, partition)
    return touched[conversation_id][0]


def _settle(conv: routing.Conversation) -> None:
    """Mark the replies Kafka acked; a failed send is forgotten here, so the rescan resends it."""
    routing.mark_delivered(conv, _acked)
    for mid, entry in conv["pending"].items():
        ack = delivering.get(mid)
        if ack is not None and (entry.get("delivered") or _failed(ack)):
            del delivering[mid]


@role_timer("router", interval=0.01)
async def enforce_deadlines() -> None:
    """Answer every message whose deadline has passed; emit events after their grace."""
    due = deadlines.pop_due(time.time())
    if not due:
        return
    async with step:
        touched: Touched = {}
        box = routing.Outbox()
        for item in due:
            conv = tables.routing.data.get(item.conversation_id.encode())
            entry = conv["pending"].get(item.message_id) if conv else None
            if conv is None or entry is None or entry["partition"] is None:
                continue
            conv = _open(item.conversation_id, entry["partition"], touched)
            box.add(routing.on_due(conv, item, CONTEXT))
        await _commit(touched, box)


@role_timer("router", interval=1.0)
async def rescan_pending() -> None:
    """Resend replies restored without their send after a restart, forget entries whose replies
    Kafka acked since, and count what waits."""
    waiting, work = 0, []
    for key, conv in list(tables.routing.data.items()):
        if not conv or not conv["pending"]:
            continue
        waiting += len(conv["pending"])
        conversation_id = key.decode() if isinstance(key, bytes) else str(key)
        _schedule(conv, conversation_id)
        if routing.unsent_replies(conv, delivering.__contains__) or _newly_acked(conv):
            work.append(conversation_id)
    metrics.pending.set(waiting)
    if work:
        async with step:  # the state may have moved on while the lock was awaited: it is read again
            touched: Touched = {}
            box = routing.Outbox()
            for conversation_id in work:
                box.add(_settle_restored(conversation_id, touched))
            await _commit(touched, box)


def _settle_restored(conversation_id: str, touched: Touched) -> routing.Outbox:
    """What this process never sent, and what Kafka acked since, for one conversation."""
    conv = tables.routing.data.get(conversation_id.encode())
    partitions = [e["partition"] for e in conv["pending"].values() if e["partition"] is not None] if conv else []
    if not partitions:
        return routing.Outbox()
    conv = _open(conversation_id, partitions[0], touched)
    box = routing.Outbox(replies=routing.unsent_replies(conv, delivering.__contains__))
    box.add(routing.release(conv))
    return box


def _newly_acked(conv: routing.Conversation) -> bool:
    return any(entry["reply"] is not None and not entry.get("delivered") and _acked(mid)
               for mid, entry in conv["pending"].items())  # fmt: skip


async def _commit(touched: Touched, box: routing.Outbox) -> None:
    """Write each touched conversation once; with replies to send, wait until Kafka holds that state."""
    writes = [tables.persist(tables.routing, cid.encode(), conv, partition, durable=bool(box.replies))
              for cid, (conv, partition) in touched.items()]  # fmt: skip
    await asyncio.gather(*writes)
    for cid, (conv, _) in touched.items():
        _schedule(conv, cid)
    await _send(box)


def _acked(message_id: str) -> bool:
    """Kafka acknowledged the reply this process sent."""
    ack = delivering.get(message_id)
    return ack is not None and ack.done() and not _failed(ack)  # type: ignore[attr-defined]


def _failed(ack: Any) -> bool:
    return bool(ack.done() and not ack.cancelled() and ack.exception() is not None)


def _schedule(conv: routing.Conversation, conversation_id: str) -> None:
    for due in routing.due_times(conv, conversation_id, CONTEXT):
        deadlines.add(due)


async def _send(box: routing.Outbox) -> None:
    replies, events = routing.encode_all(box)
    for (key, value), reply in zip(replies, box.replies, strict=True):
        delivering[reply.message_id] = await topics.replies.send(key=key, value=value)
        metrics.replies.labels(reply.source).inc()
        metrics.end_to_end.labels(reply.source).observe(reply.latency_ms / 1000)
        if reply.fallback_reason:
            metrics.fallbacks.labels(reply.fallback_reason).inc()
    for (key, value), event in zip(events, box.events, strict=True):
        await topics.events.send(key=key, value=value)
        metrics.intents.labels(event.intent or "none").inc()
    for model in box.late:
        metrics.late_outputs.labels(model).inc()
