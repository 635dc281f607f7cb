"""Strict decoding: every kind of bad input becomes a SchemaError with its reason."""

from __future__ import annotations

import json

import orjson
import pytest

from schemas import MAX_TEXT_CHARS, Message, ModelOutput, Reply, SchemaError, Turn, decode, encode, from_obj, to_dict
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


def turn(**changes: object) -> dict[str, object]:
    history = [HistoryItem("user", "hi", "m0"), HistoryItem("bot", "hey!", "r0"), HistoryItem("user", "so", "m1")]
    base = to_dict(Turn("m", "c", "u", "web", "hi", 1.0, 4, history, 3.0, 4.0, 5.0))
    return {**base, **changes}


def history_with(index: int, item: object) -> list[object]:
    items: list[object] = list(turn()["history"])  # type: ignore[call-overload]
    items[index] = item
    return items


def error_for(data: bytes, cls: type) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        decode(data, cls)
    return info.value


@pytest.mark.parametrize(
    ("payload", "reason", "where"),
    [
        (turn(history={}), "wrong_type", "history"),
        (turn(history=history_with(1, "hey!")), "not_an_object", "history[1]"),
        (turn(history=history_with(2, {"speaker": "user", "text": 7})), "wrong_type", "history[2].text"),
        (turn(history=history_with(0, {"speaker": "alien", "text": "hi"})), "bad_value", "history[0].speaker"),
        (turn(history=history_with(1, {"speaker": "bot"})), "missing_field", "history[1].text"),
        (turn(turn=True), "wrong_type", "turn"),
        (turn(turn=4.5), "wrong_type", "turn"),
        (turn(received_at="4.0"), "wrong_type", "received_at"),
        (turn(history=None), "wrong_type", "history"),
    ],
)
def test_nested_errors_name_the_field_path(payload: dict[str, object], reason: str, where: str) -> None:
    error = error_for(json.dumps(payload).encode(), Turn)  # not orjson: it cannot write 2**70
    assert (error.reason, error.detail.split(":")[0]) == (reason, where)


def test_missing_top_level_field_names_the_field() -> None:
    error = error_for(orjson.dumps({k: v for k, v in turn().items() if k != "deadline_at"}), Turn)
    assert (error.reason, error.detail) == ("missing_field", "deadline_at")


@pytest.mark.parametrize("data", [b'"hello"', b"42", b"null", b"[]"])
def test_a_top_level_value_that_is_not_an_object(data: bytes) -> None:
    error = error_for(data, Message)
    assert error.reason == "not_an_object"
    assert error.detail.startswith("top level")


def test_an_output_whose_turn_is_not_an_object() -> None:
    output = to_dict(ModelOutput("m", "c", "intent", "v1", "intent", "ok", 1.0, 2.0))
    error = error_for(orjson.dumps({**output, "turn": [1]}), ModelOutput)
    assert (error.reason, error.detail.split(":")[0]) == ("not_an_object", "turn")


def test_an_output_checks_the_turn_it_carries() -> None:
    output = to_dict(ModelOutput("m", "c", "intent", "v1", "intent", "ok", 1.0, 2.0))
    assert error_for(orjson.dumps({**output, "turn": turn(text=" ")}), ModelOutput).reason == "empty_text"


@pytest.mark.parametrize(
    "data",
    [
        b'{"message_id": "m\xff"}',  # inside a field msgspec reads
        orjson.dumps(message())[:-1] + b', "later": "\xed\xa0\x80"}',  # inside a field it skips (a surrogate)
        b"\xc3",
    ],
)
def test_invalid_utf8_anywhere_is_not_utf8(data: bytes) -> None:
    assert reason_for(data) == "not_utf8"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        orjson.dumps(message()) + b" trailing",
        b'{"text": NaN}',
        orjson.dumps(message(sent_at=1.5)).replace(b"1.5", b"1e400"),  # orjson never read it as a number
    ],
)
def test_malformed_json(data: bytes) -> None:
    assert reason_for(data) == "invalid_json"


def test_big_integers_are_integers() -> None:
    assert decode(json.dumps(turn(turn=2**70)).encode(), Turn).turn == 2**70


def test_unknown_fields_are_ignored_at_every_level() -> None:
    extra = [{**item, "mood": "chirpy", "nested": {"deep": [1, 2]}} for item in turn()["history"]]  # type: ignore[attr-defined]
    payload = turn(history=extra, added_in_v2={"anything": True}, schema_version=1)
    assert decode(orjson.dumps(payload), Turn) == decode(orjson.dumps(turn()), Turn)


def test_non_ascii_text_round_trips() -> None:
    original = Message("m1", "c1", "u1", "web", "ça va? 👋 مرحبا", 1.5)
    assert decode(encode(original), Message) == original


def test_from_obj_is_as_strict_as_decode() -> None:
    assert from_obj(message(), Message) == decode(orjson.dumps(message()), Message)
    cases = [
        (message(sent_at=True), "wrong_type"),
        (message(sent_at="1.5"), "wrong_type"),
        (message(text=""), "empty_text"),
        ([message()], "not_an_object"),
    ]
    for obj, reason in cases:
        with pytest.raises(SchemaError) as info:
            from_obj(obj, Message)
        assert info.value.reason == reason


def test_from_obj_reads_back_to_dict() -> None:
    original = Turn("m", "c", "u", "web", "hi", 1.0, 2, [HistoryItem("bot", "yo", "m0")], 3.0, 4.0, 5.0)
    assert from_obj(to_dict(original), Turn) == original
    assert to_dict(original)["history"] == [{"speaker": "bot", "text": "yo", "message_id": "m0"}]


def test_schema_error_carries_reason_and_detail() -> None:
    error = SchemaError("wrong_type", "sent_at: Expected `float`")
    assert (error.reason, error.detail, str(error)) == (
        "wrong_type",
        "sent_at: Expected `float`",
        "wrong_type: sent_at: Expected `float`",
    )
