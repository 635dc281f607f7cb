"""Idle state leaves the local store with a tombstone, on disk and in memory, and a conversation that a
message touched while the table was read is kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest

from streams import store, tables


def _table(tmp_path: Path, kind: str) -> Any:
    app = faust.App(f"expire-{kind}", datadir=str(tmp_path), store="memory://")
    table = app.Table("c", default=None, partitions=4, key_type=bytes, store=store.url(kind, "c"))
    table.sent = []
    table.send_changelog = lambda partition, key, value: table.sent.append((partition, key, value))
    if isinstance(table.data, store.PartitionedStore):
        table.data._dbs_for_actives = lambda: iter(table.data._dbs.values())  # every partition is this worker's
    return table


@pytest.mark.parametrize("kind", ["rocksdb", "memory"])
def test_idle_entries_are_forgotten_with_a_tombstone_on_their_partition(tmp_path: Path, kind: str) -> None:
    table = _table(tmp_path, kind)
    for i in range(1200):
        store.put(table, f"c{i}".encode(), {"partition": i % 4, "active_at": 0.0 if i % 3 == 0 else 9e18}, i % 4)
    gone = asyncio.run(tables.expire(table, lambda state, now: state["active_at"] < now, chunk=100))
    assert gone == 400 and len(table.sent) == 400
    assert all(value is None and key == f"c{int(key[1:])}".encode() for _, key, value in table.sent)
    assert {partition for partition, key, _ in table.sent if key == b"c3"} == {3}
    assert table.data.get(b"c3") is None and table.data.get(b"c1") is not None


@pytest.mark.parametrize("kind", ["rocksdb", "memory"])
def test_a_conversation_touched_while_the_table_was_read_is_kept(tmp_path: Path, kind: str) -> None:
    table = _table(tmp_path, kind)
    for i in range(10):
        store.put(table, f"c{i}".encode(), {"partition": 1, "active_at": 0.0}, 1)

    async def run() -> int:
        async def message_arrives() -> None:
            store.put(table, b"c9", {"partition": 1, "active_at": 9e18}, 1)

        touch = asyncio.create_task(message_arrives())  # runs at the expiry's first yield
        gone = await tables.expire(table, lambda state, now: state["active_at"] < now, chunk=1)
        await touch
        return gone

    assert asyncio.run(run()) == 9 and table.data.get(b"c9") is not None
