"""banter's wire format: one versioned record per topic (frozen msgspec
Structs), the msgspec codec, and validation that turns bad bytes into a typed
error."""

from schemas.codec import SchemaError, decode, encode, from_obj, replace, to_dict
from schemas.records import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Candidate,
    DeadLetter,
    Event,
    HistoryItem,
    Message,
    ModelOutput,
    Payload,
    Reply,
    Turn,
    TurnRef,
)

__all__ = [
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "Candidate",
    "DeadLetter",
    "Event",
    "HistoryItem",
    "Message",
    "ModelOutput",
    "Payload",
    "Reply",
    "SchemaError",
    "Turn",
    "TurnRef",
    "decode",
    "encode",
    "from_obj",
    "replace",
    "to_dict",
]
