"""The default runner's fast path for whole plain ``facebook-2021`` files (no Parquet, no Arrow
line reader).

DuckDB reads the file itself (``read_csv``, parallel, one column, Latin-1 like the Arrow reader)
in its own in-memory connection and streams back, per row, only the kinds, the E.164 string or
the reason, and the raw phone value of the rare rows the SQL cannot decide. The
:class:`~.tally.Tally` (shared with the Arrow path) counts the verdicts and hashes each Arrow
batch at once (:meth:`Pseudonymizer.pseudonyms_arrow`: C, SHA-NI when the CPU has it, the GIL
released) while DuckDB's threads (one more than the cores) read and normalise the next rows, and
the pseudonyms go straight into the store connection's temp table ``bn_acc``
(:class:`~.sinks.AccSink`: pseudonyms and kinds only), deduplicated later by the merge's single
``GROUP BY``. One reading connection and one query text serve a whole ingest. No plaintext is
materialised: E.164 values exist only in the streaming pipeline and in the Python batch being
hashed.

Any DuckDB error (a line format DuckDB's CSV reader does not accept, such as mixed line endings)
raises :class:`Fallback` after the file's rows are removed from ``bn_acc``; the caller then runs
the file through :func:`~breach_notify.ingest.arrow_reader.read_shards` instead, whose result is
the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from breach_notify.crypto import Pseudonymizer
from breach_notify.ingest import formats, rows
from breach_notify.ingest.arrow_reader import chunk_bytes, connect
from breach_notify.ingest.normalize import phone_sql
from breach_notify.ingest.options import IngestSpec, memory_bytes
from breach_notify.ingest.selfcheck import ShardTagger
from breach_notify.ingest.sinks import RetrySink
from breach_notify.ingest.tally import ShardResult, Tally

_BATCH = 1 << 20
_SCAN_BLOCK = 16 << 20
_SOURCE = (
    "SELECT coalesce(line, '') AS line FROM read_csv($path, columns = {'line': 'VARCHAR'},"
    " delim = '\\x1f', quote = '', escape = '', header = false, auto_detect = false,"
    " encoding = '{encoding}', buffer_size = {buffer}{rejects})"
)
#: UTF-8 reading skips a line DuckDB cannot decode and notes its number in ``bn_rejects``.
_REJECTS = (
    ", ignore_errors = true, store_rejects = true, rejects_table = 'bn_rejects',"
    " rejects_scan = 'bn_rejects_scan'"
)
#: Rejected lines that are read again (bytes as Latin-1) through the same SQL; any other error
#: sends the file to the Arrow path.
_REREAD = ("INVALID ENCODING", "TOO MANY COLUMNS")


@contextmanager
def shared_limit(store: duckdb.DuckDBPyConnection, spec: IngestSpec) -> Iterator[IngestSpec]:
    """While files are read, the reading connection gets a quarter of the memory limit and the
    store connection (``bn_acc``, which spills) the rest, so the two stay within the limit;
    yields the spec for the reading connection."""
    total = memory_bytes(spec.memory_limit)
    if total is None:
        yield spec
        return
    reader = max(total // 4, 1)
    store.execute(f"SET memory_limit = '{total - reader}B'")
    try:
        yield dataclasses.replace(spec, memory_limit=f"{reader}B")
    finally:
        store.execute(f"SET memory_limit = '{total}B'")


class Fallback(Exception):
    """DuckDB's reader or the query failed on this file: use the Arrow path."""


def eligible(spec: IngestSpec, shards: list[formats.Shard]) -> bool:
    """Whole plain facebook-2021 files (all their byte ranges together) without a line longer
    than the limit: DuckDB's reader can drop such a line without a trace, so those files go
    the Arrow way, which counts each one (``line_too_long``)."""
    first = shards[0]
    return (
        spec.options.fmt == "facebook-2021"
        and first.member is None
        and first.path.suffix.lower() not in (".gz", ".zip")
        and sum(s.nbytes for s in shards) == first.size
        and first.line_bound <= spec.limits.max_line_bytes
    )


@contextmanager
def reading(store: duckdb.DuckDBPyConnection, spec: IngestSpec) -> Iterator[Reader]:
    """One reading connection for a whole ingest, within its share of the memory limit."""
    with shared_limit(store, spec) as share:
        con = connect(share)
        try:
            if not share.threads:  # one more than the cores: they stay busy while Python hashes
                con.execute(f"SET threads = {(os.cpu_count() or 1) + 1}")
            # DuckDB's threads run ahead while Python hashes (default buffer ~1 MB: they stall)
            con.execute(f"SET streaming_buffer_size = '{chunk_bytes(share.memory_limit) >> 20}MiB'")
            yield Reader(con, share)
        finally:
            con.close()


@dataclasses.dataclass
class Reader:
    """The reading connection and the spec it reads under."""

    con: duckdb.DuckDBPyConnection
    spec: IngestSpec


@functools.lru_cache(maxsize=8)
def query(encoding: str = "utf-8", buffer: int = 16 << 20, source: str | None = None) -> str:
    """Per row: ``kinds``, ``e164``, ``reason`` and, for rows the SQL cannot decide,
    ``raw`` (the phone value, handed to ``phonenumbers``). ``source`` replaces the file reader
    by a SELECT of ``line`` values. Built once per ingest (cached)."""
    norm = phone_sql("bn_rows", "bn_phone", None, plus=True)
    if source is None:
        rejects = _REJECTS if encoding == "utf-8" else ""
        source = (
            _SOURCE.replace("{encoding}", encoding)
            .replace("{buffer}", str(buffer))
            .replace("{rejects}", rejects)
        )
    return f"""
    WITH bn_src AS ({source}),
    bn_rows AS (SELECT *, CASE WHEN pre IS NULL THEN phone END AS bn_phone
                FROM ({rows.facebook_sql(unit_separator_is_bad=True)})),
    bn_norm AS ({norm})
    SELECT kinds, e164, coalesce(pre, reason) AS reason,
        CASE WHEN pre IS NULL AND e164 IS NULL AND reason IS NULL THEN phone END AS raw
    FROM bn_norm
    """


def process_file(
    reader: Reader,
    sink: RetrySink,
    shards: list[formats.Shard],
    p: Pseudonymizer,
    tick: Callable[[int], None] = lambda n: None,
) -> ShardResult:
    """Normalise and pseudonymise one whole file into ``bn_acc`` (rows tagged with its first
    shard's ``index``).

    Read as UTF-8 (DuckDB's fastest decoder); a value only ``phonenumbers`` can decide is
    turned back into the Latin-1 reading of its bytes, so every verdict equals the Arrow path's.
    Lines DuckDB cannot decode (stray bytes in names, common in real dumps) or that hold the
    byte 0x1F are skipped by the reader, found again by number and run through the same SQL as
    their Latin-1 reading, so the file stays on this path. A file with a byte-order mark (which
    UTF-8 reading would drop), or whose skipped lines do not add up, is read as Latin-1
    instead; raises :class:`Fallback` when DuckDB refuses it either way.
    """
    shard = shards[0]
    sample = formats.head(shard)
    formats.check_not_binary(shard, sample)
    per_row = max(1, len(sample) // max(sample.count(b"\n"), 1))
    encodings = ["latin-1"] if sample.startswith(b"\xef\xbb\xbf") else ["utf-8", "latin-1"]
    for encoding in encodings:
        try:
            return _attempt(reader, sink, shard, p, encoding, per_row, tick)
        except (duckdb.Error, pa.ArrowException, OSError, _Unreadable):
            sink.forget(shard.index)
    raise Fallback(shard.label)


def _attempt(
    reader: Reader,
    sink: RetrySink,
    shard: formats.Shard,
    p: Pseudonymizer,
    encoding: str,
    per_row: int,
    tick: Callable[[int], None],
) -> ShardResult:
    con, spec = reader.con, reader.spec
    tagger = ShardTagger.maybe(spec.self_check, f"file-{shard.index:05d}")
    try:
        result = _read(con, spec, sink, shard, p, encoding, per_row, tick, tagger)
        result.tag_files = tagger.close() if tagger else []
    finally:
        if tagger:
            tagger.discard()  # unless closed: a failed attempt leaves no tags
    return result


def _read(
    con: duckdb.DuckDBPyConnection,
    spec: IngestSpec,
    sink: RetrySink,
    shard: formats.Shard,
    p: Pseudonymizer,
    encoding: str,
    per_row: int,
    tick: Callable[[int], None],
    tagger: ShardTagger | None,
) -> ShardResult:
    """One reading of the file in ``encoding`` into ``sink`` (and ``tagger``)."""
    tally = Tally(p, plus=True, region=None, tagger=tagger)
    f = shard.index
    done = 0
    con.execute("DROP TABLE IF EXISTS bn_rejects")
    con.execute("DROP TABLE IF EXISTS bn_rejects_scan")
    # the CSV reader's buffer: small enough for small memory limits, and twice the longest line
    limit = memory_bytes(spec.memory_limit) or (1 << 30)
    buffer = max(min(16 << 20, max(4 << 20, limit // 8)), 2 * shard.line_bound + (1 << 20))
    sql = query(encoding, buffer)
    batch_rows = max(1 << 16, min(_BATCH, chunk_bytes(spec.memory_limit) // 64))
    stream = con.sql(sql, params={"path": str(shard.path)}).to_arrow_reader(batch_rows)
    emitted = 0
    for batch in stream:
        emitted += batch.num_rows
        for out in tally.add(batch, f, raw_utf8=encoding == "utf-8"):
            sink.write(out)
        step = min(shard.size - done, batch.num_rows * per_row)
        if step > 0:
            done += step
            tick(step)
    if encoding == "utf-8":
        lines = _rejected_lines(con, shard, emitted)
        if lines:
            con.register("bn_reread", pa.table({"line": pa.array(lines, pa.string())}))
            try:
                again = con.sql(query(source="SELECT line FROM bn_reread")).to_arrow_table()
            finally:
                con.unregister("bn_reread")
            for out in tally.add(again, f):
                sink.write(out)
    tick(shard.size - done)
    return tally.result(f, shard, p.key_id)


class _Unreadable(Exception):
    """DuckDB skipped lines this module cannot account for: read the file another way."""


def _rejected_lines(
    con: duckdb.DuckDBPyConnection, shard: formats.Shard, emitted: int
) -> list[str]:
    """The lines DuckDB's UTF-8 reader skipped, as the Latin-1 reading of their bytes (what the
    Arrow path sees), without their line terminator.

    DuckDB records a skipped line's number (its byte position is not reliable across line
    endings); one pass over the file finds those lines and counts all lines, which must equal
    the rows DuckDB emitted plus the skipped ones. The reject tables (which quote the lines)
    are dropped at once. Raises :class:`_Unreadable` for any other kind of skip or a mismatch.
    """
    try:
        found = con.execute(
            "SELECT line, list(DISTINCT error_type::VARCHAR) FROM bn_rejects GROUP BY line"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS bn_rejects")
        con.execute("DROP TABLE IF EXISTS bn_rejects_scan")
    if not found:
        return []
    if any(set(kinds) - set(_REREAD) for _, kinds in found):
        raise _Unreadable(shard.label)
    wanted = sorted(int(line) for line, _ in found)
    lines, total = _lines_at(shard.path, wanted)
    if len(lines) != len(wanted) or total != emitted + len(wanted):
        raise _Unreadable(shard.label)
    return [line.removesuffix(b"\r").decode("latin-1") for line in lines]


def _lines_at(path: Path, numbers: list[int]) -> tuple[list[bytes], int]:
    """The lines with these 1-based numbers (sorted, without ``\\n``) and the file's line count,
    in one pass of 16 MiB blocks, newlines counted in C and no block copied."""
    out: list[bytes] = []
    pending = iter(numbers)
    target = next(pending, None)
    line = 1  # the line in progress where the next block starts
    partial = b""  # its bytes so far, kept only when it is wanted
    tail = 0  # how many bytes of it were read
    with path.open("rb") as fh:
        while chunk := fh.read(_SCAN_BLOCK):
            k = chunk.count(b"\n")
            pos, cur = -1, line  # -1: line ``line`` began before this block
            while target is not None and target < line + k:
                if target == line:
                    out.append(partial + chunk[: chunk.index(b"\n")])
                else:
                    if pos < 0:
                        pos, cur = chunk.index(b"\n") + 1, line + 1
                    pos, cur = _seek_line(chunk, pos, cur, target)
                    out.append(chunk[pos : chunk.index(b"\n", pos)])
                target = next(pending, None)
            if k:
                start = chunk.rfind(b"\n") + 1
                line += k
                partial = chunk[start:] if target == line else b""
                tail = len(chunk) - start
            else:
                partial = partial + chunk if target == line else b""
                tail += len(chunk)
    if tail and target == line:
        out.append(partial)
    return out, line - 1 + (1 if tail else 0)


def _seek_line(block: bytes, pos: int, line: int, target: int) -> tuple[int, int]:
    """From ``pos`` (the start of line ``line``) to the start of line ``target``: whole 4 KiB
    pieces skipped by counting their newlines, then line by line within one piece."""
    while line < target:
        end = min(pos + 4096, len(block))
        k = block.count(b"\n", pos, end)
        if k and line + k <= target:
            pos, line = block.rfind(b"\n", pos, end) + 1, line + k
            continue
        while line < target:
            pos, line = block.index(b"\n", pos) + 1, line + 1
    return pos, line
