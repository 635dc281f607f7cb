"""Changelog-backed tables: the state that must survive a worker crash."""

from __future__ import annotations

from typing import Any

from faust.types import TableT

from streams.app import app, settings

# Keys are conversation ids as bytes, the topics' keys (faust then picks the raw codec);
# values are plain dicts in faust's json codec, which is orjson when orjson is installed.

# conversation_id -> models.context state: turn count, start time, history window, recent turns
conversations: TableT = app.Table("conversations", default=None, partitions=settings.partitions, key_type=bytes)

# conversation_id -> a streams.routing.Conversation (plain data in the changelog), written by streams.delivery
routing: TableT = app.Table("routing", default=None, partitions=settings.partitions, key_type=bytes)


def write(table: TableT, key: bytes, value: Any, partition: int) -> None:
    """``table[key] = value`` on ``partition``'s changelog, without waiting for Kafka's ack.

    Naming the partition lets a write happen outside an event (faust's ``table[key] = value``
    takes it from the current event). The router's state, which must reach Kafka before its
    reply, is written by ``streams.delivery``.
    """
    table.data[key] = value
    table.send_changelog(partition, key, value)


# "partition|m|minute start" or "partition|h|hour start" -> a models.analytics window record of that
# banter.events partition; readers of every partition read the changelog (streams.analytics), so it is
# kept short: small segments, compacted eagerly, tombstones gone after a minute
analytics: TableT = app.Table(
    "analytics_windows",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    extra_topic_configs={"segment.ms": 60_000, "min.cleanable.dirty.ratio": 0.01, "delete.retention.ms": 60_000},
)
