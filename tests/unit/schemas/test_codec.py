"""Strict decoding: every kind of bad input becomes a SchemaError with its reason."""

from __future__ import annotations

import orjson
import pytest

from schemas import MAX_TEXT_CHARS, Message, ModelOutput, Reply, SchemaError, Turn, decode, encode, to_dict
from schemas.records import HistoryItem


def message(**changes: object) -> dict[str, object]:
    base = to_dict(Message("m1", "c1", "u1", "web", "hello", 1.5))
    return {**base, **changes}


def reason_for(data: bytes) -> str:
    with pytest.raises(SchemaError) as info:
        decode(data, Message)
    return info.value.reason


def test_round_trip() -> None:
    original = Message("m1", "c1", "u1", "web", "héllo 👋", 1.5)
    assert decode(encode(original), Message) == original


def test_turn_round_trip_with_nested_history() -> None:
    turn = Turn("m", "c", "u", "web", "hi", 1.0, 2, [HistoryItem("bot", "yo", "m0")], 3.0, 4.0, 5.0)
    assert decode(encode(turn), Turn) == turn


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "not_utf8"),
        (b"[1, 2]", "not_an_object"),
        (orjson.dumps({k: v for k, v in message().items() if k != "text"}), "missing_field"),
        (orjson.dumps(message(sent_at="yesterday")), "wrong_type"),
        (orjson.dumps(message(sent_at=True)), "wrong_type"),
        (orjson.dumps(message(text=42)), "wrong_type"),
        (orjson.dumps(message(text="   \n")), "empty_text"),
        (orjson.dumps(message(text="x" * (MAX_TEXT_CHARS + 1))), "text_too_long"),
        (orjson.dumps(message(schema_version=99)), "unknown_schema_version"),
        (orjson.dumps(message(conversation_id="")), "empty_field"),
    ],
)
def test_bad_input_has_a_reason(data: bytes, reason: str) -> None:
    assert reason_for(data) == reason


def test_none_is_an_error_not_a_crash() -> None:
    with pytest.raises(SchemaError, match="empty_payload"):
        decode(None, Message)


def test_integers_are_accepted_as_numbers() -> None:
    assert decode(orjson.dumps(message(sent_at=2)), Message).sent_at == 2.0


def test_literal_fields_are_checked() -> None:
    output = to_dict(ModelOutput("m", "c", "intent", "v1", "intent", "ok", 1.0, 2.0))
    with pytest.raises(SchemaError, match="bad_value"):
        decode(orjson.dumps({**output, "status": "maybe"}), ModelOutput)


def test_optional_fields_take_null() -> None:
    reply = Reply("m", "c", "u", "web", "hi", "canned", None, 12.0, 3.0)
    assert decode(encode(reply), Reply).intent is None
