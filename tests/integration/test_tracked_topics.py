"""A record sent to a topic its producer knows is acked although the producer adds a new topic right after
(streams.tracked_topics): without the workaround, aiokafka's next metadata refresh forgot the first topic
and the record waited for a partition leader until the producer's request timeout."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka import kafka_options
from streams.settings import Settings

ACK_S = 10.0  # the record lingers 0.3 s; its ack, once sent, takes milliseconds


def test_a_record_to_a_known_topic_is_acked_when_a_new_topic_is_added_meanwhile(base_env: dict[str, str]) -> None:
    asyncio.run(_known_then_new(Settings.from_env(base_env)))


async def _known_then_new(settings: Settings) -> None:
    options, tag = kafka_options(settings), uuid.uuid4().hex[:8]
    known, new = f"tracked-{tag}-known", f"tracked-{tag}-new"
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    producer = AIOKafkaProducer(**options, acks="all", linger_ms=300, request_timeout_ms=120_000)
    try:
        await admin.create_topics([NewTopic(known, 1, 1)])
        await producer.start()
        await _until_known(producer, known)  # refreshed while tracking nothing: every topic, not one added
        await admin.create_topics([NewTopic(new, 1, 1)])
        lingering = await producer.send(known, b"first", partition=0)
        await producer.send(new, b"second", partition=0)  # new to the producer: aiokafka adds it
        done, _ = await asyncio.wait([lingering], timeout=ACK_S)
        tracked = sorted(producer.client._topics)
    finally:
        with contextlib.suppress(TimeoutError):  # a producer stuck on a record would wait for it to stop
            await asyncio.wait_for(producer.stop(), ACK_S)
        await admin.delete_topics([known, new])
        await admin.close()
    assert done, (
        f"a record to {known} was not acked within {ACK_S:.0f} s after the producer added {new}; it tracks {tracked}"
    )


async def _until_known(producer: AIOKafkaProducer, topic: str) -> None:
    for _ in range(50):
        await producer.client.force_metadata_update()
        if topic in producer.client.cluster.topics():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{topic} never appeared in the producer's metadata")
