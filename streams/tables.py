"""Changelog-backed tables: the state that must survive a worker crash."""

from __future__ import annotations

from typing import Any

from faust.types import TableT

from streams.app import app, settings

# Keys are conversation ids as bytes, the topics' keys (faust then picks the raw codec);
# values are plain dicts in faust's json codec, which is orjson when orjson is installed.

# conversation_id -> models.context state: turn count, start time, history window, recent turns
conversations: TableT = app.Table("conversations", default=None, partitions=settings.partitions, key_type=bytes)

# conversation_id -> {"pending": {message_id: entry}, "done": [message_id, ...]} (streams.routing)
routing: TableT = app.Table("routing", default=None, partitions=settings.partitions, key_type=bytes)


async def persist(table: TableT, key: bytes, value: Any, partition: int, durable: bool) -> None:
    """Write ``table[key]`` on ``partition``; with ``durable``, wait for Kafka's ack.

    Naming the partition lets the router's deadline timer write too: faust's
    ``table[key] = value`` takes the partition from the current event, and a
    timer has none. Waiting for the ack before a reply is produced means a reply
    that reached Kafka always has its routing state there first, so a replay
    after a crash finds it answered and never re-answers it differently.
    """
    table.data[key] = value
    sent = table.send_changelog(partition, key, value)
    if durable:
        await sent

# "agent|topic|partition" -> the last input offset handed to that agent (streams.gaps); the value is
# written to the changelog partition of the input partition, so it moves with it
progress: TableT = app.Table("progress", default=None, partitions=settings.partitions, key_type=bytes)

# "partition|m|minute start" or "partition|h|hour start" -> a models.analytics window record of that
# banter.events partition; readers of every partition read the changelog (streams.analytics), so it is
# kept short: small segments, compacted eagerly, tombstones gone after a minute
analytics: TableT = app.Table(
    "analytics_windows", default=None, partitions=settings.partitions, key_type=bytes,
    extra_topic_configs={"segment.ms": 60_000, "min.cleanable.dirty.ratio": 0.01, "delete.retention.ms": 60_000},
)  # fmt: skip
