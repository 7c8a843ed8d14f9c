"""The default runner's fast path for whole plain ``facebook-2021`` files (no Parquet, no Arrow
line reader).

DuckDB reads the file itself (``read_csv``, parallel, one column, Latin-1 like the Arrow reader) in
its own in-memory connection and streams back, per row, only the kinds, the E.164 string or the
reason, and the raw phone value of the rare rows the SQL cannot decide. The HMAC is computed over
each Arrow batch at once (:meth:`Pseudonymizer.pseudonyms_arrow`: C, SHA-NI when the CPU has it,
the GIL released) while DuckDB's threads (one more than the cores) read and normalise the next
rows, and the pseudonyms go straight into the store connection's temp table ``bn_acc`` (pseudonyms
and kinds only), deduplicated later by the merge's single ``GROUP BY``. No plaintext is
materialised: E.164 values exist only in the streaming pipeline and in the Python batch being
hashed.

Any DuckDB error (a line format DuckDB's CSV reader does not accept, such as mixed line endings)
raises :class:`Fallback` after the file's rows are removed from ``bn_acc``; the caller then runs
the file through :func:`~breach_notify.ingest.arrow_reader.process_shard` instead, whose result is
the reference.
"""

from __future__ import annotations

import array
import dataclasses
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from breach_notify.crypto import Pseudonymizer
from breach_notify.crypto.pseudonymizer import bucket_prefixes
from breach_notify.ingest import formats, rows
from breach_notify.ingest.arrow_reader import (
    IngestSpec,
    ShardResult,
    _connect,
    chunk_bytes,
    reference,
)
from breach_notify.ingest.normalize import phone_sql
from breach_notify.ingest.selfcheck import ShardTagger

ACC = "bn_acc"
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


def limit_bytes(memory_limit: str) -> int | None:
    """The memory limit in bytes (``None`` when it does not parse)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", memory_limit.upper())
    if not m:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)]
    return int(float(m.group(1)) * scale)


@contextmanager
def shared_limit(store: duckdb.DuckDBPyConnection, spec: IngestSpec) -> Iterator[IngestSpec]:
    """While files are read, the reading connection gets a quarter of the memory limit and the
    store connection (``bn_acc``, which spills) the rest, so the two stay within the limit;
    yields the spec for the reading connection."""
    total = limit_bytes(spec.memory_limit)
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
    """Whole plain facebook-2021 files (all their byte ranges together)."""
    first = shards[0]
    return (
        spec.fmt == "facebook-2021"
        and first.member is None
        and first.path.suffix.lower() not in (".gz", ".zip")
        and sum(s.nbytes for s in shards) == first.size
    )


def create_acc(store: duckdb.DuckDBPyConnection) -> None:
    """The temp table of (file, pseudonym, kinds, bucket prefix) rows; connection-local,
    pseudonyms only."""
    store.execute(
        f"CREATE OR REPLACE TEMP TABLE {ACC}"
        " (f INTEGER, pseudonym BLOB, kinds USMALLINT, prefix UINTEGER)"
    )


def query(encoding: str = "utf-8", buffer: int = 16 << 20, source: str | None = None) -> str:
    """Per row: ``kinds``, ``e164``, ``reason`` and, for rows the SQL cannot decide,
    ``raw`` (the phone value, handed to ``phonenumbers``). ``source`` replaces the file reader
    by a SELECT of ``line`` values."""
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
    store: duckdb.DuckDBPyConnection,
    index: int,
    shards: list[formats.Shard],
    spec: IngestSpec,
    p: Pseudonymizer,
    tick: Callable[[int], None] = lambda n: None,
) -> ShardResult:
    """Normalise and pseudonymise one whole file into ``bn_acc`` (rows tagged ``index``).

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
            return _attempt(store, index, shard, spec, p, encoding, per_row, tick)
        except (duckdb.Error, pa.ArrowException, OSError, _Unreadable):
            store.execute(f"DELETE FROM {ACC} WHERE f = $f", {"f": index})
    raise Fallback(shard.label)


def _attempt(
    store: duckdb.DuckDBPyConnection,
    index: int,
    shard: formats.Shard,
    spec: IngestSpec,
    p: Pseudonymizer,
    encoding: str,
    per_row: int,
    tick: Callable[[int], None],
) -> ShardResult:
    result = ShardResult(shard, p.key_id)
    reasons: Counter[str] = Counter()
    done = 0
    tagger = ShardTagger.maybe(spec.self_check, f"file-{index:05d}")
    con = _connect(spec)
    if not spec.threads:  # one more than the cores: they stay busy while Python hashes
        con.execute(f"SET threads = {(os.cpu_count() or 1) + 1}")
    try:
        # the CSV reader's buffer, small enough for small memory limits (lines up to 2 MB)
        limit = limit_bytes(spec.memory_limit) or (1 << 30)
        sql = query(encoding, min(16 << 20, max(4 << 20, limit // 8)))
        buffer = chunk_bytes(spec.memory_limit)
        # DuckDB's threads run ahead while Python hashes (default buffer ~1 MB: they stall)
        con.execute(f"SET streaming_buffer_size = '{buffer >> 20}MiB'")
        batch_rows = max(1 << 16, min(_BATCH, buffer // 64))
        reader = con.sql(sql, params={"path": str(shard.path)}).to_arrow_reader(batch_rows)
        for batch in reader:
            _consume(batch, store, index, p, spec, encoding, result, reasons, tagger)
            step = min(shard.size - done, batch.num_rows * per_row)
            if step > 0:
                done += step
                tick(step)
        if encoding == "utf-8":
            lines = _rejected_lines(con, shard, result.rows_read)
            if lines:
                con.register("bn_reread", pa.table({"line": pa.array(lines, pa.string())}))
                again = con.sql(query(source="SELECT line FROM bn_reread")).to_arrow_table()
                for batch in again.to_batches():
                    _consume(batch, store, index, p, spec, "latin-1", result, reasons, tagger)
                con.unregister("bn_reread")
        result.tag_files = tagger.close() if tagger else []
    finally:
        con.close()
        if tagger:
            tagger.discard()  # unless closed: a failed attempt leaves no tags
    tick(shard.size - done)
    result.header_lines = reasons.pop("_header", 0)
    blank = reasons.pop("_blank", 0)
    result.rows_read -= result.header_lines + blank
    result.invalid_by_reason = dict(reasons)
    return result


class _Unreadable(Exception):
    """DuckDB skipped lines this module cannot account for: read the file another way."""


def _consume(
    batch: pa.RecordBatch,
    store: duckdb.DuckDBPyConnection,
    index: int,
    p: Pseudonymizer,
    spec: IngestSpec,
    encoding: str,
    result: ShardResult,
    reasons: Counter[str],
    tagger: ShardTagger | None = None,
) -> None:
    """Count one batch's verdicts and append its pseudonyms to ``bn_acc`` (rows tagged
    ``index``); ``encoding`` is how its text was decoded (for the ``phonenumbers`` rows)."""
    n = batch.num_rows
    result.rows_read += n
    reason = batch.column("reason")
    if reason.null_count < n:
        for item in pc.value_counts(reason.drop_null()).to_pylist():
            reasons[item["values"]] += item["counts"]
    pseudonyms: list[pa.Array] = []
    prefixes: list[pa.Array] = []
    kinds: list[pa.Array] = []
    e164 = batch.column("e164")
    if e164.null_count < n:
        keep = pc.is_valid(e164)
        fixed = p.pseudonyms_arrow(e164.filter(keep))
        if tagger:
            tagger.add(e164.filter(keep))
        pseudonyms.append(_variable_width(fixed))
        prefixes.append(bucket_prefixes(fixed))
        kinds.append(batch.column("kinds").filter(keep))
        result.sql_decided += len(pseudonyms[-1])
    raw = batch.column("raw")
    if raw.null_count < n:
        extra = _python_decided(raw, batch.column("kinds"), encoding, spec, p, reasons)
        result.python_decided += extra.undecided
        if tagger and extra.numbers:
            tagger.add(extra.numbers)
        if extra.digests:
            fixed = pa.array(extra.digests, pa.binary(32))
            pseudonyms.append(_variable_width(fixed))
            prefixes.append(bucket_prefixes(fixed))
            kinds.append(pa.array(extra.kinds, pa.uint16()))
    if pseudonyms:
        table = pa.table(
            {
                "pseudonym": pa.concat_arrays(pseudonyms),
                "kinds": pa.concat_arrays([k.cast(pa.uint16()) for k in kinds]),
                "prefix": pa.concat_arrays(prefixes),
            }
        )
        result.valid_rows += table.num_rows
        store.register("bn_batch", table)
        store.execute(
            f"INSERT INTO {ACC} SELECT $f, pseudonym, kinds, prefix FROM bn_batch",
            {"f": index},
        )
        store.unregister("bn_batch")


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


def _variable_width(fixed: pa.Array) -> pa.Array:
    """The same 32-byte values as a plain ``binary`` array, sharing the data buffer: DuckDB
    takes those in measurably faster than ``binary(32)``."""
    n = len(fixed)
    if fixed.offset or n == 0:
        return fixed.cast(pa.binary())
    offsets = _offsets(n)
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, fixed.buffers()[1]])


def _offsets(n: int) -> pa.Buffer:
    """int32 offsets 0, 32, …, 32 n (cached: the batches have the same few sizes)."""
    global _OFFSETS
    if len(_OFFSETS) < 4 * (n + 1):
        _OFFSETS = pa.py_buffer(array.array("i", range(0, 32 * (2 * n + 1), 32)).tobytes())
    return _OFFSETS.slice(0, 4 * (n + 1))


_OFFSETS = pa.py_buffer(b"")


@dataclasses.dataclass
class _Decided:
    undecided: int = 0
    digests: list[bytes] = dataclasses.field(default_factory=list)
    kinds: list[int] = dataclasses.field(default_factory=list)
    numbers: list[str] = dataclasses.field(default_factory=list)  # E.164, for the self-check


def _python_decided(
    raw: pa.Array,
    kinds: pa.Array,
    encoding: str,
    spec: IngestSpec,
    p: Pseudonymizer,
    reasons: Counter[str],
) -> _Decided:
    """The rows the SQL could not decide, through ``phonenumbers`` (reasons counted in place)."""
    keep = pc.is_valid(raw)
    values = raw.filter(keep).to_pylist()
    if encoding == "utf-8":  # the Latin-1 reading of the same bytes, as the Arrow path sees them
        values = [v.encode("utf-8").decode("latin-1") for v in values]
    out = _Decided(undecided=len(values))
    for value, k in zip(values, kinds.filter(keep).to_pylist(), strict=True):
        found, why = reference(value, spec.fmt, None)
        if found is None:
            reasons[why] += 1
        else:
            out.digests.append(p.pseudonym(found))
            out.kinds.append(int(k))
            if spec.self_check:
                out.numbers.append(found)
    return out
