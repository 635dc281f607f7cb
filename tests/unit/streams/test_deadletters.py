"""Dead letters stay bounded whatever the record holds, a refused one is retried, and a record whose
handling raises is dead-lettered instead of crashing its agent (no broker: the send is a fake)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from schemas import DeadLetter, Message, decode, encode
from streams import deadletters
from streams.deadletters import HEAD_BYTES, MAX_LETTER_BYTES
from streams.gaps import Replayed, ReplayedMessage
from streams.inputs import Inputs
from streams.metrics import Metrics

BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes
PRODUCER_MAX_REQUEST_BYTES = 1_000_000  # faust's producer_max_request_size


def _letter(value: bytes, key: bytes | None = b"c-1", detail: str = "bad", reason: str = "bad_json") -> DeadLetter:
    return deadletters.letter(
        value, key, reason=reason, detail=detail, topic="t.messages", partition=3, offset=42, agent="context", at=1.0
    )


def test_a_small_original_is_kept_whole() -> None:
    dead = _letter(b"{not json")
    assert base64.b64decode(dead.original) == b"{not json"
    assert not dead.truncated and dead.original_length == 9
    assert dead.original_sha256 == hashlib.sha256(b"{not json").hexdigest()


def test_a_record_at_the_brokers_maximum_size_keeps_its_head_length_and_hash() -> None:
    value = b"\xff" * BROKER_MAX_MESSAGE_BYTES
    dead = _letter(value, key=b"k" * 100_000, detail="\x00" * 100_000)
    assert dead.truncated and dead.original_length == len(value)
    assert base64.b64decode(dead.original) == value[:HEAD_BYTES]
    assert dead.original_sha256 == hashlib.sha256(value).hexdigest()
    assert len(encode(dead)) <= MAX_LETTER_BYTES < PRODUCER_MAX_REQUEST_BYTES // 10


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.binary(max_size=3 * HEAD_BYTES),
    key=st.none() | st.binary(max_size=3000),
    detail=st.text(max_size=2000) | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=700),
    reason=st.text(max_size=500),
)
def test_any_letter_encodes_within_the_bound_and_reads_back(
    value: bytes, key: bytes | None, detail: str, reason: str
) -> None:
    dead = _letter(value, key, detail, reason)
    data = encode(dead)
    assert len(data) <= MAX_LETTER_BYTES
    back = decode(data, DeadLetter)
    assert base64.b64decode(back.original) == value[:HEAD_BYTES]
    assert back.original_length == len(value) and back.truncated == (len(value) > HEAD_BYTES)
    kafka_key = deadletters.letter_key(key)
    assert kafka_key is None or len(kafka_key) <= deadletters.MAX_KEY_BYTES


def test_a_long_key_becomes_its_hash_as_the_kafka_key() -> None:
    assert deadletters.letter_key(b"short") == b"short"
    assert deadletters.letter_key(b"x" * 5000) == hashlib.sha256(b"x" * 5000).hexdigest().encode()
    assert deadletters.letter_key(None) is None and deadletters.letter_key(b"") is None


class FlakySend:
    """A producer that refuses the first ``failures`` sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes | None, DeadLetter]] = []

    async def __call__(self, key: bytes | None, dead: DeadLetter) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("MessageSizeTooLargeError")
        self.sent.append((key, dead))


def _deliver(send: FlakySend) -> tuple[int, list[float], list[int]]:
    slept: list[float] = []
    counted: list[int] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    tries = asyncio.run(deadletters.deliver(send, b"k", _letter(b"x" * 20_000), lambda: counted.append(1), sleep))
    return tries, slept, counted


def test_a_refused_letter_is_retried_and_counted() -> None:
    send = FlakySend(failures=2)
    tries, slept, counted = _deliver(send)
    assert tries == 2 and len(counted) == 2 and slept == [0.1, 0.25]
    ((key, dead),) = send.sent
    assert key == b"k" and dead.truncated and dead.original  # still the full letter


def test_a_letter_refused_again_and_again_is_sent_minimal_with_a_bounded_backoff() -> None:
    send = FlakySend(failures=12)
    tries, slept, counted = _deliver(send)
    assert tries == 12 and len(counted) == 12
    assert max(slept) == deadletters.RETRY_DELAYS_S[-1] and slept[-1] == deadletters.RETRY_DELAYS_S[-1]
    ((key, dead),) = send.sent
    assert key is None and dead.original == "" and dead.original_length == 20_000 and dead.original_sha256


def _event(value: bytes, key: bytes | None = b"conv-1", offset: int = 7) -> Replayed:
    return Replayed(key, value, ReplayedMessage("t.messages", 2, offset, 0.0))


class Sent(list[tuple[bytes | None, DeadLetter]]):
    """The dead letters an ``Inputs`` sends, and that ``Inputs`` with a fresh metric registry."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs = Inputs(self.send, Metrics(CollectorRegistry()))

    async def send(self, key: bytes | None, dead: DeadLetter) -> None:
        self.append((key, decode(encode(dead), DeadLetter)))


@pytest.fixture
def sent() -> Sent:
    return Sent()


def test_a_handler_that_raises_sends_its_record_to_the_dead_letters(sent: Sent) -> None:
    async def boom() -> None:
        raise KeyError("pending")

    assert asyncio.run(sent.inputs.guarded(_event(b'{"a": 1}'), "router", boom)) is None
    ((key, dead),) = sent
    assert dead.reason == "handler_error: KeyError" and dead.agent == "router" and dead.offset == 7
    assert key == b"conv-1" and base64.b64decode(dead.original) == b'{"a": 1}'
    counted = sent.inputs.metrics.registry.get_sample_value(
        "banter_handler_errors_total", {"agent": "router", "error": "KeyError"}
    )
    assert counted == 1


def test_a_handler_that_succeeds_gives_its_result(sent: Sent) -> None:
    async def fine() -> int:
        return 3

    assert asyncio.run(sent.inputs.guarded(_event(b"{}"), "router", fine)) == 3
    assert sent == []


def test_a_huge_undecodable_record_is_dead_lettered_bounded(sent: Sent) -> None:
    value = b"[" * 200_000 + b"\x00" * (BROKER_MAX_MESSAGE_BYTES - 200_000)
    assert asyncio.run(sent.inputs.decode(_event(value, key=b"k" * 50_000), Message, "context")) is None
    ((key, dead),) = sent
    assert dead.truncated and dead.original_length == len(value) and len(key) == 64
    assert len(encode(dead)) <= MAX_LETTER_BYTES


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b'{"pad": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deep nesting in a field nobody reads
        orjson.dumps({"message_id": "m", "extra": [[[[[[[[[[{}]]]]]]]]]] * 10_000}),
        b'{"text": "\\ud800"}',
        b"\x00",
        b"",
        b"null",
        b'"just a string"',
        b"1e400",
    ],
)
def test_hostile_json_is_a_dead_letter_with_a_reason(sent: Sent, value: bytes) -> None:
    assert asyncio.run(sent.inputs.decode(_event(value), Message, "context")) is None
    ((_, dead),) = sent
    assert dead.reason and not dead.reason.startswith("handler_error"), dead.reason
