"""The published wire contract, generated from the record Structs so that it cannot drift.

``render()`` gives every file of the contract as text: a JSON Schema per topic
(``schemas/json/<topic>.schema.json``), the AsyncAPI document of the topics
(``schemas/asyncapi.yaml``) and the gateway's OpenAPI document
(``schemas/openapi.json``). ``banter contract`` writes them; a unit test fails
when the checked-in files differ from what the code would write.

msgspec describes the types; ``check()`` holds constraints beyond types (an
empty or oversized id or text, the schema version), and those are added here
so that a JSON Schema validator and ``schemas.decode`` agree on a record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import yaml

from schemas.http import Conversation, ErrorBody, MessageRequest, MessageStatus
from schemas.records import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    SCHEMA_VERSION,
    DeadLetter,
    Event,
    Message,
    ModelOutput,
    Reply,
    Turn,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_WAIT_MS = 30_000  # the longest a POST may wait for its reply (?wait_ms=)
TOPIC_RECORDS: dict[str, type[msgspec.Struct]] = {
    "messages": Message,
    "turns": Turn,
    "outputs": ModelOutput,
    "replies": Reply,
    "events": Event,
    "deadletter": DeadLetter,
}
WRITERS = {
    "messages": "platforms and the gateway",
    "turns": "the context agent",
    "outputs": "the understand and generator agents",
    "replies": "the router agent",
    "events": "the router agent",
    "deadletter": "every agent",
}

_ID = {"maxLength": MAX_ID_CHARS, "pattern": r"\S"}
_TEXT = {"maxLength": MAX_TEXT_CHARS, "pattern": r"\S"}
_VERSION = {"const": SCHEMA_VERSION}
# The constraints each record's check() holds, by record and field.
CHECKS: dict[str, dict[str, dict[str, Any]]] = {
    "Message": {
        "message_id": _ID,
        "conversation_id": _ID,
        "user_id": _ID,
        "platform": _ID,
        "text": _TEXT,
        "schema_version": _VERSION,
    },
    "Turn": {"message_id": _ID, "conversation_id": _ID, "text": _TEXT, "schema_version": _VERSION},
    "TurnRef": {"message_id": _ID, "conversation_id": _ID, "text": _TEXT},
    "ModelOutput": {"message_id": _ID, "schema_version": _VERSION},
    "Reply": {"message_id": _ID, "schema_version": _VERSION},
    "Event": {"schema_version": _VERSION},
    "MessageRequest": {"conversation_id": _ID, "user_id": _ID, "text": _TEXT, "platform": _ID, "message_id": _ID},
}
_KEY = {"type": "string", "description": "conversation_id, UTF-8"}
_EPOCH_OR_RFC3339 = (
    "Epoch seconds (a number), or an RFC 3339 timestamp with a UTC offset (a string); readers always see epoch seconds."
)


def schema_file(topic: str) -> str:
    return f"json/{topic}.schema.json"


def topic_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one topic's record value."""
    cls = TOPIC_RECORDS[topic]
    (ref,), defs = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    return {
        "$schema": DIALECT,
        "$id": f"https://banter.dev/schemas/v{SCHEMA_VERSION}/{topic}.schema.json",
        "title": f"banter.{topic} record value",
        "description": f"The value of a record on banter.{topic} (JSON, UTF-8), written by {WRITERS[topic]}. "
        "The record key is the conversation_id (UTF-8). Unknown fields are ignored by readers.",
        **ref,
        "$defs": _annotate(defs),
    }


def _annotate(defs: dict[str, Any]) -> dict[str, Any]:
    """Add check()'s constraints, say that unknown fields are allowed, describe sent_at."""
    for name, definition in defs.items():
        if definition.get("type") != "object":
            continue
        definition["additionalProperties"] = True
        properties = definition["properties"]
        for field, extra in CHECKS.get(name, {}).items():
            _constrain(properties[field], extra)
        if "sent_at" in properties and "anyOf" in properties["sent_at"]:
            properties["sent_at"]["description"] = _EPOCH_OR_RFC3339
    return defs


def _constrain(prop: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``extra`` into a property, or into its non-null branch when it is nullable."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") != "null":
            branch.update(extra)


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document: one channel per topic, keyed by conversation_id."""
    channels, messages, operations = {}, {}, {}
    for topic, cls in TOPIC_RECORDS.items():
        channels[topic] = {
            "address": f"{{prefix}}.{topic}",
            "title": f"banter.{topic}",
            "description": (cls.__doc__ or "").split("\n")[0] + f" Written by {WRITERS[topic]}.",
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}},
        }
        messages[cls.__name__] = {
            "name": cls.__name__,
            "title": f"{cls.__name__} (schema_version {SCHEMA_VERSION})",
            "contentType": "application/json",
            "payload": {"$ref": f"./{schema_file(topic)}"},
            "bindings": {"kafka": {"key": _KEY, "bindingVersion": "0.5.0"}},
        }
    operations["publishMessage"] = _operation("send", "messages", "A platform publishes a user message.")
    operations["receiveReply"] = _operation("receive", "replies", "A platform reads replies (match message_id).")
    operations["receiveEvent"] = _operation("receive", "events", "Analytics reads one event per message.")
    operations["receiveDeadLetter"] = _operation("receive", "deadletter", "Operators read what was refused, and why.")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "banter topics",
            "version": str(SCHEMA_VERSION),
            "description": _paragraph(_ASYNCAPI_DESCRIPTION),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "`banter broker up`; BANTER_KAFKA_BOOTSTRAP names your own cluster",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "parameters": {"prefix": {"default": "banter", "description": "BANTER_TOPIC_PREFIX"}},
        },
    }


def _operation(action: str, topic: str, summary: str) -> dict[str, Any]:
    cls = TOPIC_RECORDS[topic]
    return {
        "action": action,
        "summary": summary,
        "channel": {"$ref": f"#/channels/{topic}"},
        "messages": [{"$ref": f"#/channels/{topic}/messages/{cls.__name__}"}],
    }


_ASYNCAPI_DESCRIPTION = """\
banter's Kafka topics. Every record is keyed by its conversation_id, and every topic has the
same partition count, so one conversation stays on one partition, in order.
Values are JSON objects; each carries schema_version (now 1). Readers ignore fields they do not
know, so a writer may add optional fields within a version; removing or retyping a field, or
changing its meaning, makes a new version, which readers refuse (dead-lettered with
unknown_schema_version) until they are upgraded. sent_at is epoch seconds or an RFC 3339 string.
"""


def openapi() -> dict[str, Any]:
    """The gateway's OpenAPI 3.1 document, its bodies generated from ``schemas.http``."""
    (request, status, conversation, error), components = msgspec.json.schema_components(
        [MessageRequest, MessageStatus, Conversation, ErrorBody], ref_template="#/components/schemas/{name}"
    )
    errors = {code: _json(text, error) for code, text in _ERRORS.items()}
    limited = {
        **errors["429"],
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    }
    ids = {"type": "string", "maxLength": MAX_ID_CHARS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "banter gateway",
            "version": str(SCHEMA_VERSION),
            "description": _paragraph(_OPENAPI_DESCRIPTION),
        },
        "components": {
            "schemas": _annotate(components),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a platform's token (BANTER_GATEWAY_TOKENS)",
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "postMessage",
                    "summary": "Send a user message; the reply if it comes within the wait, else 202",
                    "parameters": [
                        {
                            "name": "wait_ms",
                            "in": "query",
                            "required": False,
                            "description": "how long to wait for the reply (default BANTER_GATEWAY_WAIT_MS)",
                            "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_MS},
                        }
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                    "responses": {
                        "200": _json("Answered: the reply (the event may follow later)", status),
                        "202": _json("Accepted, not answered yet: GET /v1/messages/{message_id} later", status),
                        **{code: errors[code] for code in ("400", "401", "403", "409", "413")},
                        "429": limited,
                        "503": errors["503"],
                    },
                }
            },
            "/v1/messages/{message_id}": {
                "get": {
                    "operationId": "getMessage",
                    "summary": "A message's status, its reply and the router's event once they exist",
                    "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": ids}],
                    "responses": {
                        "200": _json("The message", status),
                        **{code: errors[code] for code in ("401", "404")},
                        "429": limited,
                    },
                }
            },
            "/v1/conversations/{conversation_id}": {
                "get": {
                    "operationId": "getConversation",
                    "summary": "The recent turns of a conversation, oldest first",
                    "parameters": [{"name": "conversation_id", "in": "path", "required": True, "schema": ids}],
                    "responses": {
                        "200": _json("The conversation", conversation),
                        **{code: errors[code] for code in ("401", "404")},
                        "429": limited,
                    },
                }
            },
        },
    }


def _paragraph(text: str) -> str:
    return " ".join(text.split())


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": "Invalid body: error.field names the field, error.reason says why (the dead-letter reasons)",
    "401": "No token, or not a known one",
    "403": "The body's platform is not the token's",
    "404": "Not known to this gateway (never seen, or forgotten)",
    "409": "This message_id was sent before with a different body",
    "413": "Body over the size limit",
    "429": "Over this token's rate limit",
    "503": "Kafka did not take the message; retry with the same message_id",
}

_OPENAPI_DESCRIPTION = """\
HTTP for chat platforms that do not speak Kafka. POST /v1/messages produces the message to
banter.messages (keyed by conversation_id) and waits a short while for its reply on
banter.replies. A retry with the same message_id is not produced twice. When a platform has a
webhook, replies that came after a 202 are POSTed to it, signed: X-Banter-Signature is
`t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>." + body, keyed by the platform's token>`.
"""


def render() -> dict[str, str]:
    """Every file of the contract, by path relative to ``schemas/``, as text."""
    files = {schema_file(topic): _dump_json(topic_schema(topic)) for topic in TOPIC_RECORDS}
    asyncapi_yaml = yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True, width=100)
    files["asyncapi.yaml"] = f"# Generated by `banter contract` from schemas/records.py; do not edit.\n{asyncapi_yaml}"
    files["openapi.json"] = _dump_json(openapi())
    return files


def _dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def stale(root: Path) -> list[Path]:
    """The files under ``root`` that differ from what ``render()`` gives (or are missing)."""
    return [root / rel for rel, text in render().items() if _differs(root / rel, text)]


def _differs(path: Path, text: str) -> bool:
    return not path.exists() or path.read_text() != text


def write(root: Path) -> list[Path]:
    """Write the contract under ``root`` (the ``schemas/`` folder); returns the files that changed."""
    changed = []
    for relative, text in render().items():
        path = root / relative
        if _differs(path, text):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed
