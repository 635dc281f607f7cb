"""The one place where agents turn bytes into records; what fails goes to the
dead-letter topic with its source and a machine-readable reason, and is counted."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from faust.types import EventT

from schemas import DeadLetter, SchemaError, decode, encode
from streams import topics
from streams.app import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


async def dead_letter(event: EventT, agent: str, error: SchemaError) -> None:
    """Send ``event``'s original bytes to the dead-letter topic with the reason."""
    message = event.message
    record = DeadLetter(
        reason=error.reason, detail=error.detail[:500], topic=message.topic,
        partition=message.partition, offset=message.offset, agent=agent,
        original=base64.b64encode(_raw(event.value)).decode("ascii"), at=time.time(),
        key=_raw(event.key).decode("utf-8", "replace") if event.key is not None else None,
    )  # fmt: skip
    await topics.deadletter.send(key=_raw(event.key) if event.key else None, value=encode(record))
    metrics.dead_letters.labels(agent, error.reason).inc()
    log.warning("dead letter", extra={"agent": agent, "reason": error.reason, "topic": message.topic,
                                      "partition": message.partition, "offset": message.offset})


async def decode_events(events: Sequence[EventT], cls: type[T], agent: str) -> list[tuple[EventT, T]]:
    """The events that decode as ``cls``, paired with their records; the rest dead-lettered."""
    good: list[tuple[EventT, T]] = []
    for event in events:
        record = await decode_event(event, cls, agent)
        if record is not None:
            good.append((event, record))
    return good


async def decode_event(event: EventT, cls: type[T], agent: str) -> T | None:
    try:
        return decode(_raw(event.value), cls)
    except SchemaError as error:
        await dead_letter(event, agent, error)
        return None


def seconds_since_produced(event: EventT) -> float:
    """How long ago the event's record was produced (its Kafka timestamp)."""
    return max(0.0, time.time() - event.message.timestamp)


def _raw(value: Any) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()
