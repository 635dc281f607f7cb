"""Context agent: banter.messages + banter.replies → banter.turns (and the conversations table)."""

from __future__ import annotations

import time
from functools import partial

from faust import Stream
from faust.types import EventT

from models import context
from schemas import HistoryItem, Message, Reply, Turn, encode
from streams import gaps, tables, topics
from streams.app import metrics, role_agent, settings
from streams.pipeline import decode_event, guarded, seconds_since_produced


@role_agent("context", topics.context_inputs)
async def track_context(stream: Stream) -> None:
    """banter.messages → banter.turns; banter.replies → the bot's side of the history."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


Touched = dict[bytes, tuple[context.State, int]]  # conversation key -> (state, partition)


async def _record(events: list[EventT]) -> None:
    """Each conversation the batch touched is written to the changelog once, after the batch."""
    touched: Touched = {}
    for event in events:
        record = _record_reply if event.message.topic == topics.replies.get_topic_name() else _record_message
        await guarded(event, "context", partial(record, event, touched))
    for key, (state, partition) in touched.items():
        await tables.persist(tables.conversations, key, state, partition, durable=False)


def _state(key: bytes, touched: Touched) -> context.State | None:
    return touched[key][0] if key in touched else tables.conversations.data.get(key)


INPUTS = gaps.Inputs("context", topics.context_inputs.topics, _record)


async def _record_message(event: EventT, touched: Touched) -> None:
    message = await decode_event(event, Message, "context")
    if message is None:
        return
    key = message.conversation_id.encode()
    if event.key != key:  # keyed wrongly: re-key it so the conversation stays on one partition
        await topics.messages.send(key=key, value=event.value)
        return
    now = time.time()
    state = _state(key, touched) or context.new_state(now)
    state, ctx = context.user_turn(state, message.message_id, message.text, now, settings.history_turns)
    touched[key] = (state, event.message.partition)
    await topics.turns.send(key=key, value=encode(_turn(message, ctx, event, now)))
    metrics.messages.inc()
    metrics.stage_latency.labels("context").observe(seconds_since_produced(event))


async def _record_reply(event: EventT, touched: Touched) -> None:
    reply = await decode_event(event, Reply, "context")
    if reply is None:
        return
    key = reply.conversation_id.encode()
    state = _state(key, touched)
    if state is not None:
        state = context.bot_turn(state, reply.message_id, reply.text, settings.history_turns)
        touched[key] = (state, event.message.partition)


def _turn(message: Message, ctx: dict, event: EventT, now: float) -> Turn:
    received = min(event.message.timestamp, now)
    budget_s = settings.budget_for(message.platform) / 1000
    history = [HistoryItem(i["speaker"], i["text"], i["message_id"]) for i in ctx["history"]]
    return Turn(
        message_id=message.message_id, conversation_id=message.conversation_id,
        user_id=message.user_id, platform=message.platform, text=message.text,
        sent_at=message.sent_at, turn=ctx["turn"], history=history,
        conversation_age_s=ctx["conversation_age_s"], received_at=received,
        deadline_at=received + budget_s,
    )  # fmt: skip
