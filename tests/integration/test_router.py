"""The router on the real broker: canned at once, fallbacks when the generator is
slow or broken, no message left unanswered under a burst, and exactly one reply
per message as a platform sees it across a kill -9 of the worker."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import Reply, decode, encode
from streams.client import OncePerMessage, connected, new_message
from streams.kafka import kafka_options
from tests.integration.kafka_io import produce, read_topic

CANNED_TEXTS = ("what's the weather like today?", "I love you so much", "hi there!")
OPEN_TEXTS = (
    "I spent the whole weekend rebuilding an old bicycle with my grandfather",
    "my sister keeps borrowing my clothes without asking and it drives me mad",
    "do you think pineapples dream about being coconuts",
    "we argued about whether cats or dogs are better at keeping secrets",
    "the new neighbours play the trombone every night at eleven",
)


async def timed_asks(settings: Any, texts: list[tuple[str, str]], timeout_s: float = 30.0) -> list[tuple[Reply, float]]:
    """Send each (text, conversation) and return its reply with the client-side latency."""
    async with connected(settings) as client:

        async def one(text: str, conversation: str) -> tuple[Reply, float]:
            started = time.monotonic()
            reply = await client.ask(new_message(text, conversation, platform="test"), timeout_s)
            return reply, (time.monotonic() - started) * 1000

        return list(await asyncio.gather(*(one(t, c) for t, c in texts)))


def test_a_confident_canned_intent_does_not_wait_for_a_slow_generator(worker_factory: Any) -> None:
    worker = worker_factory(FAULT_GENERATOR_DELAY_MS="2500", BANTER_BUDGET_MS="5000")
    worker.wait_ready(timeout_s=240)
    results = asyncio.run(timed_asks(worker.settings, [(t, f"canned-{i}") for i, t in enumerate(CANNED_TEXTS)]))
    canned = [(reply, ms) for reply, ms in results if reply.source == "canned"]
    assert canned, f"no canned reply among {[r.source for r, _ in results]}"
    assert all(ms < 1500 for _, ms in canned), [ms for _, ms in canned]


def test_a_slow_generator_falls_back_to_retrieval_within_the_budget(worker_factory: Any) -> None:
    budget_ms, margin_ms = 1000, 400
    worker = worker_factory(FAULT_GENERATOR_DELAY_MS="1500", BANTER_BUDGET_MS=str(budget_ms))
    worker.wait_ready(timeout_s=240)
    texts = [(text, f"slow-{i}") for i, text in enumerate(OPEN_TEXTS * 4)]
    results = asyncio.run(timed_asks(worker.settings, texts))
    assert len(results) == len(texts)
    assert all(ms <= budget_ms + margin_ms for _, ms in results), sorted(ms for _, ms in results)[-5:]
    assert not any(reply.source == "generative" for reply, _ in results)
    fallbacks = [reply for reply, _ in results if reply.fallback_reason]  # the generator was preferred
    assert fallbacks and {r.source for r in fallbacks} <= {"retrieval", "fallback"}
    assert {r.fallback_reason for r in fallbacks} <= {"deadline", "skipped", "degraded"}
    assert any(r.source == "retrieval" for r in fallbacks)


def test_a_generator_that_raises_leads_to_fallbacks_not_a_crash(worker_factory: Any) -> None:
    worker = worker_factory(FAULT_GENERATOR_RAISE="1")
    worker.wait_ready(timeout_s=240)
    texts = [(text, f"raise-{i}") for i, text in enumerate(OPEN_TEXTS * 2)]
    results = asyncio.run(timed_asks(worker.settings, texts))
    assert len(results) == len(texts)
    assert any(reply.fallback_reason == "error" for reply, _ in results)
    assert worker.process.poll() is None


def test_a_burst_leaves_no_message_unanswered(worker_factory: Any) -> None:
    worker = worker_factory()
    worker.wait_ready(timeout_s=240)
    settings = worker.settings
    messages = [new_message(f"{OPEN_TEXTS[i % 5]} ({i})", f"burst-{i % 50}", platform="test") for i in range(500)]
    asyncio.run(produce(settings, [(m.conversation_id.encode(), encode(m)) for m in messages]))
    wanted = {m.message_id for m in messages}

    def ours(records: list[Any]) -> list[str]:
        return [mid for mid in (decode(r.value, Reply).message_id for r in records) if mid in wanted]

    got = ours(asyncio.run(read_topic(settings, "replies", lambda rs: set(ours(rs)) >= wanted, 240.0)))
    assert set(got) == wanted, f"{len(wanted - set(got))} of {len(wanted)} messages never got a reply"
    assert len(got) == len(wanted), f"{len(got) - len(wanted)} duplicate reply records without any crash"


@pytest.mark.crash  # `make test-crash` runs it alone
def test_kill_minus_9_loses_no_reply_and_changes_no_text(worker_factory: Any) -> None:
    """2,000 messages over 200 conversations; the worker is killed mid-stream and restarted."""
    worker = worker_factory(BANTER_SESSION_TIMEOUT_S="10")
    worker.wait_ready(timeout_s=240)
    settings = worker.settings
    messages = [new_message(f"{OPEN_TEXTS[i % 5]} #{i}", f"crash-{i % 200}", platform="test") for i in range(2000)]
    wanted = {m.message_id for m in messages}

    at_kill: dict[tuple[str, int], int | None] = {}

    async def send_and_kill() -> None:
        first, second = messages[:1000], messages[1000:]
        await produce(settings, [(m.conversation_id.encode(), encode(m)) for m in first])
        await read_topic(settings, "replies", lambda rs: len(rs) >= 400, 120.0)  # mid-stream
        worker.kill()
        for topic in ("messages", "turns"):  # where the restarted worker resumes
            at_kill.update({(topic, p): o for p, o in (await _committed(settings, topic)).items()})
        await produce(settings, [(m.conversation_id.encode(), encode(m)) for m in second])

    asyncio.run(send_and_kill())
    records = _replies_after_restart(worker_factory, worker, wanted)
    texts: dict[str, set[str]] = defaultdict(set)
    raw = 0
    for record in records:
        reply = decode(record.value, Reply)
        if reply.message_id in wanted:
            texts[reply.message_id].add(reply.text)
            raw += 1
    missing = wanted - set(texts)
    trace = _trace(settings, missing, at_kill, [m.message_id for m in messages]) if missing else ""
    assert not missing, f"{len(missing)} messages never got a reply:\n{trace}"
    changed = {mid for mid, seen in texts.items() if len(seen) > 1}
    assert not changed, f"{len(changed)} repeated replies changed their text"
    duplicates = raw - len(wanted)
    print(f"kill -9 run: {len(wanted)} messages, {raw} reply records, {duplicates} raw duplicates")
    _each_once_as_a_platform_sees(records, wanted)


@pytest.mark.crash
def test_sigterm_under_a_backlog_exits_within_10_s_and_loses_nothing(worker_factory: Any) -> None:
    """A graceful stop while messages wait: the worker exits within 10 s, and after a restart every
    message is answered and a platform sees each reply once."""
    worker = worker_factory(BANTER_SESSION_TIMEOUT_S="10")
    worker.wait_ready(timeout_s=240)
    settings = worker.settings
    messages = [new_message(f"{OPEN_TEXTS[i % 5]} #{i}", f"stop-{i % 100}", platform="test") for i in range(1500)]
    wanted = {m.message_id for m in messages}
    took: list[float] = []

    async def send_and_stop() -> None:
        first, second = messages[:1000], messages[1000:]
        await produce(settings, [(m.conversation_id.encode(), encode(m)) for m in first])
        await read_topic(settings, "replies", lambda rs: len(rs) >= 200, 120.0)  # a backlog of hundreds waits
        started = time.monotonic()
        worker.stop(timeout_s=60.0)
        took.append(time.monotonic() - started)
        await produce(settings, [(m.conversation_id.encode(), encode(m)) for m in second])

    asyncio.run(send_and_stop())
    records = _replies_after_restart(worker_factory, worker, wanted)
    print(f"SIGTERM run: stopped in {took[0]:.1f} s; {len(records)} reply records for {len(wanted)} messages")
    assert took[0] < 10.0, f"the worker took {took[0]:.1f} s to stop"
    _each_once_as_a_platform_sees(records, wanted)


def _replies_after_restart(worker_factory: Any, worker: Any, wanted: set[str]) -> list[Any]:
    """Restart ``worker`` and read banter.replies until every wanted message has a reply."""
    again = worker_factory.restart(worker)
    try:
        return asyncio.run(
            read_topic(
                worker.settings,
                "replies",
                lambda rs: wanted <= {decode(r.value, Reply).message_id for r in rs},
                300.0,
            )
        )
    finally:
        again.stop()


def _each_once_as_a_platform_sees(records: list[Any], wanted: set[str]) -> None:
    """What a platform consuming banter.replies sees: every wanted reply, each once."""
    once = OncePerMessage()
    delivered = [mid for mid in (decode(r.value, Reply).message_id for r in records) if once.first(mid)]
    assert len(delivered) == len(set(delivered)) and wanted <= set(delivered)


def _trace(settings: Any, missing: set[str], at_kill: dict[tuple[str, int], int | None], order: list[str]) -> str:
    """Where each lost message stopped: which topics hold it, and what the router's state last said of it."""
    lines = []
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    turn_at: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for topic in ("messages", "turns", "outputs", "replies"):
        for record in asyncio.run(read_topic(settings, topic, lambda rs: False, 5.0)):
            for mid in missing:
                if mid.encode() in record.value:
                    found[mid][topic] += 1
                if topic in ("messages", "turns") and record.value.startswith(b'{"message_id":"' + mid.encode()):
                    turn_at[mid].append((topic, record.partition, record.offset))
    for record in asyncio.run(
        read_topic(settings, f"{settings.app_id}-conversations-changelog", lambda rs: False, 5.0, full_name=True)
    ):
        for mid in missing:
            if mid.encode() in (record.value or b""):
                found[mid]["conversations-changelog"] += 1
    changelog = f"{settings.app_id}-routing-changelog"
    last: dict[str, bytes] = {}
    for record in asyncio.run(read_topic(settings, changelog, lambda rs: False, 5.0, full_name=True)):
        for mid in missing:
            if mid.encode() in (record.value or b""):
                last[mid] = record.value
    for mid in sorted(missing)[:5]:
        state = last.get(mid, b"")
        where = "done" if b'"done":' in state and state.rfind(mid.encode()) > state.find(b'"done":') else "pending"
        lines.append(
            f"{mid} (message {order.index(mid)} of {len(order)}): records {dict(found[mid])}; "
            f"(topic, partition, offset) {turn_at[mid]}, "
            f"committed at the kill {[at_kill.get((t, p)) for t, p, _ in turn_at[mid]]}; "
            f"routing state: {where if state else 'never'} "
            f"{state[:600]!r}"
        )
    return "\n".join(lines)


async def _committed(settings: Any, topic: str) -> dict[int, int | None]:
    """The worker group's committed offset for each partition of one of its topics."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        name = settings.topic(topic)
        return {p: await consumer.committed(TopicPartition(name, p)) for p in range(settings.partitions)}
    finally:
        await consumer.stop()
