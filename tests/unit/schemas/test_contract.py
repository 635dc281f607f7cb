"""The published contract: the checked-in files are what the code generates, and a JSON
Schema validator agrees with ``schemas.decode`` on valid and invalid records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from schemas import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Candidate,
    DeadLetter,
    Event,
    Message,
    ModelOutput,
    Reply,
    SchemaError,
    Turn,
    TurnRef,
    contract,
    decode,
    encode,
    to_dict,
)
from schemas.records import HistoryItem
from streams.kafka import TOPICS

ROOT = Path(contract.__file__).parent


def validator(topic: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / contract.schema_file(topic)).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def decodes(data: bytes, cls: type) -> bool:
    try:
        decode(data, cls)
    except SchemaError:
        return False
    return True


def test_the_checked_in_contract_is_what_the_code_generates() -> None:
    stale = contract.stale(ROOT)
    assert not stale, f"run `banter contract`: {[str(p.relative_to(ROOT)) for p in stale]} differ from the code"


def test_every_topic_has_a_schema() -> None:
    assert set(contract.TOPIC_RECORDS) == set(TOPICS)
    for topic in TOPICS:
        validator(topic)  # a valid 2020-12 schema


MESSAGE = to_dict(Message("m1", "c1", "u1", "web", "hello there", 1_764_500_000.5))


def message(**changes: Any) -> bytes:
    return orjson.dumps({**MESSAGE, **changes})


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        (message(), True),
        (message(sent_at="2026-11-30T12:00:00Z"), True),
        (message(sent_at="2026-11-30T12:00:00.250+02:00"), True),
        (message(sent_at=1_764_500_000), True),
        (message(new_field={"from": "the future"}, another=[1, 2]), True),
        (orjson.dumps({k: v for k, v in MESSAGE.items() if k != "schema_version"}), True),
        (message(text="x" * MAX_TEXT_CHARS), True),
        (message(text="héllo 👋"), True),
        (orjson.dumps({k: v for k, v in MESSAGE.items() if k != "text"}), False),
        (orjson.dumps({k: v for k, v in MESSAGE.items() if k != "sent_at"}), False),
        (message(sent_at="noon"), False),
        (message(sent_at="2026-11-30T12:00:00"), False),  # no UTC offset
        (message(sent_at=True), False),
        (message(sent_at=None), False),
        (message(text=42), False),
        (message(text="   \n"), False),
        (message(text=""), False),
        (message(text="x" * (MAX_TEXT_CHARS + 1)), False),
        (message(conversation_id=""), False),
        (message(user_id=" "), False),
        (message(message_id="m" * (MAX_ID_CHARS + 1)), False),
        (message(platform=None), False),
        (message(schema_version=2), False),
        (message(schema_version="1"), False),
        (b"[1, 2]", False),
        (b'"a string"', False),
    ],
)
def test_json_schema_and_decode_agree_on_messages(data: bytes, valid: bool) -> None:
    assert validator("messages").is_valid(orjson.loads(data)) is valid
    assert decodes(data, Message) is valid


def _records() -> dict[str, Any]:
    ref = TurnRef("m1", "c1", "u1", "web", "hi", 2, 10.0, 11.0, ["yo"])
    return {
        "messages": Message("m1", "c1", "u1", "web", "hi", 1.0),
        "turns": Turn("m1", "c1", "u1", "web", "hi", 1.0, 2, [HistoryItem("bot", "yo", "m0")], 3.0, 10.0, 11.0),
        "outputs": ModelOutput(
            "m1",
            "c1",
            "understand",
            "v1",
            "understanding",
            "ok",
            3.5,
            10.2,
            label="greeting",
            confidence=0.9,
            in_scope=True,
            text="hey",
            score=0.7,
            turn=ref,
            versions={"intent": "v1", "responder": "v2"},
        ),
        "replies": Reply("m1", "c1", "u1", "web", "hey you", "canned", "greeting", 120.0, 10.3, model="persona"),
        "events": Event(
            "m1",
            "c1",
            "web",
            2,
            "greeting",
            0.9,
            "canned",
            None,
            120.0,
            [Candidate("intent", "v1", "intent", "ok", 3.0, picked=True, label="greeting")],
            ["love_declaration"],
            10.3,
        ),
        "deadletter": DeadLetter("invalid_json", "x", "banter.messages", 3, 42, "context", "e30=", 10.0, "c1"),
    }


@pytest.mark.parametrize("topic", TOPICS)
def test_records_the_code_writes_are_valid(topic: str) -> None:
    record = _records()[topic]
    data = orjson.loads(encode(record))
    assert validator(topic).is_valid(data)
    assert decodes(encode(record), type(record))


def _mutations(topic: str) -> list[tuple[str, dict[str, Any]]]:
    """(what, change) pairs that both the schema and decode must refuse."""
    common: list[tuple[str, dict[str, Any]]] = [("reason is a number", {"reason": 7})]
    if topic != "deadletter":  # a dead letter carries what could not be read: no version check, no message_id
        common = [("message_id is a number", {"message_id": 7}), ("schema_version 9", {"schema_version": 9})]
    specific: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "messages": [("empty text", {"text": " "})],
        "turns": [("history speaker", {"history": [{"speaker": "alien", "text": "x"}]}), ("no turn", {"turn": None})],
        "outputs": [
            ("status", {"status": "maybe"}),
            ("turn text empty", {"turn": {**to_dict(_records()["outputs"])["turn"], "text": ""}}),
        ],
        "replies": [("source", {"source": "magic"}), ("latency", {"latency_ms": "fast"})],
        "events": [
            (
                "candidate kind",
                {"candidates": [{"model": "x", "version": "1", "kind": "vibes", "status": "ok", "latency_ms": 1.0}]},
            )
        ],
        "deadletter": [("offset", {"offset": 1.5}), ("partition", {"partition": "3"})],
    }
    return common + specific[topic]


@pytest.mark.parametrize("topic", TOPICS)
def test_json_schema_and_decode_refuse_the_same_records(topic: str) -> None:
    record = _records()[topic]
    for what, change in _mutations(topic):
        data = {**to_dict(record), **change}
        assert not validator(topic).is_valid(data), what
        assert not decodes(orjson.dumps(data), type(record)), what


@pytest.mark.parametrize("topic", TOPICS)
def test_a_missing_required_field_is_refused_by_both(topic: str) -> None:
    record = _records()[topic]
    schema = json.loads((ROOT / contract.schema_file(topic)).read_text())
    (definition,) = [d for name, d in schema["$defs"].items() if name == type(record).__name__]
    for field in definition["required"]:
        data = {k: v for k, v in to_dict(record).items() if k != field}
        assert not validator(topic).is_valid(data), field
        assert not decodes(orjson.dumps(data), type(record)), field


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_names_every_topic_its_key_and_its_schema() -> None:
    document = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == set(TOPICS)
    for topic, channel in document["channels"].items():
        assert channel["address"] == f"{{prefix}}.{topic}"
        assert set(channel["parameters"]) == {"prefix"}
        (ref,) = [m["$ref"] for m in channel["messages"].values()]
        message = _resolve(document, ref)
        assert message["contentType"] == "application/json"
        assert "conversation_id" in message["bindings"]["kafka"]["key"]["description"]
        payload = message["payload"]["$ref"]
        assert (ROOT / payload).resolve() == (ROOT / contract.schema_file(topic)).resolve()
        assert (ROOT / payload).exists()
    for name, operation in document["operations"].items():
        assert operation["action"] in {"send", "receive"}, name
        channel = _resolve(document, operation["channel"]["$ref"])
        for ref in operation["messages"]:
            assert _resolve(document, ref["$ref"]) in channel["messages"].values()


def test_openapi_document_refers_only_to_components_it_has() -> None:
    document = json.loads((ROOT / "openapi.json").read_text())
    assert document == contract.openapi()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        _resolve(document, ref)
