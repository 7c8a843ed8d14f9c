"""Self-check tags at ingest (DESIGN §10): for every distinct number x of a breach ingested with
the self-check on, ``tag = VOPRF output of x`` (first 16 bytes, under an OPRF key) and its public
bucket (the first b bits of ``SHA-256(domain || x)``), stored in ``selfcheck_tags``.

A breach's tags form one *set* per OPRF key (``selfcheck_sets``), and each set records which of
the breach's files (by content digest) it covers (``selfcheck_files``). The set under the key of
``selfcheck_breaches`` is the one the web serves. How it fits the ingest:

- :func:`plan` decides (in the ingest's process, before any file is read) what this call tags:
  its new files under the served key (else the active one; a breach that has tags is always
  tagged), and, with the self-check asked for (``--self-check``, ``self_check = true``), the
  *re-tag pass*: files the breach already holds that are not yet tagged under the active key
  (the breach was ingested without the self-check, or the OPRF key was rotated). Those files are
  read again and normalised exactly as the ingest does, for their tags only: the breach's
  pseudonyms and counts are not touched. That needs the raw files: numbers are not stored. Buckets
  are staged at a *staging* resolution, enough for the input's size, and cut to the set's b only
  at the merge, where all counts are known;
- :class:`ShardTagger` tags a shard's E.164 values in worker threads (libsodium through ctypes
  releases the GIL) and writes ``(tag, bucket, pseudonym)`` Parquet into the plan's directory;
  the readers call it where they hold each batch's E.164 strings and pseudonyms, so a Dask
  worker tags its own shards;
- :func:`merge` runs inside the ingest's transaction: keeps only tags whose pseudonym the breach
  holds (a re-read file must be the file recorded; this is the defence if it is not),
  deduplicates, chooses the set's b the first time, inserts, records the files covered, and
  *settles*: a set that covers every file of the breach and is under the active key (or the
  breach's first complete set) becomes the served one, and the others are dropped, in that
  same transaction. Until then the served set keeps serving, and a set that covers only some
  files is reported (``pending``) with what is missing. All-or-nothing with the ingest.

Limits, stated plainly: a set gets b once (a set being filled keeps the served set's b); later
files are tagged at that b (their buckets may then exceed the target; the server pads to the
largest). A set under a new key replaces the served one only once every file of the breach was
given again; a file that is gone for good keeps the breach on its old key (or unchecked).
Staged Parquet (keyed tags, pseudonyms and ``stage_bits``-bit buckets) lives in the ingest's
temporary directory and is removed with it.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
_SCHEMA = pa.schema([("tag", pa.binary()), ("bucket", pa.uint32()), ("pseudonym", pa.binary())])


@dataclass(frozen=True)
class TagPlan:
    """Picklable: which key, which staging resolution, where the staged Parquet goes."""

    key_id: str
    stage_bits: int
    out_dir: Path
    keyring_path: Path


@dataclass(frozen=True)
class Plans:
    """What one ingest call tags: ``new`` (its new files; None when it does not tag them) and
    ``retag`` (the re-tag pass's plan, None when there is none) with the digests of the files
    the pass reads again. When both are under one key they are the same plan."""

    new: TagPlan | None
    retag: TagPlan | None = None
    retag_digests: frozenset[str] = frozenset()


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
    """The tagging of this ingest's new files, or None (the scale-out runner's entry)."""
    return plan_call(
        conn,
        keyring,
        keyring_path,
        breach_id,
        enabled=enabled,
        new_bytes=nbytes,
        out_dir=out_dir,
    ).new


def plan_call(
    conn: duckdb.DuckDBPyConnection,
    keyring: Keyring,
    keyring_path: Path,
    breach_id: str,
    *,
    enabled: bool,
    new_bytes: int,
    out_dir: Path,
    new_digests: frozenset[str] = frozenset(),
    known: dict[str, int] | None = None,
) -> Plans:
    """What this call tags. New files: a breach that already has tags is always tagged (new
    files would otherwise be missed by the check), under its served key, else the active one.
    Re-tag (only when ``enabled`` and ``known`` is given: digest -> bytes of the files given
    that the breach already holds): those not yet tagged under the active key, and, when the
    active key is not the new files' key, the new files too (read twice)."""
    served = conn.execute(
        "SELECT oprf_key_id, bucket_bits FROM selfcheck_breaches WHERE breach_id = ?",
        [breach_id],
    ).fetchone()
    has_sets = conn.execute(
        "SELECT count(*) FROM selfcheck_sets WHERE breach_id = ?", [breach_id]
    ).fetchone()
    tagged = served is not None or bool(has_sets and int(has_sets[0]))
    if not tagged and not enabled:
        return Plans(None)
    active = keyring.ensure_oprf()
    new_key = str(served[0]) if served else active
    keyring.oprf_server(new_key)  # fails early (BadInput) if the key is gone
    redo: set[str] = set()
    if enabled and known:
        done = {
            str(r[0])
            for r in conn.execute(
                "SELECT content_sha256 FROM selfcheck_files"
                " WHERE breach_id = ? AND oprf_key_id = ?",
                [breach_id, active],
            ).fetchall()
        }
        redo = set(known) - done
        if redo and active != new_key:
            redo |= set(new_digests)
    retag_bytes = sum((known or {}).get(d, 0) for d in redo) + (
        new_bytes if redo & new_digests else 0
    )
    row = conn.execute("SELECT distinct_numbers FROM breaches WHERE id = ?", [breach_id]).fetchone()
    rows = max(1, (new_bytes + retag_bytes) // 8, int(row[0]) if row else 0)
    stage = math.ceil(math.log2(max(1.0, 8 * rows / TARGET_BUCKET)))
    bits = conn.execute(
        "SELECT max(bucket_bits) FROM selfcheck_sets WHERE breach_id = ?", [breach_id]
    ).fetchone()
    floor = max(int(served[1]) if served else 0, int(bits[0]) if bits and bits[0] else 0)
    stage = min(MAX_STAGE_BITS, max(stage, floor))
    (out_dir / "selfcheck").mkdir(parents=True, exist_ok=True)
    new = TagPlan(new_key, stage, out_dir / "selfcheck", keyring_path)
    if not redo:
        return Plans(new)
    retag = (
        new if active == new_key else TagPlan(active, stage, out_dir / "selfcheck", keyring_path)
    )
    return Plans(new, retag, frozenset(redo))


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

    def add(
        self,
        e164: pa.Array | pa.ChunkedArray | Iterable[str],
        pseudonyms: pa.Array | pa.ChunkedArray | list[bytes],
    ) -> None:
        """Queue E.164 values (an Arrow string array or strings) for tagging, with their
        pseudonyms in the same order."""
        if isinstance(e164, pa.ChunkedArray | pa.Array):
            values = e164.cast(pa.binary()).to_pylist()
        else:
            values = [v.encode() for v in e164]
        if isinstance(pseudonyms, pa.ChunkedArray | pa.Array):
            digests = pseudonyms.cast(pa.binary()).to_pylist()
        else:
            digests = list(pseudonyms)
        if len(digests) != len(values):
            raise ValueError("one pseudonym per value")
        for start in range(0, len(values), _CHUNK):
            end = start + _CHUNK
            self._pending.append(
                self._pool.submit(self._tag, values[start:end], digests[start:end])
            )
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

    def _tag(self, values: list[bytes], digests: list[bytes]) -> pa.Table:
        prefix, shift = self._bucket_prefix, self._shift
        tags = self._server.tags(values)
        buckets = [prefix(v) >> shift if shift < 32 else 0 for v in values]
        return pa.table(
            {
                "tag": pa.array(tags, pa.binary()),
                "bucket": pa.array(buckets, pa.uint32()),
                "pseudonym": pa.array(digests, pa.binary()),
            }
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


@dataclass
class Tagged:
    """One key's staged tags of this call: the plan, its Parquet files, the file digests (of
    the breach) they cover."""

    plan: TagPlan
    files: list[Path] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)


def merge(
    conn: duckdb.DuckDBPyConnection,
    work: list[Tagged],
    breach_id: str,
    *,
    prefer: str | None = None,
    retagged: int = 0,
) -> dict[str, Any] | None:
    """Store this call's staged tags (inside the caller's transaction) and settle which set
    is served; the breach's self-check counts, or None when this call does not tag.

    ``prefer``: the key whose complete set takes over the served one (the active key)."""
    if not work:
        return None
    outside = sum(_merge_set(conn, w, breach_id) for w in work)
    report = _settle(conn, breach_id, prefer or work[-1].plan.key_id)
    report["retagged_files"] = retagged
    report["tags_outside_breach"] = outside
    return report


def _merge_set(conn: duckdb.DuckDBPyConnection, work: Tagged, breach_id: str) -> int:
    """Add one key's staged tags to its set; how many were dropped as not in the breach."""
    stage, kid = work.plan.stage_bits, work.plan.key_id
    if work.files:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE bn_tags AS SELECT tag, any_value(bucket) AS bucket,"
            " any_value(pseudonym) AS pseudonym FROM read_parquet(?) GROUP BY tag",
            [[str(p) for p in work.files]],
        )
    else:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE bn_tags (tag BLOB, bucket UINTEGER, pseudonym BLOB)"
        )
    staged = _one(conn, "SELECT count(*) FROM bn_tags")
    conn.execute(
        """DELETE FROM bn_tags WHERE NOT EXISTS (
               SELECT 1 FROM breach_pseudonyms b
               WHERE b.breach_id = ? AND b.pseudonym = bn_tags.pseudonym)""",
        [breach_id],
    )
    kept = _one(conn, "SELECT count(*) FROM bn_tags")
    row = conn.execute(
        """SELECT bucket_bits FROM selfcheck_sets WHERE breach_id = ? AND oprf_key_id = ?
           UNION ALL SELECT bucket_bits FROM selfcheck_breaches WHERE breach_id = ?""",
        [breach_id, kid, breach_id],
    ).fetchone()
    if row is None:
        counts = conn.execute("SELECT bucket, count(*) FROM bn_tags GROUP BY bucket").fetchall()
        bits = choose_bits({int(b): int(c) for b, c in counts}, stage, TARGET_BUCKET)
        distinct = _one(conn, "SELECT distinct_numbers FROM breaches WHERE id = ?", breach_id)
        if distinct > kept:  # only some of the breach's files: size b for all of its numbers
            while bits < stage and distinct > (TARGET_BUCKET // 2) << bits:
                bits += 1
    else:
        bits = int(row[0])
    conn.execute(
        "INSERT INTO selfcheck_sets (breach_id, oprf_key_id, bucket_bits) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [breach_id, kid, bits],
    )
    conn.execute(
        f"""INSERT INTO selfcheck_tags (breach_id, oprf_key_id, bucket, tag)
            SELECT $bid, $kid, (n.bucket >> {stage - bits})::UINTEGER, n.tag FROM bn_tags AS n
            WHERE NOT EXISTS (SELECT 1 FROM selfcheck_tags t
                              WHERE t.breach_id = $bid AND t.oprf_key_id = $kid
                                AND t.tag = n.tag)""",
        {"bid": breach_id, "kid": kid},
    )
    conn.execute("DROP TABLE bn_tags")
    if work.digests:
        conn.execute(
            "INSERT INTO selfcheck_files (breach_id, content_sha256, oprf_key_id)"
            " SELECT ?, unnest(?), ? ON CONFLICT DO NOTHING",
            [breach_id, sorted(work.digests), kid],
        )
    return staged - kept


def _settle(conn: duckdb.DuckDBPyConnection, breach_id: str, prefer: str) -> dict[str, Any]:
    """Which set is served after this call; the report's ``self_check`` fields."""
    files = _one(conn, "SELECT count(*) FROM breach_files WHERE breach_id = ?", breach_id)
    sets = {
        str(kid): (int(bits), int(covered))
        for kid, bits, covered in conn.execute(
            """SELECT s.oprf_key_id, s.bucket_bits,
                      (SELECT count(*) FROM selfcheck_files f JOIN breach_files b
                         ON b.breach_id = f.breach_id AND b.content_sha256 = f.content_sha256
                       WHERE f.breach_id = s.breach_id AND f.oprf_key_id = s.oprf_key_id)
               FROM selfcheck_sets s WHERE s.breach_id = ? ORDER BY s.oprf_key_id""",
            [breach_id],
        ).fetchall()
    }
    row = conn.execute(
        "SELECT oprf_key_id FROM selfcheck_breaches WHERE breach_id = ?", [breach_id]
    ).fetchone()
    served = str(row[0]) if row else None
    complete = [kid for kid, (_, covered) in sets.items() if covered >= files]
    take = None
    if prefer in complete and prefer != served:
        take = prefer
    elif served is None and complete:
        take = complete[-1]
    if take is not None:
        # the new set replaces the served one (and any other) in the caller's transaction
        for table in ("selfcheck_tags", "selfcheck_files", "selfcheck_sets"):
            conn.execute(
                f"DELETE FROM {table} WHERE breach_id = ? AND oprf_key_id <> ?", [breach_id, take]
            )
        served = take
        sets = {take: sets[take]}
    out: dict[str, Any]
    if served is not None:
        bits = (
            sets[served][0]
            if served in sets
            else _one(
                conn, "SELECT bucket_bits FROM selfcheck_breaches WHERE breach_id = ?", breach_id
            )
        )
        stats = conn.execute(
            """SELECT coalesce(sum(c), 0), coalesce(max(c), 0) FROM (
                   SELECT count(*) AS c FROM selfcheck_tags
                   WHERE breach_id = ? AND oprf_key_id = ? GROUP BY bucket)""",
            [breach_id, served],
        ).fetchone()
        tags, largest = (int(stats[0]), int(stats[1])) if stats else (0, 0)
        conn.execute(
            """INSERT OR REPLACE INTO selfcheck_breaches
                   (breach_id, oprf_key_id, bucket_bits, max_bucket, tags, kinds, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, now())""",
            [breach_id, served, bits, largest, tags, _exposed_kinds(conn, breach_id)],
        )
        out = {"key_id": served, "bucket_bits": bits, "max_bucket": largest, "tags": tags}
    else:
        kid = prefer if prefer in sets else next(iter(sets))
        out = {"key_id": kid, "bucket_bits": sets[kid][0], "max_bucket": 0, "tags": 0}
    pending = [kid for kid in sets if kid != served]
    wait = prefer if prefer in pending else (pending[-1] if pending else None)
    out["serving"] = served is not None
    out["files"] = files
    out["files_tagged"] = sets[served][1] if served in sets else 0
    out["pending"] = (
        None if wait is None else {"key_id": wait, "files_tagged": sets[wait][1], "files": files}
    )
    return out


def _one(conn: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> int:
    row = conn.execute(sql, list(params)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


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
