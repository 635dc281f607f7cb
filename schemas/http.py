"""The gateway's HTTP bodies (``streams/gateway.py``), beside the topic records they carry.

The OpenAPI document is generated from these Structs (``schemas.contract``),
so the document and the code that parses requests cannot disagree.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.records import EpochSeconds, Event, Reply

Speaker = Literal["user", "bot"]


class MessageRequest(msgspec.Struct, frozen=True):
    """``POST /v1/messages``: a user message. ``platform`` defaults to the token's platform;
    ``message_id`` (made up when absent) makes a retry idempotent; ``sent_at`` defaults to now."""

    conversation_id: str
    user_id: str
    text: str
    platform: str | None = None
    message_id: str | None = None
    sent_at: EpochSeconds | None = None


class MessageStatus(msgspec.Struct, frozen=True):
    """A message the gateway knows: ``pending`` until its reply, then ``answered`` with it.

    ``event`` is the router's analytics event (every candidate, picked or not);
    it follows the reply by a moment, so an answered message may not have it yet.
    """

    message_id: str
    conversation_id: str
    status: Literal["pending", "answered"]
    reply: Reply | None = None
    event: Event | None = None


class ConversationTurn(msgspec.Struct, frozen=True):
    """One turn of a conversation as the gateway saw it on ``banter.messages`` and ``banter.replies``."""

    speaker: Speaker
    text: str
    message_id: str
    at: float
    source: str | None = None


class Conversation(msgspec.Struct, frozen=True):
    """``GET /v1/conversations/{id}``: the recent turns, oldest first (bounded, since the gateway started)."""

    conversation_id: str
    turns: list[ConversationTurn]


class ErrorDetail(msgspec.Struct, frozen=True):
    """What went wrong: ``reason`` is a machine-readable code, ``field`` the request field at fault."""

    status: int
    reason: str
    detail: str
    field: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """Every 4xx/5xx answer of the gateway."""

    error: ErrorDetail
