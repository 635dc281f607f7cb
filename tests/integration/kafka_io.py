"""Raw Kafka helpers for the integration tests: produce bytes, read whole topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.kafka import kafka_options
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
