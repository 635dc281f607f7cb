"""Router agent: banter.turns + banter.outputs → banter.replies + banter.events.

The agent joins each turn with its outputs and answers as soon as the policy
allows; a timer enforces each message's deadline, so a reply never waits for
the next message to arrive. State lives in the changelog-backed ``routing`` table.

Crash safety rests on two orders, kept by every step (agent, timers) under one lock:
the state that records a reply reaches Kafka before the reply does, and a reply
reaches Kafka before the state that forgets its entry does. So after kill -9 the
restored state either still holds the reply (and the rescan resends it, same
text) or the reply is already on ``banter.replies``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from faust import StreamT
from faust.types import EventT

from schemas import ModelOutput, Reply, Turn
from streams import gaps, routing, tables, topics
from streams.app import metrics, role_agent, role_timer, settings
from streams.pipeline import decode_event

CONTEXT = routing.context(settings)
deadlines = routing.Deadlines()
step = asyncio.Lock()  # one state change at a time, from its decision to its records sent
delivering: dict[str, Awaitable[Any]] = {}  # message_id -> Kafka's ack of the reply this process sent


@role_agent("router", topics.router_inputs)
async def route_replies(stream: StreamT) -> None:
    """banter.turns + banter.outputs → banter.replies + banter.events."""
    async for event in stream.events():
        await INPUTS.take([event])


async def _route_all(events: list[EventT]) -> None:
    for event in events:
        async with step:
            await _route(event)


async def _route(event: EventT) -> None:
    if event.message.topic == topics.turns.get_topic_name():
        turn = await decode_event(event, Turn, "router")
        if turn is not None:
            conv = _conversation(turn.conversation_id)
            box = routing.on_turn(conv, turn, event.message.partition, CONTEXT)
            await _commit(conv, turn.conversation_id, event.message.partition, box)
        return
    output = await decode_event(event, ModelOutput, "router")
    if output is not None:
        conv = _conversation(output.conversation_id)
        box = routing.on_output(conv, output, CONTEXT, event.message.partition)
        await _commit(conv, output.conversation_id, event.message.partition, box)


INPUTS = gaps.Inputs("router", topics.router_inputs.topics, _route_all)


def _conversation(conversation_id: str) -> routing.Conversation:
    return tables.routing.get(conversation_id.encode()) or routing.new_conversation()


@role_timer("router", interval=0.01)
async def enforce_deadlines() -> None:
    """Answer every message whose deadline has passed; emit events after their grace."""
    for due in deadlines.pop_due(time.time()):
        async with step:
            key = due.conversation_id.encode()
            conv: routing.Conversation | None = tables.routing.data.get(key)
            entry = conv["pending"].get(due.message_id) if conv else None
            if conv is None or entry is None or entry["partition"] is None:
                continue
            await _commit(conv, due.conversation_id, entry["partition"], routing.on_due(conv, due, CONTEXT))


@role_timer("router", interval=1.0)
async def rescan_pending() -> None:
    """Watch entries restored from the changelog after a restart, and count what waits."""
    waiting = 0
    for key, conv in list(tables.routing.data.items()):
        if conv and conv["pending"]:
            waiting += len(conv["pending"])
            conversation_id = key.decode() if isinstance(key, bytes) else str(key)
            _schedule(conv, conversation_id)
            # A crash can land the state that records a reply but not the reply: resend it. The lock is
            # taken only when there is something to resend, and the check is repeated under it.
            if routing.unsent_replies(conv, delivering.__contains__):
                async with step:
                    await _send(routing.Outbox(replies=routing.unsent_replies(conv, delivering.__contains__)))
    metrics.pending.set(waiting)


async def _commit(conv: routing.Conversation, conversation_id: str, partition: int, box: routing.Outbox) -> None:
    """Make one state change durable in the right order, watch its deadlines, then send its records."""
    await _delivered(box.finished)
    routing.mark_delivered(conv, _acked)
    await tables.persist(tables.routing, conversation_id.encode(), conv, partition, durable=bool(box.replies))
    _schedule(conv, conversation_id)
    await _send(box)


async def _delivered(replies: list[Reply]) -> None:
    """Wait until Kafka holds each reply (sending it first if this process never did)."""
    for reply in replies:
        if reply.message_id not in delivering:
            await _send(routing.Outbox(replies=[reply]))
        await delivering.pop(reply.message_id)


def _acked(message_id: str) -> bool:
    ack = delivering.get(message_id)
    return ack is not None and ack.done()  # type: ignore[attr-defined]


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
