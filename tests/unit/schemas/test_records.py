"""Records as code sees them: built by position or keyword, frozen, unvalidated
until decoded, in wire order; ``Message.sent_at`` is always epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import Event, HistoryItem, Message, ModelOutput, SchemaError, Turn, decode, encode, replace, to_dict

WHEN = datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC).timestamp()


def message(**changes: object) -> bytes:
    return orjson.dumps({**to_dict(Message("m1", "c1", "u1", "web", "hello", 1.5)), **changes})


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-06T07:08:09.5Z",
        "2024-05-06T07:08:09.500+00:00",
        "2024-05-06T09:08:09.5+02:00",
        "2024-05-06t07:08:09.5z",
    ],
)
def test_sent_at_takes_an_rfc3339_timestamp(stamp: str) -> None:
    sent_at = decode(message(sent_at=stamp), Message).sent_at
    assert type(sent_at) is float
    assert sent_at == pytest.approx(WHEN)


def test_sent_at_as_a_number_is_a_float() -> None:
    assert type(decode(message(sent_at=17), Message).sent_at) is float


def test_a_timestamp_without_a_timezone_is_rejected() -> None:
    with pytest.raises(SchemaError) as info:
        decode(message(sent_at="2024-05-06T07:08:09"), Message)
    assert info.value.reason == "bad_value"
    assert info.value.detail.startswith("sent_at:")
    assert "timezone" in info.value.detail


@pytest.mark.parametrize("value", ["2024-05-06", "noon", None, [], True, False])
def test_sent_at_of_the_wrong_type(value: object) -> None:
    with pytest.raises(SchemaError) as info:
        decode(message(sent_at=value), Message)
    assert (info.value.reason, info.value.detail.split(":")[0]) == ("wrong_type", "sent_at")


def test_a_message_built_with_a_datetime_holds_epoch_seconds() -> None:
    built = Message("m1", "c1", "u1", "web", "hi", datetime.fromtimestamp(WHEN, UTC))  # type: ignore[arg-type]
    assert built.sent_at == WHEN
    assert orjson.loads(encode(built))["sent_at"] == WHEN


def test_positional_and_keyword_construction_agree() -> None:
    assert HistoryItem("bot", "yo", "m0") == HistoryItem(speaker="bot", text="yo", message_id="m0")
    assert HistoryItem("user", "hi").message_id == ""
    output = ModelOutput("m", "c", "gen", "v1", "reply", "ok", 1.0, 2.0, text="hey", score=0.5)
    assert (output.text, output.turn, output.schema_version) == ("hey", None, 1)


def test_records_built_in_code_are_not_validated_until_decoded() -> None:
    bad = Message("m1", "", "u1", "web", "   ", 1.5)
    with pytest.raises(SchemaError, match="empty_field"):
        bad.check()
    with pytest.raises(SchemaError, match="empty_field"):
        decode(encode(bad), Message)


def test_records_are_frozen_and_replace_makes_a_copy() -> None:
    original = Message("m1", "c1", "u1", "web", "hello", 1.5)
    with pytest.raises(AttributeError):
        original.text = "changed"  # type: ignore[misc]
    changed = replace(original, text="changed")
    assert (original.text, changed.text, changed.message_id) == ("hello", "changed", "m1")


def test_default_lists_are_not_shared() -> None:
    first, second = (Event("m", "c", "web", 1, None, None, "canned", None, 3.0) for _ in range(2))
    first.flags.append("x")
    assert second.flags == []


def test_the_wire_keeps_field_order() -> None:
    turn = Turn("m", "c", "u", "web", "hi", 1.0, 2, [HistoryItem("bot", "yo", "m0")], 3.0, 4.0, 5.0)
    assert list(orjson.loads(encode(turn))) == [
        "message_id",
        "conversation_id",
        "user_id",
        "platform",
        "text",
        "sent_at",
        "turn",
        "history",
        "conversation_age_s",
        "received_at",
        "deadline_at",
        "schema_version",
    ]
    assert encode(turn) == orjson.dumps(to_dict(turn))
