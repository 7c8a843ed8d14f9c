"""One shard → hash-partitioned Parquet of (pseudonym, kinds) plus counts. No personal data out.

A shard runs in its own in-memory DuckDB. The Arrow reader's lines are cut into in-memory
chunks (DuckDB scans those with all threads); per chunk one query runs the row SQL and the
normalisation SQL. Valid E.164 strings come back in memory and a second thread turns them into
pseudonyms (HMAC from precomputed SHA-256 states; DESIGN §5's SQL HMAC is the tested
alternative, ``hmac_in_sql=True``) while DuckDB works on the next chunk. Rows the SQL cannot
decide come back with their raw phone value and are settled by ``phonenumbers``. Nothing but
pseudonyms, kinds and counts is written.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from breach_notify.crypto import Keyring, Pseudonymizer
from breach_notify.crypto.pseudonymizer import bucket_prefixes
from breach_notify.errors import BadInput
from breach_notify.ingest import formats, rows
from breach_notify.ingest.normalize import phone_sql
from breach_notify.ingest.selfcheck import ShardTagger, TagPlan
from breach_notify.numbers import InvalidNumber, parse_number

PARTITIONS = 16
_CHUNK_BYTES = 192 << 20
_SCHEMA = pa.schema([("pseudonym", pa.binary()), ("kinds", pa.uint16())])
#: Reasons that mean "this line is not in the declared format" (for the wrong-format check).
UNPARSABLE = ("truncated_line", "bad_line", "not_a_number", "empty")


@dataclass(frozen=True)
class IngestSpec:
    """What to ingest and how; picklable, no keys, no personal data."""

    breach_id: str
    fmt: str = "facebook-2021"
    title: str | None = None
    phone_column: str | None = None
    default_region: str | None = None
    k: int | None = None
    memory_limit: str = "1GB"
    threads: int | None = None
    tmp_dir: Path | None = None
    self_check: TagPlan | None = None  # tag for the private self-check (ingest/selfcheck.py)


@dataclass
class ShardResult:
    """Counts and Parquet files of one shard (no personal data)."""

    shard: formats.Shard
    key_id: str
    rows_read: int = 0
    valid_rows: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    header_lines: int = 0
    files: list[Path] = field(default_factory=list)
    sql_decided: int = 0
    python_decided: int = 0
    tag_files: list[Path] = field(default_factory=list)  # self-check tags (staged Parquet)


def reference(raw: str, fmt: str, region: str | None) -> tuple[str | None, str]:
    """The reference verdict of one phone value: ``(e164, "")`` or ``(None, reason)``."""
    try:
        if fmt == "facebook-2021":
            return parse_number("+" + raw, None).value, ""
        return parse_number(raw, region).value, ""
    except InvalidNumber as exc:
        return None, exc.reason


def _connect(spec: IngestSpec) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": spec.memory_limit,
        "preserve_insertion_order": False,
    }
    if spec.threads:
        config["threads"] = spec.threads
    if spec.tmp_dir is not None:
        config["temp_directory"] = str(spec.tmp_dir)
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")
    con.execute("SET enable_progress_bar_print = false")
    return con


def _phone_column(shard: formats.Shard, layout: formats.CsvLayout, wanted: str | None) -> int:
    names = [c.lower() for c in layout.columns]
    if wanted is not None:
        if wanted.lower() in names:
            return names.index(wanted.lower())
        raise BadInput(
            f"{shard.label}: no column named {wanted!r} in the header "
            f"({len(names)} columns); check --phone-column"
        )
    for candidate in formats.PHONE_COLUMNS:
        if candidate in names:
            return names.index(candidate)
    raise BadInput(
        f"{shard.label}: no phone column found in the header ({len(names)} columns); "
        "name it with --phone-column"
    )


def process_shard(
    shard: formats.Shard,
    keyring_path: Path,
    key_id: str,
    spec: IngestSpec,
    out_dir: Path,
    *,
    tick: Callable[[int], None] = lambda n: None,
    hmac_in_sql: bool = False,
) -> ShardResult:
    """Read, normalise, pseudonymise one shard; write ``out_dir/pX/shard-N.parquet``.

    The worker loads the pseudonym key from the keyring itself. Errors never carry DuckDB's or
    Arrow's text (it can quote a value).
    """
    pseudonymizer = Keyring.load(keyring_path).pseudonymizer(key_id)
    result = ShardResult(shard, key_id)
    bad = [0]

    def on_bad() -> None:
        bad[0] += 1

    sample = formats.head(shard)
    formats.check_not_binary(shard, sample)
    if spec.fmt == "facebook-2021":
        reader = formats.facebook_reader(shard, tick, on_bad)
        row_sql = rows.facebook_sql()
        region = None
    else:
        layout = formats.sniff_csv(shard, sample)
        phone_index = _phone_column(shard, layout, spec.phone_column)
        reader = formats.csv_reader(shard, layout, tick, on_bad)
        row_sql = rows.csv_sql(layout.columns, phone_index)
        region = spec.default_region
    con = _connect(spec)
    tagger = ShardTagger.maybe(spec.self_check, f"shard-{shard.index:05d}")
    try:
        _run(
            con,
            reader,
            row_sql,
            region,
            spec,
            pseudonymizer,
            shard,
            out_dir,
            result,
            hmac_in_sql,
            tagger,
        )
        result.tag_files = tagger.close() if tagger else []
    except (duckdb.Error, pa.ArrowException, OSError, EOFError, UnicodeError):
        raise BadInput(
            f"{shard.label}: cannot be read as {spec.fmt} (malformed or corrupt "
            "data); check the file and --format"
        ) from None
    finally:
        con.close()
        if tagger:
            tagger.discard()  # unless closed: a failed shard leaves no tags
    if bad[0]:
        result.invalid_by_reason["bad_line"] = result.invalid_by_reason.get("bad_line", 0) + bad[0]
        result.rows_read += bad[0]
    return result


def query(
    row_sql: str, region: str | None, fmt: str, p: Pseudonymizer, *, hmac_in_sql: bool = False
) -> tuple[str, dict[str, bytes]]:
    """The shard's query and its parameters.

    With ``hmac_in_sql`` the pseudonym is DESIGN §5's SQL HMAC (columns ``pseudonym``, ``part``);
    otherwise the query returns ``e164`` (in memory only) and :class:`_Hasher` computes the same
    HMAC from precomputed SHA-256 states in a Python thread, concurrently with DuckDB (measured
    ~1.4x the SQL HMAC's rate on one thread, and it frees DuckDB's threads for the rest).
    """
    norm = phone_sql("bn_rows", "bn_phone", region, plus=fmt == "facebook-2021")
    head = f"""
    WITH bn_rows AS (SELECT *, CASE WHEN pre IS NULL THEN phone END AS bn_phone FROM ({row_sql})),
    bn_norm AS ({norm})"""
    tail = """coalesce(pre, reason) AS reason,
        CASE WHEN pre IS NULL AND e164 IS NULL AND reason IS NULL THEN phone END AS raw"""
    if not hmac_in_sql:
        return f"{head} SELECT kinds, e164, {tail} FROM bn_norm", {}
    hmac = p.sql_expression("e164")
    sql = f"""{head},
    bn_hashed AS (
        SELECT kinds, CASE WHEN e164 IS NOT NULL THEN {hmac.sql} END AS pseudonym, {tail}
        FROM bn_norm
    )
    SELECT pseudonym, kinds, reason, raw,
        CASE WHEN pseudonym IS NOT NULL
             THEN (('0x' || hex(pseudonym[1:1]))::INTEGER >> 4)::UTINYINT END AS part
    FROM bn_hashed
    """
    return sql, hmac.params


class _Hasher:
    """HMAC-SHA256 of a column of E.164 strings (``Pseudonymizer.pseudonyms_arrow``: C over the
    whole column when the extension is built)."""

    def __init__(self, p: Pseudonymizer) -> None:
        self._p = p

    def table(self, e164: pa.ChunkedArray, kinds: pa.ChunkedArray) -> pa.Table:
        """``pseudonym``, ``kinds``, ``part`` (first four bits) for non-null E.164 strings."""
        fixed = self._p.pseudonyms_arrow(e164)
        parts = pc.shift_right(bucket_prefixes(fixed), 28).cast(pa.uint8())
        return pa.table({"pseudonym": fixed.cast(pa.binary()), "kinds": kinds, "part": parts})


def chunk_bytes(memory_limit: str) -> int:
    """Input bytes per chunk: 1/16 of the memory limit (a chunk, its result and the next chunk
    are in memory at once, outside DuckDB's own budget), between 4 MiB and 192 MiB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", memory_limit.upper())
    if not m:
        return _CHUNK_BYTES
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)]
    return max(4 << 20, min(_CHUNK_BYTES, int(float(m.group(1)) * scale) // 16))


def _chunks(reader: pa.RecordBatchReader, limit: int = _CHUNK_BYTES) -> Iterator[pa.Table]:
    """The reader's rows in tables of about ``limit`` bytes: DuckDB scans an in-memory table
    with all its threads, a stream with one (measured ~2x slower end to end)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        pending.append(batch)
        size += batch.nbytes
        if size >= limit:
            yield pa.Table.from_batches(pending)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _prefetch(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Read (and decompress) the next chunk in a thread while DuckDB works on this one."""
    q: queue.Queue[pa.Table | BaseException | None] = queue.Queue(maxsize=1)

    def produce() -> None:
        try:
            for chunk in chunks:
                q.put(chunk)
            q.put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def _run(
    con: duckdb.DuckDBPyConnection,
    reader: pa.RecordBatchReader,
    row_sql: str,
    region: str | None,
    spec: IngestSpec,
    p: Pseudonymizer,
    shard: formats.Shard,
    out_dir: Path,
    result: ShardResult,
    hmac_in_sql: bool,
    tagger: ShardTagger | None = None,
) -> None:
    reasons: Counter[str] = Counter()
    sql, params = query(row_sql, region, spec.fmt, p, hmac_in_sql=hmac_in_sql)
    writers: dict[int, pq.ParquetWriter] = {}
    tag = f"shard-{shard.index:05d}-{os.getpid()}.parquet"

    def write(part: int, table: pa.Table) -> None:
        if part not in writers:
            d = out_dir / f"p{part:x}"
            d.mkdir(parents=True, exist_ok=True)
            path = d / tag
            writers[part] = pq.ParquetWriter(path, _SCHEMA, compression="none")
            result.files.append(path)
        writers[part].write_table(table.cast(_SCHEMA))

    extra_p: list[bytes] = []
    extra_k: list[int] = []

    hasher = None if hmac_in_sql else _Hasher(p)

    def take(table: pa.Table) -> None:
        result.rows_read += table.num_rows
        reason = table.column("reason")
        if reason.null_count < table.num_rows:
            for item in pc.value_counts(reason.drop_null()).to_pylist():
                reasons[item["values"]] += item["counts"]
        if hasher is not None:
            found = table.column("e164")
            valid = None
            if found.null_count < table.num_rows:
                sub = table.filter(pc.is_valid(found))
                valid = hasher.table(sub.column("e164"), sub.column("kinds"))
                if tagger:
                    tagger.add(sub.column("e164"))
        else:
            found = table.column("part")
            valid = None
            if found.null_count < table.num_rows:
                valid = table.select(["pseudonym", "kinds", "part"]).filter(pc.is_valid(found))
        if valid is not None:
            valid = valid.sort_by("part")
            result.valid_rows += valid.num_rows
            result.sql_decided += valid.num_rows
            start = 0
            for item in pc.value_counts(valid.column("part")).to_pylist():
                n = item["counts"]
                write(item["values"], valid.slice(start, n).select(["pseudonym", "kinds"]))
                start += n
        raw = table.column("raw")
        if raw.null_count < table.num_rows:
            sub = table.filter(pc.is_valid(raw))
            pairs = zip(sub.column("raw").to_pylist(), sub.column("kinds").to_pylist(), strict=True)
            for value, kinds in pairs:
                e164, why = reference(value, spec.fmt, region)
                result.python_decided += 1
                if e164 is None:
                    reasons[why] += 1
                else:
                    extra_p.append(p.pseudonym(e164))
                    extra_k.append(int(kinds))
                    if tagger:
                        tagger.add([e164])

    pending: Future[None] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as pool:
            for chunk in _prefetch(_chunks(reader, chunk_bytes(spec.memory_limit))):
                con.register("bn_src", chunk)
                table = con.sql(sql, params=params).to_arrow_table()
                con.unregister("bn_src")
                if pending is not None:
                    pending.result()
                pending = pool.submit(take, table)  # hashes while DuckDB runs the next chunk
            if pending is not None:
                pending.result()
        if extra_p:
            table = pa.table(
                {
                    "pseudonym": pa.array(extra_p, pa.binary()),
                    "kinds": pa.array(extra_k, pa.uint16()),
                }
            )
            parts = pa.array([ps[0] >> 4 for ps in extra_p], pa.uint8())
            for part in range(PARTITIONS):
                sub = table.filter(pc.equal(parts, part))
                if sub.num_rows:
                    write(part, sub)
            result.valid_rows += len(extra_p)
    finally:
        for w in writers.values():
            w.close()
    result.header_lines = reasons.pop("_header", 0)
    blank = reasons.pop("_blank", 0)
    result.rows_read -= result.header_lines + blank
    result.invalid_by_reason = dict(reasons)
