"""What an agent is handed, and the one place where its bytes become records.

An input ``Record`` is a faust event or a record read straight from Kafka (the
gap check's), typed by what banter's handlers read: key, value, and where it
came from. ``Inputs`` decodes a record or sends it to the dead-letter topic with
its source and a machine-readable reason, and keeps one record's failure from
crashing its agent; every dead letter is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from schemas import DeadLetter, SchemaError, decode
from streams import deadletters
from streams.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Origin(Protocol):
    """Where a record came from (faust's ``Message`` has these, and more)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float: ...  # seconds, as faust gives it


class Record(Protocol):
    """An input record as banter's handlers read it."""

    @property
    def key(self) -> Any: ...
    @property
    def value(self) -> Any: ...
    @property
    def message(self) -> Origin: ...


Handler = Callable[[list[Record]], Awaitable[None]]
SendLetter = Callable[[bytes | None, DeadLetter], Awaitable[Any]]


class Inputs:
    """Decoding and guarding for every agent: bad input goes to ``send`` as a dead letter, counted."""

    def __init__(self, send: SendLetter, metrics: Metrics) -> None:
        self.send = send
        self.metrics = metrics

    async def decode(self, record: Record, cls: type[T], agent: str) -> T | None:
        """``record``'s value as ``cls``, or None when it went to the dead letters."""
        try:
            return decode(raw(record.value), cls)
        except SchemaError as error:
            await self.dead_letter(record, agent, error)
        except Exception as exc:  # whatever the decoder chokes on is that record's problem, not the agent's
            await self._handler_error(record, agent, exc)
        return None

    async def decode_all(self, records: Sequence[Record], cls: type[T], agent: str) -> list[tuple[Record, T]]:
        """The records that decode as ``cls``, paired with their values; the rest dead-lettered."""
        good: list[tuple[Record, T]] = []
        for record in records:
            value = await self.decode(record, cls, agent)
            if value is not None:
                good.append((record, value))
        return good

    async def guarded(self, record: Record, agent: str, handle: Callable[[], Awaitable[T]]) -> T | None:
        """``handle()``'s result; if it raises, ``record`` goes to the dead letters
        (``handler_error: <type>``) and None is returned, so that one record never crashes its
        agent nor costs the rest of a batch."""
        try:
            return await handle()
        except Exception as exc:
            await self._handler_error(record, agent, exc)
            return None

    async def dead_letter(self, record: Record, agent: str, error: SchemaError) -> None:
        """Send ``record``'s original bytes (their head, when large) to the dead letters with the reason."""
        origin, key = record.message, raw(record.key) if record.key is not None else None
        letter = deadletters.letter(
            raw(record.value),
            key,
            reason=error.reason,
            detail=error.detail,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            agent=agent,
            at=time.time(),
        )
        retried = self.metrics.dead_letter_retries.labels(agent).inc
        await deadletters.deliver(self.send, deadletters.letter_key(key), letter, retried)
        self.metrics.dead_letters.labels(agent, error.reason.split(":", 1)[0]).inc()
        log.warning(
            "dead letter",
            extra={
                "agent": agent,
                "reason": error.reason,
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
            },
        )

    async def _handler_error(self, record: Record, agent: str, exc: Exception) -> None:
        kind = type(exc).__name__
        log.exception("handling a record failed", extra={"agent": agent, "error": kind})
        self.metrics.handler_errors.labels(agent, kind).inc()
        await self.dead_letter(record, agent, SchemaError(f"handler_error: {kind}", str(exc)))


def seconds_since_produced(record: Record) -> float:
    """How long ago the record was produced (its Kafka timestamp)."""
    return max(0.0, time.time() - record.message.timestamp)


def raw(value: Any) -> bytes:
    """A key or value as bytes (faust hands raw topics' values over as bytes already)."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()
