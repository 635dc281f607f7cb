"""Router agent: banter.turns + banter.outputs → banter.replies + banter.events.

The agent joins each turn with its outputs and answers as soon as the policy
allows; a timer enforces each message's deadline, so a reply never waits for
the next message to arrive. State lives in the changelog-backed ``routing`` table.
"""

from __future__ import annotations

import time

from faust import StreamT
from faust.types import EventT

from schemas import ModelOutput, Turn
from streams import routing, tables, topics
from streams.app import metrics, role_agent, role_timer, settings
from streams.client import OncePerMessage
from streams.pipeline import decode_event

CONTEXT = routing.context(settings)
deadlines = routing.Deadlines()
sent_here = OncePerMessage()  # replies this process produced; others found in restored state get resent


@role_agent("router", topics.router_inputs)
async def route_replies(stream: StreamT) -> None:
    """banter.turns + banter.outputs → banter.replies + banter.events."""
    async for event in stream.events():
        await _route(event)


async def _route(event: EventT) -> None:
    if event.message.topic == topics.turns.get_topic_name():
        turn = await decode_event(event, Turn, "router")
        if turn is not None:
            conv = _conversation(turn.conversation_id)
            box = routing.on_turn(conv, turn, event.message.partition, CONTEXT)
            await _save(conv, turn.conversation_id, event, box)
        return
    output = await decode_event(event, ModelOutput, "router")
    if output is not None:
        conv = _conversation(output.conversation_id)
        await _save(conv, output.conversation_id, event, routing.on_output(conv, output, CONTEXT))


def _conversation(conversation_id: str) -> routing.Conversation:
    return tables.routing.get(conversation_id.encode()) or routing.new_conversation()


async def _save(conv: routing.Conversation, conversation_id: str, event: EventT, box: routing.Outbox) -> None:
    """Persist the state (durably before any reply), watch its deadlines, then send."""
    key = conversation_id.encode()
    _claim(box)
    await tables.persist(tables.routing, key, conv, event.message.partition, durable=bool(box.replies))
    _schedule(conv, conversation_id)
    await _send(box)


@role_timer("router", interval=0.01)
async def enforce_deadlines() -> None:
    """Answer every message whose deadline has passed; emit events after their grace."""
    for due in deadlines.pop_due(time.time()):
        key = due.conversation_id.encode()
        conv: routing.Conversation | None = tables.routing.data.get(key)
        entry = conv["pending"].get(due.message_id) if conv else None
        if conv is None or entry is None or entry["partition"] is None:
            continue
        box = routing.on_due(conv, due, CONTEXT)
        _claim(box)
        await tables.persist(tables.routing, key, conv, entry["partition"], durable=bool(box.replies))
        _schedule(conv, due.conversation_id)
        await _send(box)


@role_timer("router", interval=1.0)
async def rescan_pending() -> None:
    """Watch entries restored from the changelog after a restart, and count what waits."""
    waiting = 0
    for key, conv in list(tables.routing.data.items()):
        if conv and conv["pending"]:
            waiting += len(conv["pending"])
            _schedule(conv, key.decode() if isinstance(key, bytes) else str(key))
            # A crash can land the state that records a reply but not the reply itself: resend it.
            await _send(routing.Outbox(replies=routing.unsent_replies(conv, sent_here.first)))
    metrics.pending.set(waiting)


def _claim(box: routing.Outbox) -> None:
    """Mark this process's replies as its own before any await, so the rescan never resends them."""
    for reply in box.replies:
        sent_here.first(reply.message_id)


def _schedule(conv: routing.Conversation, conversation_id: str) -> None:
    for due in routing.due_times(conv, conversation_id, CONTEXT):
        deadlines.add(due)


async def _send(box: routing.Outbox) -> None:
    replies, events = routing.encode_all(box)
    for (key, value), reply in zip(replies, box.replies, strict=True):
        await topics.replies.send(key=key, value=value)
        metrics.replies.labels(reply.source).inc()
        metrics.end_to_end.labels(reply.source).observe(reply.latency_ms / 1000)
        if reply.fallback_reason:
            metrics.fallbacks.labels(reply.fallback_reason).inc()
    for (key, value), event in zip(events, box.events, strict=True):
        await topics.events.send(key=key, value=value)
        metrics.intents.labels(event.intent or "none").inc()
    for model in box.late:
        metrics.late_outputs.labels(model).inc()
