"""Analytics agent: banter.events → per-minute and per-hour windows of the partitions it holds.

Each batch opens the window records of the partitions it touches (``models.analytics.Shard``),
counts each message once, tidies (old minutes fold into hours, ids past the hold are forgotten,
windows past a week go), and writes what changed to the ``analytics`` table's changelog. faust
flushes those writes before it commits the batch's offsets, and a record carries the ids it counted,
so a replay after a crash counts nothing twice. ``/analytics`` (``streams.analytics_page``) reads
the changelog of every partition.
"""

from __future__ import annotations

import time

from faust import Stream
from faust.types import EventT

from models import analytics
from schemas import Event
from streams import analytics_page, gaps, tables, topics  # noqa: F401  # analytics_page: the worker's pages
from streams.app import role_agent
from streams.pipeline import decode_event

BATCH = 2000
BATCH_WAIT_S = 1.0  # analytics is not on the reply path: bigger batches, fewer changelog writes


@role_agent("analytics", topics.events)
async def count_events(stream: Stream) -> None:
    """banter.events → the analytics table: windows of messages, intents, sources, models, turns."""
    async for events in stream.take_events(BATCH, within=BATCH_WAIT_S):
        await INPUTS.take(events)


async def _count(records: list[EventT]) -> None:
    now, shards = time.time(), dict[int, analytics.Shard]()
    for record in records:
        event = await decode_event(record, Event, "analytics")
        if event is not None:
            partition = record.message.partition
            shard = shards.get(partition) or shards.setdefault(partition, _open(partition))
            shard.add(event, record.message.offset, now)
    for shard in shards.values():
        shard.tidy(now)
        _save(shard)


def _open(partition: int) -> analytics.Shard:
    prefix = f"{partition}|".encode()
    mine = {key.decode(): value for key, value in tables.analytics.data.items() if key.startswith(prefix) and value}
    return analytics.Shard(partition, mine)


def _save(shard: analytics.Shard) -> None:
    for name, record in shard.changes().items():
        key = name.encode()
        if record is None:
            tables.analytics.data.pop(key, None)
        else:
            tables.analytics.data[key] = record
        tables.analytics.send_changelog(shard.partition, key, record)


INPUTS = gaps.Inputs("analytics", topics.events.topics, _count)
