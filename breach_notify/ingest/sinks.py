"""Where the readers put the valid rows' ``(pseudonym, kinds, prefix)``: pseudonyms only.

- :class:`AccSink`: the store connection's temp table ``bn_acc`` (the default runner), which the
  merge reads in the same transaction, and which spills to the data dir's temp directory;
- :class:`ParquetSink`: one Parquet file per shard (the distributed runner, whose workers do not
  hold the store);
- :class:`DropSink`: nothing (the self-check's re-tag pass, which wants only the tags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ACC = "bn_acc"
#: The Parquet file of one shard: the merge reads these columns.
PARQUET = pa.schema([("pseudonym", pa.binary()), ("kinds", pa.uint16()), ("prefix", pa.uint32())])


class Sink(Protocol):
    def write(self, table: pa.Table) -> None:
        """Append a :data:`~breach_notify.ingest.tally.OUTPUT` table."""


class RetrySink(Sink, Protocol):
    def forget(self, f: int) -> None:
        """Remove shard ``f`` 's rows (it is read again another way)."""


class DropSink:
    """Keeps nothing: the self-check's re-tag pass reads files whose pseudonyms the breach
    already holds (only the tags are wanted)."""

    def write(self, table: pa.Table) -> None:
        pass

    def forget(self, f: int) -> None:
        pass


class AccSink:
    """The connection-local temp table ``bn_acc (f, pseudonym, kinds, prefix)``."""

    def __init__(self, store: duckdb.DuckDBPyConnection) -> None:
        self.store = store
        store.execute(
            f"CREATE OR REPLACE TEMP TABLE {ACC}"
            " (f INTEGER, pseudonym BLOB, kinds USMALLINT, prefix UINTEGER)"
        )

    def write(self, table: pa.Table) -> None:
        self.store.register("bn_batch", table)
        try:
            self.store.execute(
                f"INSERT INTO {ACC} SELECT f, pseudonym, kinds, prefix FROM bn_batch"
            )
        finally:
            self.store.unregister("bn_batch")

    def forget(self, f: int) -> None:
        """Remove shard ``f`` 's rows (its reading failed and it is read again another way)."""
        self.store.execute(f"DELETE FROM {ACC} WHERE f = $f", {"f": f})


class ParquetSink:
    """One Parquet file, created on the first write (a shard without valid rows writes none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, PARQUET, compression="none")
        self._writer.write_table(table.select(PARQUET.names))

    def close(self) -> list[Path]:
        """Close the file; the files written (none or this one)."""
        if self._writer is None:
            return []
        self._writer.close()
        return [self.path]
