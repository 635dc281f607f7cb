"""Dead letters that always fit, and a send that does not give up on them.

A record may hold anything up to the broker's maximum message size (about 1 MB),
and the producer refuses a request over its own limit (faust's 1,000,000 bytes):
a dead letter carrying a large original whole, base64-encoded, could never be
sent. So a dead letter keeps the head of the original (``HEAD_BYTES``), its
length and its sha256, and bounds every other field it copies from the input;
``MAX_LETTER_BYTES`` is what its encoding can reach at worst. Nothing here
touches Kafka: ``deliver`` takes the send as a function, so it is tested alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from schemas import DeadLetter, replace

log = logging.getLogger(__name__)

HEAD_BYTES = 16 * 1024  # the original's head kept when it is larger
MAX_KEY_BYTES = 1024  # a longer key is replaced by its sha256 (as the Kafka key) and cut (in the record)
MAX_DETAIL_CHARS = 500
MAX_NAME_CHARS = 300  # topic, agent, reason
# Worst case: the head in base64, and every copied text in JSON's six-byte \uXXXX escapes.
MAX_LETTER_BYTES = 4 * HEAD_BYTES // 3 + 6 * (MAX_KEY_BYTES + MAX_DETAIL_CHARS + 3 * MAX_NAME_CHARS) + 1024
FULL_TRIES = 3  # then the letter is sent without the original's head and the key
RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)  # the last one repeats: bounded backoff, never a drop

Send = Callable[[bytes | None, DeadLetter], Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]


def clean(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, lone surrogates replaced so that it encodes as UTF-8."""
    return text[:limit].encode("utf-8", "replace").decode("utf-8")


def letter(
    value: bytes,
    key: bytes | None,
    *,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    agent: str,
    at: float,
) -> DeadLetter:
    """The dead letter of one input record, bounded by ``MAX_LETTER_BYTES`` whatever the record holds."""
    truncated = len(value) > HEAD_BYTES
    return DeadLetter(
        reason=clean(reason, MAX_NAME_CHARS),
        detail=clean(detail, MAX_DETAIL_CHARS),
        topic=clean(topic, MAX_NAME_CHARS),
        partition=partition,
        offset=offset,
        agent=clean(agent, MAX_NAME_CHARS),
        original=base64.b64encode(value[:HEAD_BYTES]).decode("ascii"),
        at=at,
        key=key[:MAX_KEY_BYTES].decode("utf-8", "replace") if key is not None else None,
        original_length=len(value),
        original_sha256=hashlib.sha256(value).hexdigest(),
        truncated=truncated,
    )


def letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's Kafka key: the input's key, or its sha256 when that is long."""
    if not key:
        return None
    return key if len(key) <= MAX_KEY_BYTES else hashlib.sha256(key).hexdigest().encode()


def minimal(dead: DeadLetter) -> DeadLetter:
    """The letter without the original's head and the key: where it came from, its length and hash."""
    return replace(dead, original="", key=None, truncated=dead.original_length != 0)


async def deliver(
    send: Send,
    key: bytes | None,
    dead: DeadLetter,
    on_retry: Callable[[], None],
    sleep: Sleep = asyncio.sleep,
) -> int:
    """Send ``dead`` until the producer takes it; returns the failed tries. A failure is counted
    (``on_retry``) and logged, then retried after a bounded backoff; after ``FULL_TRIES`` the minimal
    letter is sent instead, which only an infrastructure fault can refuse, so it is retried until sent."""
    failures = 0
    while True:
        full = failures < FULL_TRIES
        try:
            await send(key if full else None, dead if full else minimal(dead))
            return failures
        except Exception as exc:  # the producer's refusal: counted, logged, retried, never dropped
            on_retry()
            log.error(
                "dead letter not sent; retrying",
                extra={
                    "agent": dead.agent,
                    "reason": dead.reason,
                    "topic": dead.topic,
                    "partition": dead.partition,
                    "offset": dead.offset,
                    "error": type(exc).__name__,
                    "tries": failures + 1,
                },
            )
            await sleep(RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)])
            failures += 1
