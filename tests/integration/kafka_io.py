"""Raw Kafka helpers for the integration tests: produce bytes (at once or at a pace), read whole topics,
follow a topic live, and see a consumer group's members."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from streams.kafka import kafka_options, partitions_of
from streams.settings import Settings


async def produce(settings: Settings, records: list[tuple[bytes | None, bytes]], topic: str = "messages") -> None:
    """Produce (key, value) pairs in order to one of the worker's topics."""
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(topic), value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    settings: Settings,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout_s: float,
    full_name: bool = False,
) -> list[Any]:
    """Every record of a topic from the beginning, until ``until(records)`` or the timeout."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        name = topic if full_name else settings.topic(topic)
        partitions = consumer.partitions_for_topic(name) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(name) or set()
        consumer.assign([TopicPartition(name, p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def produce_paced(
    settings: Settings,
    records: Iterator[tuple[bytes | None, bytes]],
    per_s: float,
    stop: asyncio.Event,
    topic: str = "messages",
) -> list[float]:
    """Produce records from ``records``, ``per_s`` a second, until ``stop`` is set or they run out.

    Returns when each was handed to the producer (``time.monotonic()``), in order; every one is acked.
    """
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5)
    await producer.start()
    sent_at: list[float] = []
    futures = []
    try:
        started = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, started + len(sent_at) / per_s - time.monotonic()))
            if stop.is_set() or (record := next(records, None)) is None:
                break  # a record is taken only when it is sent: the caller's list of them stays exact
            sent_at.append(time.monotonic())
            futures.append(await producer.send(settings.topic(topic), record[1], key=record[0]))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent_at


@asynccontextmanager
async def following(settings: Settings, topic: str) -> AsyncIterator[list[tuple[float, Any]]]:
    """Every record produced to one of the worker's topics from now on, as (``time.monotonic()`` when
    this reader got it, record), appended live while the block runs: what a platform's consumer sees."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[float, Any]] = []

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                seen.extend((now, record) for record in records)

    try:
        name = settings.topic(topic)
        consumer.assign([TopicPartition(name, p) for p in await partitions_of(consumer, name)])
        await consumer.seek_to_end()
        for tp in consumer.assignment():  # positions resolved now, before the caller sends anything
            await consumer.position(tp)
        reader = asyncio.create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await consumer.stop()


async def group_members(settings: Settings, group: str, topic: str) -> tuple[str, list[int]]:
    """A consumer group's state and, per member, how many partitions of one of the worker's topics it holds."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.to_object()["groups"]
    name = settings.topic(topic)
    held = []
    for member in described["members"]:
        assignment = member["member_assignment"]
        parts = ConsumerProtocolMemberAssignment.decode(assignment).assignment if assignment else []
        held.append(sum(len(partitions) for t, partitions in parts if t == name))
    return described["state"], held
