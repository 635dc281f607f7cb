"""The on-disk table store: writes name their partition, reads find a key whatever the current event."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams import store


def _table(datadir: Path, name: str = "t") -> faust.types.TableT:
    app = faust.App(f"store-test-{name}", datadir=str(datadir), store="memory://")
    return app.Table(name, default=None, partitions=4, key_type=bytes, store=store.url("rocksdb", name))


def test_a_write_lands_in_the_database_of_the_partition_it_names(tmp_path: Path) -> None:
    table = _table(tmp_path)
    data = table.data
    assert isinstance(data, store.PartitionedStore)
    store.put(table, b"a", {"turns": 1}, 2)
    store.put(table, b"b", {"turns": 2}, 3)
    assert data._db_for_partition(2).get(b"a") is not None and data._db_for_partition(3).get(b"a") is None
    assert data.get(b"a") == {"turns": 1} and data.get(b"b") == {"turns": 2} and data.get(b"c") is None
    assert b"b" in data and b"c" not in data
    del data[b"a"]
    assert data.get(b"a") is None


def test_a_write_that_names_no_partition_is_refused(tmp_path: Path) -> None:
    table = _table(tmp_path)
    with pytest.raises(TypeError, match="names the partition"):
        table.data[b"a"] = {"turns": 1}


def test_what_was_written_and_the_changelog_offset_survive_a_restart(tmp_path: Path) -> None:
    table = _table(tmp_path)
    store.put(table, b"a", {"turns": 5}, 1)
    tp = TP("store-test-t-t-changelog", 1)
    table.data.set_persisted_offset(tp, 41)
    table.data._dbs.clear()  # the process ends; a new one opens the same files
    again = _table(tmp_path)
    assert again.data.persisted_offset(tp) == 41  # its recovery reads the changelog from there on
    assert again.data.get(b"a") == {"turns": 5}


def test_the_memory_setting_keeps_faust_s_memory_store(tmp_path: Path) -> None:
    app = faust.App("store-test-memory", datadir=str(tmp_path), store="memory://")
    table = app.Table("m", default=None, partitions=4, key_type=bytes, store=store.url("memory", "m"))
    store.put(table, b"a", 1, 2)
    assert not isinstance(table.data, store.PartitionedStore) and table.data[b"a"] == 1
