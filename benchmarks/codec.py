"""Codec micro-benchmark (issue 9): decoding a realistic Turn (10 history items)
and ModelOutput with the old orjson + dataclass-walking codec (copied here as
``legacy``) and with the msgspec one, side by side in one run; median µs per
record over rounds, and the speed-up.

    python -m benchmarks.codec [--count 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import orjson

from schemas import HistoryItem, ModelOutput, SchemaError, Turn, decode, encode, to_dict

T = TypeVar("T")
LINES = (
    ("user", "hey! how was your weekend?"),
    ("bot", "pretty chill, caught up on sleep. yours?"),
    ("user", "I rebuilt an old bicycle with my grandfather"),
    ("bot", "that's lovely, what kind of bike?"),
    ("user", "a 1970s peugeot road bike, rusty but solid"),
    ("bot", "classic! did you keep the original parts?"),
    ("user", "mostly, we only replaced the chain and the tyres"),
    ("bot", "nice, bet it rides like new now"),
    ("user", "it does, we took it out on sunday morning"),
    ("bot", "sounds like a perfect day honestly"),
)


# legacy: the codec as it was before msgspec (schemas/codec.py and records.py at 71b6262), trimmed to decoding.


@dataclass(frozen=True, slots=True)
class LegacyHistoryItem:
    speaker: Literal["user", "bot"]
    text: str
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class LegacyTurn:
    message_id: str
    conversation_id: str
    user_id: str
    platform: str
    text: str
    sent_at: float
    turn: int
    history: list[LegacyHistoryItem]
    conversation_age_s: float
    received_at: float
    deadline_at: float
    schema_version: int = 1

    def check(self) -> None:
        Turn.check(self)  # type: ignore[arg-type]  # same fields, same constraints


@dataclass(frozen=True, slots=True)
class LegacyModelOutput:
    message_id: str
    conversation_id: str
    model: str
    version: str
    kind: Literal["intent", "reply"]
    status: Literal["ok", "skipped", "error"]
    latency_ms: float
    produced_at: float
    label: str | None = None
    confidence: float | None = None
    in_scope: bool | None = None
    text: str | None = None
    score: float | None = None
    reason: str | None = None
    turn: LegacyTurn | None = None
    schema_version: int = 1

    def check(self) -> None:
        ModelOutput.check(self)  # type: ignore[arg-type]


def legacy_decode(data: bytes, cls: type[T]) -> T:
    data.decode("utf-8")
    return legacy_from_obj(orjson.loads(data), cls)


def legacy_from_obj(obj: Any, cls: type[T], path: str = "") -> T:
    if not isinstance(obj, dict):
        raise SchemaError("not_an_object", path or "top level")
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        where = f"{path}{field.name}"
        if field.name not in obj:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise SchemaError("missing_field", where)
        kwargs[field.name] = _coerce(obj[field.name], hints[field.name], where)
    record = cls(**kwargs)
    check = getattr(record, "check", None)
    if check is not None:
        check()
    return record


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        last: SchemaError | None = None
        for option in [o for o in get_args(hint) if o is not type(None)]:
            try:
                return _coerce(value, option, where)
            except SchemaError as exc:
                last = exc
        raise last or SchemaError("wrong_type", where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise SchemaError("wrong_type", f"{where} must be a list")
        (item_hint, *_) = get_args(hint) or (Any,)
        return [_coerce(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return legacy_from_obj(value, hint, f"{where}.")  # type: ignore[arg-type]
    return _scalar(value, hint, where)


def _scalar(value: Any, hint: Any, where: str) -> Any:
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


# the benchmark


def sample_turn(accent: str = "") -> Turn:
    """A turn eleven messages into a conversation, as the context agent writes it."""
    history = [HistoryItem(who, text + accent, f"m{i}") for i, (who, text) in enumerate(LINES)]  # type: ignore[arg-type]
    now = 1_717_000_000.25
    return Turn(
        "4f1c2b7e9a0d4e6f8b3c1a2d5e7f9b0c",
        "conv-7d3e1f",
        "user-42",
        "web",
        "so what do you do for fun?" + accent,
        now,
        11,
        history,
        912.5,
        now + 0.003,
        now + 1.003,
    )


def sample_output(turn: Turn) -> ModelOutput:
    """The generator's reply to ``turn``, carrying the turn as the router receives it."""
    return ModelOutput(
        turn.message_id,
        turn.conversation_id,
        "generator",
        "gen-2024.06",
        "reply",
        "ok",
        412.7,
        turn.received_at + 0.42,
        text="mostly I chat with people like you, and read about bikes",
        score=-1.734,
        turn=turn,
    )


def per_record_us(decode_one: Callable[[], object], count: int, rounds: int) -> float:
    """Median over ``rounds`` of µs per call, each round ``count`` calls."""
    runs = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(count):
            decode_one()
        runs.append((time.perf_counter() - began) * 1e6 / count)
    return statistics.median(runs)


def cases() -> list[tuple[str, bytes, type[Any], type[Any]]]:
    """(name, bytes, new record type, legacy record type), each checked to decode the same both ways."""
    ascii_turn, accented_turn = sample_turn(), sample_turn(" 🚲 ça roule")
    found: list[tuple[str, bytes, type[Any], type[Any]]] = [
        ("Turn, 10 history items", encode(ascii_turn), Turn, LegacyTurn),
        ("Turn, 10 items, non-ASCII", encode(accented_turn), Turn, LegacyTurn),
        ("ModelOutput with its Turn", encode(sample_output(ascii_turn)), ModelOutput, LegacyModelOutput),
    ]
    for _, data, new, old in found:
        assert to_dict(decode(data, new)) == dataclasses.asdict(legacy_decode(data, old)), "the codecs disagree"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="decodes per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args()
    print(f"decoding, median of {args.rounds} rounds of {args.count:,} records\n")
    print("| record | bytes | legacy µs | msgspec µs | speed-up |\n| --- | ---: | ---: | ---: | ---: |")
    for name, data, new, old in cases():
        legacy = per_record_us(lambda d=data, c=old: legacy_decode(d, c), args.count, args.rounds)  # type: ignore[misc]
        fast = per_record_us(lambda d=data, c=new: decode(d, c), args.count, args.rounds)  # type: ignore[misc]
        print(f"| {name} | {len(data):,} | {legacy:.2f} | {fast:.2f} | {legacy / fast:.1f}x |")


if __name__ == "__main__":
    main()
