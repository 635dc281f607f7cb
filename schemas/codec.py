"""The msgspec codec and strict validation: bytes become a record or a SchemaError.

Each record type gets one ``msgspec.json.Decoder``, built on first use, which
checks the annotations while it parses: a missing field, a field of the wrong
type (a bool is not an int, a string is not a number) or a value outside a
``Literal`` fails. Unknown fields are ignored, so writers can add fields before
readers know them. After the types, a record's ``check()`` holds its own
constraints (schema version, empty or oversized text). Every failure is a
``SchemaError`` whose ``reason`` is a short machine-readable code and whose
``detail`` names the field, e.g. ``history[3].text``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
Reader = tuple[msgspec.json.Decoder[Any], Callable[[Any], None] | None]

_ENCODER = msgspec.json.Encoder()
_READERS: dict[type, Reader] = {}
_AT = re.compile(r"(?P<problem>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_WRONG_TYPE = re.compile(r"Expected `[^`]*`, got `|Invalid RFC3339")


class SchemaError(ValueError):
    """Bytes that are not a valid record; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def encode(record: msgspec.Struct) -> bytes:
    """Serialise a record to compact JSON bytes."""
    return _ENCODER.encode(record)


def to_dict(record: msgspec.Struct) -> dict[str, Any]:
    """A record as plain JSON-ready data."""
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


def replace(record: S, /, **changes: Any) -> S:
    """A copy of ``record`` with ``changes``; like ``dataclasses.replace``, nothing is validated."""
    return msgspec.structs.replace(record, **changes)


def decode(data: bytes | None, cls: type[T]) -> T:
    """Parse and strictly validate ``data`` as ``cls``, or raise SchemaError."""
    if data is None:
        raise SchemaError("empty_payload", "no value")
    if not data.isascii():  # msgspec skips unknown fields unread: their bytes must be UTF-8 too
        _require_utf8(data)
    decoder, check = _reader(cls)
    try:
        record: T = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise SchemaError("invalid_json", str(exc)) from None
    except RecursionError:  # msgspec walks nested arrays and objects recursively, even of unknown fields
        raise SchemaError("too_deeply_nested", "nesting exceeds the decoder's depth") from None
    if check is not None:
        check(record)
    return record


def from_obj(obj: Any, cls: type[T]) -> T:
    """Build ``cls`` from parsed JSON (dicts, lists, scalars), as strictly as ``decode``."""
    try:
        record = msgspec.convert(obj, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    check = _reader(cls)[1]
    if check is not None:
        check(record)
    return record


def _reader(cls: type) -> Reader:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = (msgspec.json.Decoder(cls), getattr(cls, "check", None))
    return reader


def _require_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError("not_utf8", str(exc)) from None


def _invalid(message: str) -> SchemaError:
    """Map msgspec's ValidationError text (``<problem> - at `$.path` ``) to a reason and the field path."""
    found = _AT.fullmatch(message)
    problem, path = (found["problem"], found["path"] or "") if found else (message, "")
    if missing := _MISSING.match(problem):
        return SchemaError("missing_field", f"{path}.{missing['field']}" if path else missing["field"])
    if problem.startswith("Expected `object"):
        reason = "not_an_object"
    elif _WRONG_TYPE.match(problem):
        reason = "wrong_type"
    elif problem.startswith("Number out of range"):  # 1e400: orjson called it invalid JSON, and so do we
        reason = "invalid_json"
    else:  # a Literal mismatch, a naive datetime
        reason = "bad_value"
    return SchemaError(reason, f"{path or 'top level'}: {problem}")
