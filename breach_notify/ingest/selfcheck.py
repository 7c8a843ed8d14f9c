"""Self-check tags at ingest (DESIGN §10): for every distinct number x of a breach ingested with
the self-check on, ``tag = VOPRF output of x`` (first 16 bytes, under the breach's OPRF key) and
its public bucket (the first b bits of ``SHA-256(domain || x)``), stored in ``selfcheck_tags``.

How it fits the ingest:

- :func:`plan` decides (in the ingest's process, before any file is read) whether this ingest
  tags, under which OPRF key (the breach's own once it has one; else the active key, made on
  first need) and at which *staging* resolution: buckets are staged at ``stage_bits``, enough for
  the input's size, and cut to the breach's b only at the merge, where all counts are known;
- :class:`ShardTagger` tags a shard's E.164 values in worker threads (libsodium through ctypes
  releases the GIL) and writes ``(tag, bucket)`` Parquet into the plan's directory; the
  readers call it where they hold each batch's E.164 strings (before their HMAC), so a Dask
  worker tags its own shards;
- :func:`merge` runs inside the ingest's transaction: deduplicates the tags, chooses b (the
  smallest with every bucket at most ``TARGET_BUCKET``) the first time, inserts the new tags and
  the breach's self-check row. All-or-nothing with the ingest.

Limits, stated plainly: a breach gets b once; later files are tagged at that b (their buckets
may then exceed the target; the server pads to the largest). Tagging a breach that was ingested
without the self-check, or re-tagging under a new OPRF key, needs its files again: the ingest
skips files it already holds, so that is not done here yet.
Staged Parquet (keyed tags and ``stage_bits``-bit buckets) lives in the ingest's temporary
directory and is removed with it.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from breach_notify.crypto import Keyring
from breach_notify.kinds import KINDS

#: The largest bucket the first ingest aims for (the self-check response carries a whole bucket).
TARGET_BUCKET = 1 << 13
#: Staging is at most this fine; enough for ~8 * 2^13 * 2^24 rows.
MAX_STAGE_BITS = 24
_CHUNK = 4096
_SCHEMA = pa.schema([("tag", pa.binary()), ("bucket", pa.uint32())])


@dataclass(frozen=True)
class TagPlan:
    """Picklable: which key, which staging resolution, where the staged Parquet goes."""

    key_id: str
    stage_bits: int
    out_dir: Path
    keyring_path: Path


def plan(
    conn: duckdb.DuckDBPyConnection,
    keyring: Keyring,
    keyring_path: Path,
    breach_id: str,
    *,
    enabled: bool,
    nbytes: int,
    out_dir: Path,
) -> TagPlan | None:
    """The tagging of this ingest, or None. A breach that already has tags is always tagged
    (new files would otherwise be missed by the check), under its own key."""
    row = conn.execute(
        "SELECT oprf_key_id, bucket_bits FROM selfcheck_breaches WHERE breach_id = ?", [breach_id]
    ).fetchone()
    if row is None and not enabled:
        return None
    key_id = str(row[0]) if row else keyring.ensure_oprf()
    keyring.oprf_server(key_id)  # fails early (BadInput) if the key is gone
    rows = max(1, nbytes // 8)  # no row is shorter than a number and its line end
    stage = math.ceil(math.log2(max(1.0, 8 * rows / TARGET_BUCKET)))
    stage = min(MAX_STAGE_BITS, max(stage, int(row[1]) if row else 0))
    (out_dir / "selfcheck").mkdir(parents=True, exist_ok=True)
    return TagPlan(key_id, stage, out_dir / "selfcheck", keyring_path)


class ShardTagger:
    """Tags one shard's E.164 values in threads; :meth:`close` returns its Parquet files."""

    def __init__(self, tag_plan: TagPlan, label: str, *, workers: int | None = None) -> None:
        from breach_notify.crypto.oprf import bucket_prefix

        self._server = Keyring.load(tag_plan.keyring_path).oprf_server(tag_plan.key_id)
        self._bucket_prefix = bucket_prefix
        self._shift = 32 - tag_plan.stage_bits
        self._workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="selfcheck-tag")
        self._pending: deque[Future[pa.Table]] = deque()
        self._path = tag_plan.out_dir / f"{label}-{os.getpid()}-{id(self):x}.parquet"
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self.count = 0

    @classmethod
    def maybe(cls, tag_plan: TagPlan | None, label: str) -> ShardTagger | None:
        return None if tag_plan is None else cls(tag_plan, label)

    def add(self, e164: pa.Array | pa.ChunkedArray | Iterable[str]) -> None:
        """Queue E.164 values (an Arrow string array or strings) for tagging."""
        if isinstance(e164, pa.ChunkedArray | pa.Array):
            values = e164.cast(pa.binary()).to_pylist()
        else:
            values = [v.encode() for v in e164]
        for start in range(0, len(values), _CHUNK):
            self._pending.append(self._pool.submit(self._tag, values[start : start + _CHUNK]))
        self._drain(block=len(self._pending) > 4 * self._workers)

    def close(self) -> list[Path]:
        """Wait for every tag, close the file; the shard's Parquet files (none if no values)."""
        try:
            while self._pending:
                self._write(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._writer is not None:
                self._writer.close()
        self._closed = True
        return [self._path] if self._writer is not None else []

    def discard(self) -> None:
        """Drop everything unless :meth:`close` succeeded (the shard failed, or is read again
        another way)."""
        if self._closed:
            return
        self._closed = True
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.close()
        self._path.unlink(missing_ok=True)

    def _tag(self, values: list[bytes]) -> pa.Table:
        prefix, shift = self._bucket_prefix, self._shift
        tags = self._server.tags(values)
        buckets = [prefix(v) >> shift if shift < 32 else 0 for v in values]
        return pa.table(
            {"tag": pa.array(tags, pa.binary()), "bucket": pa.array(buckets, pa.uint32())}
        )

    def _drain(self, *, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._write(self._pending.popleft().result())
            block = block and len(self._pending) > 2 * self._workers

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, _SCHEMA, compression="none")
        self._writer.write_table(table)
        self.count += table.num_rows


def choose_bits(counts: dict[int, int], stage_bits: int, target: int = TARGET_BUCKET) -> int:
    """The smallest b <= stage_bits whose largest bucket holds at most ``target`` (else
    ``stage_bits``), from the bucket counts at ``stage_bits``."""
    by_bits = {stage_bits: counts}
    for bits in range(stage_bits - 1, -1, -1):
        coarser: dict[int, int] = {}
        for b, c in by_bits[bits + 1].items():
            coarser[b >> 1] = coarser.get(b >> 1, 0) + c
        by_bits[bits] = coarser
    for bits in range(stage_bits + 1):
        if max(by_bits[bits].values(), default=0) <= target:
            return bits
    return stage_bits


def merge(
    conn: duckdb.DuckDBPyConnection, tag_plan: TagPlan | None, files: list[Path], breach_id: str
) -> dict[str, Any] | None:
    """Store the staged tags of this ingest (inside the caller's transaction); the breach's
    self-check counts, or None when this ingest does not tag."""
    if tag_plan is None:
        return None
    stage = tag_plan.stage_bits
    if files:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE bn_tags AS SELECT tag, any_value(bucket) AS bucket"
            " FROM read_parquet(?) GROUP BY tag",
            [[str(p) for p in files]],
        )
    else:
        conn.execute("CREATE OR REPLACE TEMP TABLE bn_tags (tag BLOB, bucket UINTEGER)")
    row = conn.execute(
        "SELECT bucket_bits FROM selfcheck_breaches WHERE breach_id = ?", [breach_id]
    ).fetchone()
    if row is None:
        counts = conn.execute("SELECT bucket, count(*) FROM bn_tags GROUP BY bucket").fetchall()
        bits = choose_bits({int(b): int(c) for b, c in counts}, stage, TARGET_BUCKET)
    else:
        bits = int(row[0])
    conn.execute(
        f"""INSERT INTO selfcheck_tags (breach_id, oprf_key_id, bucket, tag)
            SELECT $bid, $kid, (n.bucket >> {stage - bits})::UINTEGER, n.tag FROM bn_tags AS n
            WHERE NOT EXISTS (SELECT 1 FROM selfcheck_tags t
                              WHERE t.breach_id = $bid AND t.tag = n.tag)""",
        {"bid": breach_id, "kid": tag_plan.key_id},
    )
    conn.execute("DROP TABLE bn_tags")
    stats = conn.execute(
        """SELECT coalesce(sum(c), 0), coalesce(max(c), 0)
           FROM (SELECT count(*) AS c FROM selfcheck_tags WHERE breach_id = ? GROUP BY bucket)""",
        [breach_id],
    ).fetchone()
    tags, largest = (int(stats[0]), int(stats[1])) if stats else (0, 0)
    kinds = _exposed_kinds(conn, breach_id)
    conn.execute(
        """INSERT OR REPLACE INTO selfcheck_breaches
               (breach_id, oprf_key_id, bucket_bits, max_bucket, tags, kinds, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, now())""",
        [breach_id, tag_plan.key_id, bits, largest, tags, kinds],
    )
    return {"key_id": tag_plan.key_id, "bucket_bits": bits, "max_bucket": largest, "tags": tags}


def _exposed_kinds(conn: duckdb.DuckDBPyConnection, breach_id: str) -> int:
    """Bitmask of the kinds of field exposed for at least k of the breach's numbers (small
    cells suppressed, as in the breach summary)."""
    row = conn.execute("SELECT k FROM breaches WHERE id = ?", [breach_id]).fetchone()
    k = int(row[0]) if row else 1
    sums = ", ".join(f"count(*) FILTER (WHERE kinds & {1 << i} <> 0)" for i in range(len(KINDS)))
    counts = conn.execute(
        f"SELECT {sums} FROM breach_pseudonyms WHERE breach_id = ?", [breach_id]
    ).fetchone()
    return sum(1 << i for i, n in enumerate(counts or ()) if int(n) >= k)
