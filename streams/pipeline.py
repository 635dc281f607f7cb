"""The one place where agents turn bytes into records; what fails goes to the
dead-letter topic with its source and a machine-readable reason, and is counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from faust.types import EventT

from schemas import DeadLetter, SchemaError, decode, encode
from streams import deadletters, topics
from streams.app import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


async def dead_letter(event: EventT, agent: str, error: SchemaError) -> None:
    """Send ``event``'s original bytes (their head, when large) to the dead-letter topic with the reason."""
    message, key = event.message, _raw(event.key) if event.key is not None else None
    record = deadletters.letter(
        _raw(event.value), key, reason=error.reason, detail=error.detail, topic=message.topic,
        partition=message.partition, offset=message.offset, agent=agent, at=time.time(),
    )  # fmt: skip
    await deadletters.deliver(_send_letter, deadletters.letter_key(key), record,
                              metrics.dead_letter_retries.labels(agent).inc)  # fmt: skip
    metrics.dead_letters.labels(agent, error.reason.split(":", 1)[0]).inc()
    log.warning("dead letter", extra={"agent": agent, "reason": error.reason, "topic": message.topic,
                                      "partition": message.partition, "offset": message.offset})


async def _send_letter(key: bytes | None, record: DeadLetter) -> None:
    await topics.deadletter.send(key=key, value=encode(record))


async def guarded(event: EventT, agent: str, handle: Callable[[], Awaitable[T]]) -> T | None:
    """``handle()``'s result; if it raises, ``event`` goes to the dead letters (``handler_error: <type>``)
    and None is returned, so that one record never crashes its agent nor costs the rest of a batch."""
    try:
        return await handle()
    except Exception as exc:
        await _handler_error(event, agent, exc)
        return None


async def _handler_error(event: EventT, agent: str, exc: Exception) -> None:
    kind = type(exc).__name__
    log.exception("handling a record failed", extra={"agent": agent, "error": kind})
    metrics.handler_errors.labels(agent, kind).inc()
    await dead_letter(event, agent, SchemaError(f"handler_error: {kind}", str(exc)))


async def decode_events(events: Sequence[EventT], cls: type[T], agent: str) -> list[tuple[EventT, T]]:
    """The events that decode as ``cls``, paired with their records; the rest dead-lettered."""
    good: list[tuple[EventT, T]] = []
    for event in events:
        record = await decode_event(event, cls, agent)
        if record is not None:
            good.append((event, record))
    return good


async def decode_event(event: EventT, cls: type[T], agent: str) -> T | None:
    """``event``'s record, or None when it went to the dead letters."""
    try:
        return decode(_raw(event.value), cls)
    except SchemaError as error:
        await dead_letter(event, agent, error)
    except Exception as exc:  # whatever the decoder chokes on is that record's problem, not the agent's
        await _handler_error(event, agent, exc)
    return None


def seconds_since_produced(event: EventT) -> float:
    """How long ago the event's record was produced (its Kafka timestamp)."""
    return max(0.0, time.time() - event.message.timestamp)


def _raw(value: Any) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()
