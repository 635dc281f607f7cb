"""How banter reaches Kafka: connection options and credentials, its topic names, and creating them.

Every client of banter's (the faust app, the platform client, the gateway, the
gap reader, the benchmarks) takes its connection from here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import Settings

TOPICS = ("messages", "turns", "outputs", "replies", "events", "deadletter")
"""banter's topics (DESIGN.md's table), each ``<BANTER_TOPIC_PREFIX>.<name>``."""


def kafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection options (bootstrap servers and credentials)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap}
    if settings.kafka_username:
        options |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password.reveal(),
        }
    return options


def faust_credentials(settings: Settings) -> Any:
    """The same credentials as faust takes them (None without a user)."""
    if not settings.kafka_username:
        return None
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_password.reveal())


async def ensure_topics(settings: Settings, wait_s: float = 30.0) -> list[str]:
    """Create banter's topics with the configured partitions; returns those created.

    Returns once every partition of the created topics has a leader (or after ``wait_s``), so
    that a worker started next sees them whole: a topic without leaders in the group leader's
    metadata is left out of the assignment until the metadata is refreshed.
    """
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(name) for name in TOPICS]
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, settings.partitions, settings.replication) for name in missing])
            await _wait_for_leaders(admin, missing, wait_s)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        described = await admin.describe_topics(topics)
        ready = [
            t
            for t in described
            if not t.get("error_code")
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        ]
        if len(ready) == len(topics):
            return
        await asyncio.sleep(0.2)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """``topic``'s partition numbers, refreshing the metadata while the topic is new."""
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await consumer._client.force_metadata_update()  # topic may have been created a moment ago
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found: is the worker set up? run `banter broker up`")


CHANGELOG_CONFIGS = {
    "segment.ms": 600_000,  # a segment rolls every 10 minutes: only closed segments are ever compacted
    "min.cleanable.dirty.ratio": 0.1,  # compact once a tenth of the log is superseded
    "delete.retention.ms": 3_600_000,  # a tombstone stays an hour, so a restarting reader sees the delete
}
"""Topic settings of the tables' changelogs, so that compaction really runs (Kafka's default segment
rolls after 7 days, and until then every update and tombstone is replayed by a restart)."""
