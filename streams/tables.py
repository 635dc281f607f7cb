"""Changelog-backed tables: the state that must survive a worker crash."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from faust.types import TableT

from streams import store
from streams.app import app, settings

log = logging.getLogger(__name__)

# Keys are conversation ids as bytes, the topics' keys (faust then picks the raw codec);
# values are plain dicts in faust's json codec, which is orjson when orjson is installed.

# conversation_id -> models.context state: turn count, start time, history window, recent turns.
# The large table (every conversation of the last BANTER_STATE_IDLE_S): on disk by default (streams.store),
# so that a restarted worker reads only what its changelog gained since.
conversations: TableT = store.table(app, settings, "conversations")

# conversation_id -> a streams.routing.Conversation as plain data, written by streams.delivery (which keeps
# the objects of the conversations it serves in memory); on disk like the conversations
routing: TableT = store.table(app, settings, "routing")


def write(table: TableT, key: bytes, value: Any, partition: int) -> None:
    """``table[key] = value`` on ``partition``'s changelog, without waiting for Kafka's ack.

    Naming the partition lets a write happen outside an event (faust's ``table[key] = value``
    takes it from the current event). The router's state, which must reach Kafka before its
    reply, is written by ``streams.delivery``.
    """
    store.put(table, key, value, partition)
    table.send_changelog(partition, key, value)


async def expire(table: TableT, idle: Callable[[Any, float], bool], chunk: int = 500) -> int:
    """Forget every entry ``idle(value, now)`` calls idle: out of the local store, and a tombstone in the
    changelog (on the partition the value names), so that a restarting worker does not read it back.

    The table is read ``chunk`` entries at a time, giving the event loop its turn in between (a hundred
    thousand conversations take about a second to read), and only the idle keys are kept meanwhile.
    """
    now, idle_keys, seen = time.time(), [], 0
    on_disk = isinstance(table.data, store.PartitionedStore)  # read through a RocksDB iterator's snapshot
    try:
        for key, value in table.data.items() if on_disk else list(table.data.items()):
            if _idle(value, now, idle):
                idle_keys.append(key)
            seen += 1
            if seen % chunk == 0:
                await asyncio.sleep(0)
    except RuntimeError:  # a rebalance changed the partitions held while they were read: next round
        log.info("idle state check cut short by a rebalance", extra={"table": table.name})
    gone = 0
    for key in idle_keys:  # read again: a message may have come since (no await from here on)
        value = table.data.get(key)
        if value is not None and _idle(value, now, idle):
            store.delete(table, key)
            table.send_changelog(int(value["partition"]), key, None)
            gone += 1
    if gone:
        log.info("idle state forgotten", extra={"table": table.name, "entries": gone, "left": seen - gone})
    return gone


def _idle(value: Any, now: float, idle: Callable[[Any, float], bool]) -> bool:
    return value is not None and value.get("partition") is not None and idle(value, now)


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
