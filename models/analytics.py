"""Windowed analytics over the event stream: mergeable window records, each message counted once.

Each input partition keeps its own window records (``Shard``); a record is a plain dict, so it
travels through a changelog as JSON, and records of many partitions add up (``report``):

* a minute record (``"m"``) holds the counts of the events whose ``at`` falls in that minute,
  the hashes of the message ids counted into it, and the first and last input offsets counted;
* an hour record (``"h"``) holds counts folded in from minute records more than an hour old, and
  the ``first`` offsets of the minute records it took in, so a fold repeated after a crash (the
  hour written, the minute not yet deleted) adds nothing.

A message id is counted once if it comes again within ``HOLD_OFFSETS`` records of its partition
(a replay after a crash, an event the router sent twice): the ids live in the record their counts
went to, so one write carries both. Memory is bounded by windows × partitions × labels, plus
``HOLD_OFFSETS`` ids per partition: it does not grow with the number of conversations.

Counts: messages, intents, flags (love declarations), replies by source, fallback reasons, end-to-end
latency, per model its candidates, statuses, picks, lateness and latency, and the turn numbers. Latency
lives in a log-bucketed sketch (relative error ``SKETCH_ERROR``); turns in an exact histogram, from which
the median length of conversations follows: a conversation that reached turn k has one message with turn k.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MINUTE_S, HOUR_S = 60, 3600
MINUTES_SHOWN, HOURS_SHOWN = 60, 168  # per minute for the last hour, per hour for the last week
HOLD_OFFSETS = 10_000  # a repeat within this many records of its partition is recognised
TURNS_CAP = 100  # turns past this count as "at least this many"
SKETCH_ERROR = 0.02
GAMMA = (1 + SKETCH_ERROR) / (1 - SKETCH_ERROR)
MIN_MS = 0.01  # latencies below this land in the zero bucket
LOVE = "love_declaration"

Record = dict[str, Any]
Counts = dict[str, Any]
Sketch = dict[str, int]


class CandidateLike(Protocol):
    """One model's part in an event (``schemas.Candidate`` fits)."""

    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def picked(self) -> bool: ...
    @property
    def late(self) -> bool: ...


class EventLike(Protocol):
    """The fields of an analytics event that are counted (``schemas.Event`` fits)."""

    @property
    def message_id(self) -> str: ...
    @property
    def turn(self) -> int: ...
    @property
    def intent(self) -> str | None: ...
    @property
    def source(self) -> str: ...
    @property
    def fallback_reason(self) -> str | None: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def flags(self) -> Sequence[str]: ...
    @property
    def at(self) -> float: ...
    @property
    def candidates(self) -> Sequence[CandidateLike]: ...


def message_hash(message_id: str) -> str:
    """A fixed-size stand-in for a message id (ids may be 200 characters long)."""
    return hashlib.blake2b(message_id.encode(), digest_size=8).hexdigest()


def record_key(partition: int, grain: str, start: int) -> str:
    return f"{partition}|{grain}|{start}"


def parse_key(key: str) -> tuple[int, str, int]:
    partition, grain, start = key.split("|")
    return int(partition), grain, int(start)


def floor_to(t: float, span: int) -> int:
    return int(t // span) * span


# counts ---------------------------------------------------------------------------------------


def new_counts() -> Counts:
    return {
        "messages": 0,
        "intents": {},
        "flags": {},
        "sources": {},
        "fallbacks": {},
        "latency": {},
        "models": {},
        "turns": {},
    }


def add_event(counts: Counts, event: EventLike) -> None:
    """Count one event into ``counts``."""
    counts["messages"] += 1
    _bump(counts["intents"], event.intent or "none")
    _bump(counts["sources"], event.source)
    if event.fallback_reason:
        _bump(counts["fallbacks"], event.fallback_reason)
    for flag in event.flags:
        _bump(counts["flags"], flag)
    sketch_add(counts["latency"], event.latency_ms)
    if 1 <= event.turn <= TURNS_CAP:
        _bump(counts["turns"], str(event.turn))
    for candidate in event.candidates:
        _add_candidate(counts["models"], candidate)


def _add_candidate(models: dict[str, Any], candidate: CandidateLike) -> None:
    model = models.setdefault(candidate.model, {"candidates": 0, "latency": {}})
    _bump(model, "candidates")
    _bump(model, candidate.status)
    if candidate.picked:
        _bump(model, "picked")
    if candidate.late:
        _bump(model, "late")
    if candidate.status == "ok":
        sketch_add(model["latency"], candidate.latency_ms)


def merge(into: Counts, other: Mapping[str, Any]) -> Counts:
    """Add ``other``'s counts to ``into`` (nested dicts add key by key); returns ``into``."""
    for key, value in other.items():
        if isinstance(value, Mapping):
            merge(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value
    return into


def _bump(counts: dict[str, Any], key: str, by: int = 1) -> None:
    counts[key] = counts.get(key, 0) + by


# latency sketch -------------------------------------------------------------------------------


def sketch_add(sketch: Sketch, value_ms: float) -> None:
    _bump(sketch, _bucket(value_ms))


def _bucket(value_ms: float) -> str:
    if not value_ms > MIN_MS:  # also NaN
        return "z"
    return str(math.ceil(math.log(value_ms) / math.log(GAMMA)))


def _bucket_value(bucket: str) -> float:
    if bucket == "z":
        return 0.0
    return 2 * GAMMA ** int(bucket) / (GAMMA + 1)


def quantile(sketch: Mapping[str, int], q: float) -> float | None:
    """The ``q`` quantile of the values in ``sketch`` (within ``SKETCH_ERROR``), None if empty."""
    total = sum(sketch.values())
    if total == 0:
        return None
    rank, seen = q * (total - 1), 0
    buckets = sorted(sketch, key=lambda b: -math.inf if b == "z" else int(b))
    for bucket in buckets:
        seen += sketch[bucket]
        if seen > rank:
            break
    return round(_bucket_value(bucket), 3)


def percentiles(sketch: Mapping[str, int]) -> dict[str, float | None]:
    return {"p50": quantile(sketch, 0.5), "p95": quantile(sketch, 0.95), "p99": quantile(sketch, 0.99)}


# turns ----------------------------------------------------------------------------------------


def conversation_lengths(turns: Mapping[str, int]) -> dict[int, int]:
    """Conversations by the deepest turn they reached, from the count of messages at each turn.

    A conversation that reached turn k has one message with turn k, so the conversations that
    stopped at k are the messages at k less those at k + 1 (clamped: over a time range, a
    conversation begun before it has later turns without its first).
    """
    at = {int(k): n for k, n in turns.items()}
    lengths = {k: max(0, n - at.get(k + 1, 0)) for k, n in at.items() if k < TURNS_CAP}
    if TURNS_CAP in at:
        lengths[TURNS_CAP] = at[TURNS_CAP]
    return {k: n for k, n in sorted(lengths.items()) if n}


def median_turns(turns: Mapping[str, int]) -> float | None:
    """The median length, in turns, of the conversations counted in ``turns``."""
    lengths = conversation_lengths(turns)
    total = sum(lengths.values())
    if total == 0:
        return None
    return (_nth(lengths, (total - 1) // 2) + _nth(lengths, total // 2)) / 2


def _nth(lengths: Mapping[int, int], index: int) -> int:
    """The ``index``-th smallest length (0-based) of ``lengths``, a sorted histogram."""
    seen = 0
    for length, n in lengths.items():
        seen += n
        if seen > index:
            return length
    raise IndexError(index)


# one partition's windows ----------------------------------------------------------------------


@dataclass
class Shard:
    """One partition's window records, and which keys changed since it was opened."""

    partition: int
    records: dict[str, Record]
    changed: list[str] = field(default_factory=list)  # in write order: an hour before the minute it took in

    def add(self, event: EventLike, offset: int, now: float) -> bool:
        """Count ``event`` (read at ``offset``); False if it was counted before or is too old."""
        if event.at < now - HOURS_SHOWN * HOUR_S:
            return False
        digest = message_hash(event.message_id)
        if any(digest in record.get("ids", ()) for _, record in self._grain("m")):
            return False
        key = record_key(self.partition, "m", floor_to(event.at, MINUTE_S))
        record = self.records.setdefault(key, {"counts": new_counts(), "ids": {}, "first": offset, "last": offset})
        add_event(record["counts"], event)
        record["ids"][digest] = 0
        record["last"] = max(record["last"], offset)
        self._touch(key)
        return True

    def tidy(self, now: float) -> None:
        """Forget ids past the hold, fold old minutes into their hours, drop what is past a week."""
        minutes = self._grain("m")
        newest = max((record["last"] for _, record in minutes), default=0)
        for key, record in minutes:
            if record["ids"] and record["last"] < newest - HOLD_OFFSETS:
                record["ids"] = {}
                self._touch(key)
            if not record["ids"] and parse_key(key)[2] < floor_to(now, MINUTE_S) - MINUTES_SHOWN * MINUTE_S:
                self._fold(key, record, now)
        for key, _ in self._grain("h"):
            if parse_key(key)[2] < _oldest_hour(now):
                self._drop(key)

    def changes(self) -> dict[str, Record | None]:
        """The changed keys, in order, with their new records (None: deleted)."""
        return {key: self.records.get(key) for key in self.changed}

    def _fold(self, key: str, minute: Record, now: float) -> None:
        start = floor_to(parse_key(key)[2], HOUR_S)
        if start >= _oldest_hour(now):
            hour_key = record_key(self.partition, "h", start)
            hour = self.records.setdefault(hour_key, {"counts": new_counts(), "folded": []})
            if minute["first"] not in hour["folded"]:
                merge(hour["counts"], minute["counts"])
                hour["folded"].append(minute["first"])
                self._touch(hour_key)
        self._drop(key)

    def _grain(self, grain: str) -> list[tuple[str, Record]]:
        return [(key, record) for key, record in self.records.items() if parse_key(key)[1] == grain]

    def _touch(self, key: str) -> None:
        if key in self.changed:
            self.changed.remove(key)
        self.changed.append(key)

    def _drop(self, key: str) -> None:
        self.records.pop(key, None)
        self._touch(key)


def _oldest_hour(now: float) -> int:
    return floor_to(now, HOUR_S) - (HOURS_SHOWN - 1) * HOUR_S


# the report over every partition --------------------------------------------------------------


def report(records: Iterable[tuple[str, Record]], now: float) -> dict[str, Any]:
    """Per-minute (last hour) and per-hour (last week) figures and both totals, over all partitions."""
    minute_now, hour_now = floor_to(now, MINUTE_S), floor_to(now, HOUR_S)
    minutes = {minute_now - i * MINUTE_S: new_counts() for i in reversed(range(MINUTES_SHOWN))}
    hours = {hour_now - i * HOUR_S: new_counts() for i in reversed(range(HOURS_SHOWN))}
    partitions: set[int] = set()
    for partition, start, counts in _unfolded(list(records)):
        partitions.add(partition)
        if start in minutes:
            merge(minutes[start], counts)
        if floor_to(start, HOUR_S) in hours:
            merge(hours[floor_to(start, HOUR_S)], counts)
    return {
        "generated_at": now,
        "partitions": sorted(partitions),
        "last_hour": summary(_sum(minutes.values())),
        "last_week": summary(_sum(hours.values())),
        "per_minute": [{"start": start, **point(counts)} for start, counts in minutes.items()],
        "per_hour": [{"start": start, **point(counts)} for start, counts in hours.items()],
    }


def _unfolded(records: list[tuple[str, Record]]) -> Iterable[tuple[int, int, Counts]]:
    """(partition, start, counts) of each hour record, and of each minute record not yet in its hour."""
    parsed = [(parse_key(key), record) for key, record in records]
    folded = {(p, start): set(record.get("folded", ())) for (p, grain, start), record in parsed if grain == "h"}
    for (partition, grain, start), record in parsed:
        if grain == "m" and record["first"] in folded.get((partition, floor_to(start, HOUR_S)), ()):
            continue
        yield partition, start, record["counts"]


def _sum(many: Iterable[Counts]) -> Counts:
    total = new_counts()
    for counts in many:
        merge(total, counts)
    return total


def summary(counts: Counts) -> dict[str, Any]:
    """What an analyst reads off one range: totals, rates, percentiles."""
    messages = counts["messages"]
    return {
        "messages": messages,
        "love_declarations": counts["flags"].get(LOVE, 0),
        "intents": _ranked(counts["intents"]),
        "sources": _ranked(counts["sources"]),
        "fallback_rate": _rate(counts["sources"].get("fallback", 0), messages),
        "not_preferred_rate": _rate(sum(counts["fallbacks"].values()), messages),
        "fallback_reasons": _ranked(counts["fallbacks"]),
        "reply_latency_ms": percentiles(counts["latency"]),
        "models": {name: _model(stats, messages) for name, stats in sorted(counts["models"].items())},
        "conversations": sum(conversation_lengths(counts["turns"]).values()),
        "median_turns": median_turns(counts["turns"]),
    }


def point(counts: Counts) -> dict[str, Any]:
    """One chart point: a summary without the long breakdowns."""
    full = summary(counts)
    return {
        key: full[key]
        for key in ("messages", "love_declarations", "sources", "fallback_rate", "reply_latency_ms", "models")
    }


def _model(stats: Mapping[str, Any], messages: int) -> dict[str, Any]:
    candidates = stats.get("candidates", 0)
    counted = {
        name: stats.get(key, 0)
        for name, key in (("picked", "picked"), ("late", "late"), ("skipped", "skipped"), ("errors", "error"))
    }
    rates = {f"{name}_rate": _rate(n, candidates) for name, n in counted.items()}
    return {"candidates": candidates, **counted, **rates, "latency_ms": percentiles(stats.get("latency", {}))}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ranked(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
