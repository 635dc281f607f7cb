"""Context agent: banter.messages + banter.replies → banter.turns (and the conversations table).

A user's message becomes a turn carrying its recent history and deadline; a
bot's reply enters the history. Each conversation a batch touched is written to
the changelog once, after the batch; one idle for ``BANTER_STATE_IDLE_S`` is
forgotten, with a tombstone, so that a restart does not read it back.
"""

from __future__ import annotations

import time
from functools import partial

from models import context
from schemas import HistoryItem, Message, Reply, Turn, encode
from streams import tables, topics
from streams.app import agent, metrics, settings, timer
from streams.inputs import Record, seconds_since_produced

Touched = dict[bytes, tuple[context.State, int]]  # conversation key -> (state, partition)
REPLIES = settings.topic("replies")
EXPIRE_EVERY_S = 60.0


@agent("context", topics.context_inputs)
async def track_context(records: list[Record]) -> None:
    """banter.messages → banter.turns; banter.replies → the bot's side of the history."""
    touched: Touched = {}
    for record in records:
        handle = _record_reply if record.message.topic == REPLIES else _record_message
        await topics.inputs.guarded(record, "context", partial(handle, record, touched))
    for key, (state, partition) in touched.items():
        state["partition"] = partition  # where its tombstone goes when it expires
        tables.write(tables.conversations, key, state, partition)


@timer("context", interval=EXPIRE_EVERY_S)
async def forget_idle_conversations() -> None:
    """Conversations idle for longer than ``BANTER_STATE_IDLE_S``: out of memory and the changelog."""
    await tables.expire(tables.conversations, lambda state, now: context.idle(state, now, settings.state_idle_s))


def _state(key: bytes, touched: Touched) -> context.State | None:
    return touched[key][0] if key in touched else tables.conversations.data.get(key)


async def _record_message(record: Record, touched: Touched) -> None:
    message = await topics.inputs.decode(record, Message, "context")
    if message is None:
        return
    key = message.conversation_id.encode()
    if record.key != key:  # keyed wrongly: re-key it so the conversation stays on one partition
        await topics.messages.send(key=key, value=record.value)
        return
    now = time.time()
    state = _state(key, touched) or context.new_state(now)
    state, window = context.user_turn(state, message.message_id, message.text, now, settings.history_turns)
    touched[key] = (state, record.message.partition)
    await topics.turns.send(key=key, value=encode(_turn(message, window, record, now)))
    metrics.messages.inc()
    metrics.stage_latency.labels("context").observe(seconds_since_produced(record))


async def _record_reply(record: Record, touched: Touched) -> None:
    reply = await topics.inputs.decode(record, Reply, "context")
    if reply is None:
        return
    key = reply.conversation_id.encode()
    state = _state(key, touched)
    if state is not None:
        state = context.bot_turn(state, reply.message_id, reply.text, settings.history_turns, time.time())
        touched[key] = (state, record.message.partition)


def _turn(message: Message, window: dict, record: Record, now: float) -> Turn:
    received = min(record.message.timestamp, now)
    budget_s = settings.budget_for(message.platform) / 1000
    history = [HistoryItem(i["speaker"], i["text"], i["message_id"]) for i in window["history"]]
    return Turn(
        message_id=message.message_id,
        conversation_id=message.conversation_id,
        user_id=message.user_id,
        platform=message.platform,
        text=message.text,
        sent_at=message.sent_at,
        turn=window["turn"],
        history=history,
        conversation_age_s=window["conversation_age_s"],
        received_at=received,
        deadline_at=received + budget_s,
    )
