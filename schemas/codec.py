"""The orjson codec and strict validation: bytes become a record or a SchemaError.

Validation follows the dataclass annotations exactly: a missing field, a field of
the wrong type (a bool is not an int, a string is not a number), an unknown
schema version, or a constraint a record declares in ``check()`` each yield a
``SchemaError`` whose ``reason`` is a short machine-readable code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import orjson

T = TypeVar("T")


class SchemaError(ValueError):
    """Bytes that are not a valid record; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def encode(record: Any) -> bytes:
    """Serialise a record (a dataclass) to compact JSON bytes."""
    return orjson.dumps(record)


def to_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON-ready data."""
    data: dict[str, Any] = orjson.loads(orjson.dumps(record))
    return data


def decode(data: bytes | None, cls: type[T]) -> T:
    """Parse and strictly validate ``data`` as ``cls``, or raise SchemaError."""
    if data is None:
        raise SchemaError("empty_payload", "no value")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError("not_utf8", str(exc)) from None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError("invalid_json", str(exc)) from None
    return from_obj(obj, cls)


def from_obj(obj: Any, cls: type[T], path: str = "") -> T:
    """Build ``cls`` from parsed JSON, checking every field's type."""
    if not isinstance(obj, dict):
        raise SchemaError("not_an_object", path or "top level")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        where = f"{path}{field.name}"
        if field.name not in obj:
            if _has_default(field):
                continue
            raise SchemaError("missing_field", where)
        kwargs[field.name] = _coerce(obj[field.name], hints[field.name], where)
    record = cls(**kwargs)
    check = getattr(record, "check", None)
    if check is not None:
        check()
    return record


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return (
        field.default is not dataclasses.MISSING
        or field.default_factory is not dataclasses.MISSING
    )


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, get_args(hint), where)
    if origin in (list, tuple):
        return _coerce_sequence(value, hint, where)
    if dataclasses.is_dataclass(hint):
        return from_obj(value, hint, f"{where}.")  # type: ignore[arg-type]
    return _coerce_scalar(value, hint, where)


def _coerce_union(value: Any, options: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in options:
        return None
    real = [option for option in options if option is not type(None)]
    last: SchemaError | None = None
    for option in real:
        try:
            return _coerce(value, option, where)
        except SchemaError as exc:
            last = exc
    raise last or SchemaError("wrong_type", where)


def _coerce_sequence(value: Any, hint: Any, where: str) -> Any:
    if not isinstance(value, list):
        raise SchemaError("wrong_type", f"{where} must be a list")
    (item_hint, *_) = get_args(hint) or (Any,)
    items = [_coerce(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
    return tuple(items) if get_origin(hint) is tuple else items


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError("wrong_type", f"{where} must be a number")
        return float(value)
    if hint is int and isinstance(value, bool):
        raise SchemaError("wrong_type", f"{where} must be an integer")
    if get_origin(hint) is typing.Literal:
        if value not in get_args(hint):
            raise SchemaError("bad_value", f"{where} must be one of {get_args(hint)}")
        return value
    if not isinstance(value, hint):
        raise SchemaError("wrong_type", f"{where} must be {hint.__name__}")
    return value
