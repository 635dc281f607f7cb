"""One versioned record per topic (see DESIGN.md's topic table).

Records are frozen ``msgspec.Struct``s: field order and names are the wire
format, and the types are checked strictly while bytes are decoded (see
``schemas.codec``). Every top-level record carries ``schema_version``; a reader
accepts only the versions it knows. ``check()`` holds the constraints beyond
types (empty text, size limits); the codec runs it after decoding, so a record
built in code is not validated, as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from schemas.codec import SchemaError

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 4000
MAX_ID_CHARS = 200

Source = Literal["canned", "retrieval", "generative", "fallback"]
Status = Literal["ok", "skipped", "error"]
Kind = Literal["intent", "reply", "understanding"]

if TYPE_CHECKING:
    EpochSeconds = float
else:
    # On the wire: epoch seconds, or an RFC 3339 string with a timezone. The
    # record turns the string into epoch seconds, so code only ever sees a float.
    EpochSeconds = float | Annotated[datetime, msgspec.Meta(tz=True)]


def _check_version(version: int) -> None:
    if version != SCHEMA_VERSION:
        raise SchemaError("unknown_schema_version", str(version))


def _check_id(name: str, value: str) -> None:
    if not value.strip():
        raise SchemaError("empty_field", name)
    if len(value) > MAX_ID_CHARS:
        raise SchemaError("field_too_long", name)


def _check_text(text: str) -> None:
    if not text.strip():
        raise SchemaError("empty_text", "text is empty or whitespace")
    if len(text) > MAX_TEXT_CHARS:
        raise SchemaError("text_too_long", f"{len(text)} > {MAX_TEXT_CHARS} characters")


class Message(msgspec.Struct, frozen=True):
    """A user message, as a platform sends it (topic ``banter.messages``).

    ``sent_at`` may arrive as an RFC 3339 timestamp; it is always epoch seconds here.
    """

    message_id: str
    conversation_id: str
    user_id: str
    platform: str
    text: str
    sent_at: EpochSeconds
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.sent_at, datetime):
            msgspec.structs.force_setattr(self, "sent_at", self.sent_at.timestamp())

    def check(self) -> None:
        _check_version(self.schema_version)
        for name in ("message_id", "conversation_id", "user_id", "platform"):
            _check_id(name, getattr(self, name))
        _check_text(self.text)


class HistoryItem(msgspec.Struct, frozen=True):
    """One earlier turn of a conversation."""

    speaker: Literal["user", "bot"]
    text: str
    message_id: str = ""


class Turn(msgspec.Struct, frozen=True):
    """A message with its conversation context (topic ``banter.turns``).

    ``received_at`` is when the message reached Kafka (its record timestamp) and
    starts the latency budget; ``deadline_at`` is when the reply is due.
    """

    message_id: str
    conversation_id: str
    user_id: str
    platform: str
    text: str
    sent_at: float
    turn: int
    history: list[HistoryItem]
    conversation_age_s: float
    received_at: float
    deadline_at: float
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_version(self.schema_version)
        _check_id("message_id", self.message_id)
        _check_id("conversation_id", self.conversation_id)
        _check_text(self.text)


class TurnRef(msgspec.Struct, frozen=True):
    """What a model output carries of its turn: enough for the router to open the message
    when the turn record itself is late or was lost between topics in a crash.

    The history is left out but for the bot's last replies (the policy's repetition check).
    """

    message_id: str
    conversation_id: str
    user_id: str
    platform: str
    text: str
    turn: int
    received_at: float
    deadline_at: float
    recent_bot: list[str] = msgspec.field(default_factory=list)

    def check(self) -> None:
        _check_id("message_id", self.message_id)
        _check_id("conversation_id", self.conversation_id)
        _check_text(self.text)


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """What a model said about one message: an intent (``label``, ``confidence``, ``in_scope``),
    a reply (``text``, ``score``, and the selector's ``quality``: the estimated chance that it
    makes sense, 0-1), or the ``reason`` it said nothing. The output a model sends and the
    candidate an event records share these fields."""

    label: str | None = None
    confidence: float | None = None
    in_scope: bool | None = None
    text: str | None = None
    score: float | None = None
    reason: str | None = None
    quality: float | None = None


class ModelOutput(Payload, frozen=True):
    """One model's output for one message (topic ``banter.outputs``).

    ``status`` is ``ok`` with a payload (``label``/``confidence`` for intents,
    ``text``/``score`` for replies, both for an ``understanding``: the intent
    and the retrieval reply computed from one embedding), or ``skipped``/``error``
    with a ``reason``.
    """

    message_id: str
    conversation_id: str
    model: str
    version: str
    kind: Kind
    status: Status
    latency_ms: float
    produced_at: float
    turn: TurnRef | None = None  # the turn it answers, so the router can open the message from either record
    versions: dict[str, str] | None = None  # an understanding's parts: {"intent": version, "responder": version}
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_version(self.schema_version)
        _check_id("message_id", self.message_id)
        if self.turn is not None:
            self.turn.check()


class Reply(msgspec.Struct, frozen=True):
    """The one reply to a message (topic ``banter.replies``).

    ``latency_ms`` is end to end: from the message reaching Kafka to the reply
    being produced.
    """

    message_id: str
    conversation_id: str
    user_id: str
    platform: str
    text: str
    source: Source
    intent: str | None
    latency_ms: float
    replied_at: float
    model: str | None = None
    fallback_reason: str | None = None
    why: str | None = None
    late: bool = False  # made after the message's deadline (a backlog): from the fast models, not the fallback line
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_version(self.schema_version)
        _check_id("message_id", self.message_id)


class Candidate(Payload, frozen=True):
    """One model's part in a routing decision, for offline comparison."""

    model: str
    version: str
    kind: Kind
    status: Status
    latency_ms: float
    picked: bool = False
    late: bool = False


class Event(msgspec.Struct, frozen=True):
    """One analytics event per message (topic ``banter.events``)."""

    message_id: str
    conversation_id: str
    platform: str
    turn: int
    intent: str | None
    intent_confidence: float | None
    source: Source
    fallback_reason: str | None
    latency_ms: float
    candidates: list[Candidate] = msgspec.field(default_factory=list)
    flags: list[str] = msgspec.field(default_factory=list)
    at: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        _check_version(self.schema_version)


class DeadLetter(msgspec.Struct, frozen=True):
    """Input that could not be used (topic ``banter.deadletter``).

    ``original`` is the original bytes, base64-encoded so that any bytes survive:
    all of them when they are small, else their head (``truncated`` is true). So a
    dead letter stays far below the producer's request limit whatever the input;
    ``original_length`` and ``original_sha256`` identify the whole original.
    """

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    agent: str
    original: str
    at: float
    key: str | None = None
    original_length: int | None = None  # bytes in the whole original
    original_sha256: str | None = None  # hex digest of the whole original
    truncated: bool = False  # ``original`` holds only the head of the original
    schema_version: int = SCHEMA_VERSION
