"""Analytics agent: banter.events → per-minute and per-hour windows of the partitions it holds.

Each batch opens the window records of the partitions it touches (``models.analytics.Shard``),
counts each message once, tidies (old minutes fold into hours, ids past the hold are forgotten,
windows past a week go), and writes what changed to the ``analytics`` table's changelog. faust
flushes those writes before it commits the batch's offsets, and a record carries the ids it counted,
so a replay after a crash counts nothing twice. ``/analytics`` (``streams.pages``) reads
the changelog of every partition.

The records of a partition this worker was just handed are read from the changelog before its first
batch is counted, rather than taken from faust's table recovery: faust restores only the changelog
partitions its assignor saw, and a leader whose metadata was fetched while the changelog topic was
being created leaves that topic out for as long as the metadata lives (minutes). The new holder then
started from nothing and wrote over the records of the worker before it, losing their counts and the
ids that recognise a replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from faust.types import TP

from models import analytics
from schemas import Event
from streams import analytics as reader
from streams import tables, topics
from streams.app import agent, app, settings
from streams.inputs import Record

log = logging.getLogger(__name__)
BATCH = 2000
BATCH_WAIT_S = 1.0  # analytics is not on the reply path: bigger batches, fewer changelog writes


EVENTS = settings.topic("events")


class Loaded:
    """The input partitions whose records this worker has read since it was handed them."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()
        self.generation = 0  # a revocation during a read leaves its partitions to be read again

    async def ensure(self, partitions: Iterable[int]) -> None:
        """Put the changelog's records of each partition not read yet into the table."""
        wanted, generation = set(partitions) - self.partitions, self.generation
        if not wanted:
            return
        started = time.monotonic()
        records = await reader.load(settings, wanted)
        for key in [key for key in tables.analytics.data if int(key.split(b"|", 1)[0]) in wanted]:
            del tables.analytics.data[key]
        for name, record in records.items():
            tables.analytics.data[name.encode()] = record
        if generation == self.generation:
            self.partitions |= wanted
        # once per partition and rebalance: a takeover that never gets here is a stalled one
        log.info(
            "analytics: the windows of partitions handed to this worker read from the changelog",
            extra={
                "partitions": sorted(wanted),
                "records": len(records),
                "took_s": round(time.monotonic() - started, 3),
                "kept": generation == self.generation,
            },
        )

    def forget(self, revoked: Iterable[TP]) -> None:
        self.generation += 1
        self.partitions -= {tp.partition for tp in revoked if tp.topic == EVENTS}


LOADED = Loaded()


@app.on_partitions_revoked.connect
def _on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """faust's signal: ``args`` is (the revoked partitions,), sent before the group reassigns them."""
    LOADED.forget(args[0])


@agent("analytics", topics.events, batch=BATCH, within_s=BATCH_WAIT_S)
async def count_events(records: list[Record]) -> None:
    """banter.events → the analytics table: windows of messages, intents, sources, models, turns."""
    await LOADED.ensure({record.message.partition for record in records})
    now, shards = time.time(), dict[int, analytics.Shard]()
    for record in records:
        await topics.inputs.guarded(record, "analytics", partial(_add, record, shards, now))
    for shard in shards.values():
        shard.tidy(now)
        _save(shard)


async def _add(record: Record, shards: dict[int, analytics.Shard], now: float) -> None:
    event = await topics.inputs.decode(record, Event, "analytics")
    if event is not None:
        partition = record.message.partition
        shard = shards.get(partition) or shards.setdefault(partition, _open(partition))
        shard.add(event, record.message.offset, now)


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
