"""A table's local store on disk: faust's RocksDB store (through ``rocksdict``), written by partition.

faust's memory store forgets everything when the worker stops, so a restart reads a table's whole
changelog back (every conversation ever kept). The RocksDB store keeps the table on disk, one database
per partition, with the changelog offset it holds: a restarted worker reads only the changelog records
written since. faust's store takes the partition of a read or a write from the current event; banter writes a
table once per micro-batch and from timers, outside any event, so every write here names its partition
(``put``), and a plain ``store[key] = value`` is refused rather than written to a guessed partition.

A table on this store is declared with ``table(app, settings, name)`` and written with ``put`` (then its
changelog, which the caller sends); with BANTER_TABLE_STORE=memory both fall back to faust's memory store.
"""

from __future__ import annotations

from typing import Any

import faust
from faust import stores
from faust.stores import rocksdb
from faust.types import TableT

from streams.kafka import CHANGELOG_CONFIGS
from streams.settings import Settings

SCHEME = "partitioned-rocksdb"


class PartitionedStore(rocksdb.Store):
    """faust's RocksDB store whose writes name their partition."""

    def put(self, key: Any, value: Any, partition: int) -> None:
        """``self[key] = value`` in ``partition``'s database (the changelog write is the table's)."""
        raw = self._encode_key(key)
        self._db_for_partition(partition).put(raw, self._encode_value(value))
        self._key_index[raw] = partition

    def delete(self, key: Any) -> None:
        """``del self[key]`` without reading it first (and without an error when it is not there)."""
        self._del(self._encode_key(key))

    def _get(self, key: bytes) -> bytes | None:
        """Looked up by key in every partition's database (through the key index and the bloom filters):
        in a micro-batch, faust's current event may be another partition's record."""
        found = self._get_bucket_for_key(key)
        return None if found is None else found[1]

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise TypeError(f"write {self.table_name} with streams.tables.write, which names the partition")


def register() -> str:
    """Let faust find the store by its URL scheme; returns the scheme."""
    stores.STORES.aliases.setdefault(SCHEME, f"{__name__}:PartitionedStore")
    return SCHEME


def table(app: faust.App, settings: Settings, name: str) -> TableT:
    """The changelog-backed table ``name``, keyed by bytes on banter's partitions, in the configured store,
    its changelog compacted (streams.kafka.CHANGELOG_CONFIGS)."""
    return app.Table(
        name,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        store=url(settings.table_store, name),
        extra_topic_configs=CHANGELOG_CONFIGS,
    )


def url(kind: str, table: str) -> str | None:
    """The store URL of a table for BANTER_TABLE_STORE ``kind``: None = the app's (memory) store."""
    return f"{register()}:{table}" if kind == "rocksdb" else None


def put(table: TableT, key: Any, value: Any, partition: int) -> None:
    """``table[key] = value`` in the local store, on ``partition``; the changelog write is the caller's."""
    if isinstance(table.data, PartitionedStore):
        table.data.put(key, value, partition)
    else:
        table.data[key] = value


def delete(table: TableT, key: Any) -> None:
    """``table`` forgets ``key`` in the local store, if it holds it; the tombstone is the caller's."""
    if isinstance(table.data, PartitionedStore):
        table.data.delete(key)
    else:
        table.data.pop(key, None)


def release(table: TableT, key: Any) -> None:
    """Forget ``key`` of a partition this worker no longer holds. faust's RocksDB store closed that
    partition's database at the rebalance; its memory store forgets only what it read from the changelog,
    so a key written here is dropped by hand."""
    if not isinstance(table.data, PartitionedStore):
        table.data.pop(key, None)
