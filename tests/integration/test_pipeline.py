"""The whole pipeline on the real broker: message to reply, bad input to the dead
letters (with valid messages around it still answered), and order per conversation."""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from typing import Any

import orjson

from schemas import DeadLetter, Event, Message, Reply, decode, encode, to_dict
from schemas.codec import from_obj
from streams.client import connected, new_message
from tests.integration.kafka_io import produce, read_topic


def test_a_message_gets_one_reply_and_one_event(worker_factory: Any) -> None:
    worker = worker_factory()
    worker.wait_ready()
    settings = worker.settings

    async def scenario() -> Reply:
        async with connected(settings) as client:
            return await client.ask(new_message("what's the weather like?", "conv-1"), 60)

    reply = asyncio.run(scenario())
    assert reply.text.strip()
    assert reply.source in {"canned", "retrieval", "generative", "fallback"}

    def mine(records: list[Any]) -> list[Any]:
        kind = Reply if records and records[0].topic.endswith("replies") else Event
        return [r for r in records if decode(r.value, kind).message_id == reply.message_id]

    replies = asyncio.run(read_topic(settings, "replies", lambda rs: False, 3.0))
    events = asyncio.run(read_topic(settings, "events", lambda rs: len(mine(rs)) >= 1, 30.0))
    assert len(mine(replies)) == 1
    (event_record,) = mine(events)
    event = decode(event_record.value, Event)
    assert event.source == reply.source
    assert {c.model for c in event.candidates} >= {"intent", "responder"}


def _valid(i: int) -> Message:
    return new_message(f"hello number {i}, how are you?", f"dlq-{i % 3}", platform="test")


def _bad_inputs() -> list[tuple[bytes | None, bytes, str]]:
    valid = to_dict(_valid(99))
    without_text = {k: v for k, v in valid.items() if k != "text"}
    return [
        (b"dlq-0", b"{this is not json", "invalid_json"),
        (b"dlq-0", orjson.dumps(without_text), "missing_field"),
        (b"dlq-1", orjson.dumps({**valid, "sent_at": "noon"}), "wrong_type"),
        (b"dlq-1", orjson.dumps({**valid, "text": "   "}), "empty_text"),
        (b"dlq-2", orjson.dumps({**valid, "text": "x" * 5000}), "text_too_long"),
        (b"dlq-2", b"\xff\xfe\xfa not utf-8 at all", "not_utf8"),
    ]


def test_bad_input_goes_to_dead_letters_and_valid_messages_still_get_replies(worker_factory: Any) -> None:
    worker = worker_factory()
    worker.wait_ready()
    settings = worker.settings
    valid = [_valid(i) for i in range(6)]
    bad = _bad_inputs()
    records: list[tuple[bytes | None, bytes]] = []
    for message, (key, value, _) in zip(valid, bad, strict=True):  # interleaved: good, bad, good, bad...
        records += [(message.conversation_id.encode(), encode(message)), (key, value)]
    asyncio.run(produce(settings, records))

    dead = asyncio.run(read_topic(settings, "deadletter", lambda rs: len(rs) >= len(bad), 60.0))
    letters = [from_obj(orjson.loads(r.value), DeadLetter) for r in dead]
    assert sorted(letter.reason for letter in letters) == sorted(reason for _, _, reason in bad)
    assert {base64.b64decode(letter.original) for letter in letters} == {value for _, value, _ in bad}
    assert all(letter.topic == settings.topic("messages") and letter.offset >= 0 for letter in letters)
    assert {letter.agent for letter in letters} == {"context"}

    wanted = {m.message_id for m in valid}

    def answered(records: list[Any]) -> set[str]:
        return {decode(r.value, Reply).message_id for r in records}

    replies = asyncio.run(read_topic(settings, "replies", lambda rs: wanted <= answered(rs), 60.0))
    assert wanted <= answered(replies)


def test_order_is_kept_within_each_of_200_interleaved_conversations(worker_factory: Any) -> None:
    worker = worker_factory()
    worker.wait_ready()
    settings = worker.settings
    conversations, per_conversation = 200, 3
    sent: dict[str, list[str]] = defaultdict(list)
    records = []
    for round_ in range(per_conversation):
        for c in range(conversations):
            text = f"message {round_} in chat {c}: tell me something fun"
            message = new_message(text, f"order-{c}", platform="test")
            sent[message.conversation_id].append(message.message_id)
            records.append((message.conversation_id.encode(), encode(message)))
    asyncio.run(produce(settings, records))
    total = conversations * per_conversation
    assert _by_conversation(settings, "replies", Reply, sent, total) == sent
    assert _by_conversation(settings, "events", Event, sent, total) == sent


def _by_conversation(settings: Any, topic: str, kind: type, sent: dict[str, list[str]], total: int) -> dict:
    """Message ids per conversation, in the order the topic holds them (ours only, not the probe's)."""

    def ours(records: list[Any]) -> list[Any]:
        return [r for r in map(lambda rec: decode(rec.value, kind), records) if r.conversation_id in sent]

    records = asyncio.run(read_topic(settings, topic, lambda rs: len({r.message_id for r in ours(rs)}) >= total, 240.0))
    got: dict[str, list[str]] = defaultdict(list)
    for record in ours(records):
        got[record.conversation_id].append(record.message_id)
    return got
