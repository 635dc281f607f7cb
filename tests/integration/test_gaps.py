"""Input records that faust acked without handing them to an agent still reach it
(streams.gaps): here the group's committed offset is moved past messages that no
worker read, as faust 0.15 can do around a rebalance or a crash."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, UnknownMemberIdError

from schemas import Message, Reply, decode, encode
from streams.client import new_message
from streams.kafka import kafka_options
from streams.settings import Settings
from tests.integration.kafka_io import produce, read_topic
from tests.integration.test_router import OPEN_TEXTS

CONVERSATIONS = 40  # enough to put messages on every partition


def test_messages_committed_past_unread_still_get_their_replies(worker_factory: Any) -> None:
    worker = worker_factory()
    worker.wait_ready(timeout_s=240)
    settings = worker.settings
    before = _messages("before", 80)
    asyncio.run(produce(settings, [(m.conversation_id.encode(), encode(m)) for m in before]))
    asyncio.run(_answered(settings, before, 120.0))  # every agent has a mark on every partition
    worker.stop()

    skipped = _messages("skipped", 80)
    asyncio.run(produce(settings, [(m.conversation_id.encode(), encode(m)) for m in skipped]))
    asyncio.run(_commit_to_end(settings, "messages"))  # acked, and committed, but never handed to the context agent

    again = worker_factory.restart(worker)
    try:
        replies = asyncio.run(_answered(settings, skipped, 180.0))  # nothing new is sent: the catch-up finds them
        metrics = _metrics(again.settings.web_port)
    finally:
        again.stop()
    missing = {m.message_id for m in skipped} - {r.message_id for r in replies}
    assert not missing, f"{len(missing)} of {len(skipped)} messages committed past never got a reply"
    read_back = _counter(metrics, "banter_input_gap_records_total", 'agent="context"')
    assert read_back == len(skipped), f"the context agent read back {read_back} records, not {len(skipped)}"


def _messages(tag: str, count: int) -> list[Message]:
    return [
        new_message(f"{OPEN_TEXTS[i % 5]} ({tag} {i})", f"gap-{i % CONVERSATIONS}", platform="test")
        for i in range(count)
    ]


async def _answered(settings: Settings, messages: list[Message], timeout_s: float) -> list[Reply]:
    wanted = {m.message_id for m in messages}

    def all_answered(records: list[Any]) -> bool:
        return wanted <= {decode(r.value, Reply).message_id for r in records}

    records = await read_topic(settings, "replies", all_answered, timeout_s)
    return [reply for reply in (decode(r.value, Reply) for r in records) if reply.message_id in wanted]


async def _commit_to_end(settings: Settings, topic: str) -> None:
    """Commit the worker group's offsets of ``topic`` at its end, once no member is in the group (a stopped
    worker is a static member, which stays in the group until its session times out)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic(topic), p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        deadline = time.monotonic() + settings.session_timeout_s + 30.0
        while True:
            try:
                await consumer.commit(await consumer.end_offsets(partitions))
                return
            except (CommitFailedError, UnknownMemberIdError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await consumer.stop()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _counter(text: str, name: str, labels: str) -> float:
    pattern = rf"^{name}\{{[^}}]*{re.escape(labels)}[^}}]*\}} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))
