"""The Arrow read path: any shard (a plain file or byte range, ``.gz``, a zip member, a CSV).

Arrow's CSV reader cuts each shard's (decompressed) bytes into lines, or CSV rows, as record
batches (:mod:`.formats`). They are gathered into in-memory chunks of about
:func:`chunk_bytes`, which DuckDB scans with all threads; small shards share a chunk, and so one
query, each row tagged with its shard in column ``f``. Per chunk one query runs the row SQL
(:mod:`.rows`) and the normalisation SQL (:mod:`.normalize`); the :class:`~.tally.Tally`
counts the verdicts and hashes the valid rows in a second thread while DuckDB runs the next
chunk, and a sink (:mod:`.sinks`) takes the pseudonyms. Nothing but pseudonyms, kinds and counts
leaves; errors never carry DuckDB's or Arrow's text (it can quote a value).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from breach_notify.crypto import Keyring, Pseudonymizer
from breach_notify.errors import BadInput
from breach_notify.ingest import formats, rows
from breach_notify.ingest.normalize import phone_sql
from breach_notify.ingest.options import IngestSpec, memory_bytes
from breach_notify.ingest.selfcheck import ShardTagger
from breach_notify.ingest.sinks import ParquetSink, Sink
from breach_notify.ingest.tally import ShardResult, Tally

_CHUNK_BYTES = 192 << 20
#: Reasons that mean "this line is not in the declared format" (for the wrong-format check).
UNPARSABLE = ("truncated_line", "bad_line", "not_a_number", "empty", "line_too_long")

__all__ = ["UNPARSABLE", "ShardResult", "chunk_bytes", "connect", "process_shard", "read_shards"]


def connect(spec: IngestSpec) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for reading, within the spec's memory limit and temp directory."""
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


def chunk_bytes(memory_limit: str) -> int:
    """Input bytes per chunk: 1/16 of the memory limit (a chunk, its result and the next chunk
    are in memory at once, outside DuckDB's own budget), between 4 MiB and 192 MiB."""
    total = memory_bytes(memory_limit)
    if total is None:
        return _CHUNK_BYTES
    return max(4 << 20, min(_CHUNK_BYTES, total // 16))


@functools.lru_cache(maxsize=64)
def query(row_sql: str, region: str | None, plus: bool, pseudonym_sql: str | None = None) -> str:
    """The query over a chunk ``bn_src`` (with column ``f``): per row ``f``, ``kinds``,
    ``e164`` (in memory only; the tally hashes it), ``reason`` and ``raw``. Built once per
    row SQL and region.

    ``pseudonym_sql`` (DESIGN §5's SQL HMAC over ``e164``, the tested alternative to hashing in
    the tally) returns column ``pseudonym`` instead of ``e164``.
    """
    norm = phone_sql("bn_rows", "bn_phone", region, plus=plus)
    found = "e164"
    if pseudonym_sql is not None:
        found = f"CASE WHEN e164 IS NOT NULL THEN {pseudonym_sql} END AS pseudonym"
    return f"""
    WITH bn_rows AS (SELECT *, CASE WHEN pre IS NULL THEN phone END AS bn_phone FROM ({row_sql})),
    bn_norm AS ({norm})
    SELECT f, kinds, {found}, coalesce(pre, reason) AS reason,
        CASE WHEN pre IS NULL AND e164 IS NULL AND reason IS NULL THEN phone END AS raw
    FROM bn_norm
    """


@dataclass(frozen=True)
class _Prepared:
    """A shard checked and sniffed: the row SQL its batches need, and how to read it."""

    shard: formats.Shard
    row_sql: str
    layout: formats.CsvLayout | None


def _prepare(shard: formats.Shard, spec: IngestSpec) -> _Prepared:
    sample = formats.head(shard)
    formats.check_not_binary(shard, sample)
    if spec.options.fmt == "facebook-2021":
        return _Prepared(shard, rows.facebook_sql(tagged=True), None)
    layout = formats.sniff_csv(shard, sample)
    phone = _phone_column(shard, layout, spec.options.phone_column)
    return _Prepared(shard, rows.csv_sql(layout.columns, phone, tagged=True), layout)


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
    """One shard on a worker of the distributed runner: its pseudonyms go to one Parquet file
    ``out_dir/shard-NNNNN.parquet`` (none when it has no valid row); the worker loads the
    pseudonym key from the keyring itself."""
    p = Keyring.load(keyring_path).pseudonymizer(key_id)
    sink = ParquetSink(out_dir / f"shard-{shard.index:05d}.parquet")
    try:
        [result] = read_shards([shard], spec, p, sink, tick=tick, hmac_in_sql=hmac_in_sql)
    finally:
        files = sink.close()
    result.files = files
    return result


def read_shards(
    shards: list[formats.Shard],
    spec: IngestSpec,
    p: Pseudonymizer,
    sink: Sink,
    *,
    tick: Callable[[int], None] = lambda n: None,
    hmac_in_sql: bool = False,
) -> list[ShardResult]:
    """Read, normalise and pseudonymise ``shards`` into ``sink`` (rows tagged with each
    shard's ``index``); their results in the same order. Shards with the same row SQL share
    queries. When the ingest tags (``spec.self_check``), the shards' self-check tags go to
    Parquet files listed in the first result's ``tag_files``; none are left on failure."""
    if not shards:
        return []
    if hmac_in_sql and spec.self_check is not None:
        raise ValueError("the SQL HMAC holds no E.164 values to tag: hash in the tally instead")
    options = spec.options
    csv = options.fmt == "csv"
    tagger = ShardTagger.maybe(spec.self_check, f"shard-{shards[0].index:05d}")
    tally = Tally(p, plus=not csv, region=options.default_region if csv else None, tagger=tagger)
    con = None
    try:
        groups: dict[str, list[_Prepared]] = {}
        for shard in shards:
            prepared = _prepare(shard, spec)
            groups.setdefault(prepared.row_sql, []).append(prepared)
        con = connect(spec)
        for row_sql, group in groups.items():
            region = options.default_region if csv else None
            params: dict[str, bytes] = {}
            hmac = None
            if hmac_in_sql:
                expression = p.sql_expression("e164")
                hmac, params = expression.sql, expression.params
            sql = query(row_sql, region, not csv, hmac)
            _run(con, group, sql, params, spec, tally, sink, tick)
        tag_files = tagger.close() if tagger else []
    finally:
        if con is not None:
            con.close()
        if tagger:
            tagger.discard()  # unless closed: a failed read leaves no tags
    results = [tally.result(s.index, s, p.key_id) for s in shards]
    results[0].tag_files = tag_files
    return results


def _run(
    con: duckdb.DuckDBPyConnection,
    group: list[_Prepared],
    sql: str,
    params: dict[str, bytes],
    spec: IngestSpec,
    tally: Tally,
    sink: Sink,
    tick: Callable[[int], None],
) -> None:
    """The group's chunks through the query; the tally (and sink) of each chunk runs in a
    thread while DuckDB works on the next one."""

    def take(table: pa.Table) -> None:
        for out in tally.add(table):
            sink.write(out)

    refused: dict[tuple[int, str], int] = {}
    chunks = _prefetch(_chunks(group, spec, tick, refused))
    pending: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as pool:
        try:
            for chunk, labels in chunks:
                con.register("bn_src", chunk)
                try:
                    table = con.sql(sql, params=params).to_arrow_table()
                except duckdb.Error:
                    raise BadInput(
                        f"{_which(labels)}: cannot be read as {spec.options.fmt} (malformed or "
                        "corrupt data); check the file and --format"
                    ) from None
                finally:
                    con.unregister("bn_src")
                if pending is not None:
                    pending.result()
                pending = pool.submit(take, table)
        finally:
            if pending is not None:
                pending.result()
    for (f, reason), n in refused.items():
        tally.count(f, reason, n)


def _which(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return f"{labels[0]} (or one of the {len(labels) - 1} other files read with it)"


def _chunks(
    group: list[_Prepared],
    spec: IngestSpec,
    tick: Callable[[int], None],
    refused: dict[tuple[int, str], int],
) -> Iterator[tuple[pa.Table, list[str]]]:
    """The group's rows in tables of about :func:`chunk_bytes` bytes, with column ``f``:
    DuckDB scans an in-memory table with all its threads, a stream with one (measured ~2x
    slower end to end). Lines the readers refuse (``bad_line``, ``line_too_long``) are counted
    in ``refused`` per shard."""
    limit = chunk_bytes(spec.memory_limit)
    pending: list[pa.RecordBatch] = []
    labels: list[str] = []
    size = 0
    for item in group:
        f = item.shard.index

        def on_bad(f: int = f) -> None:
            refused[f, "bad_line"] = refused.get((f, "bad_line"), 0) + 1

        def on_long(first: bool, item: _Prepared = item) -> None:
            if first and item.layout is not None:
                raise BadInput(
                    f"{item.shard.label}: the CSV header line is longer than "
                    f"{spec.limits.max_line_bytes} bytes; check the file, or raise "
                    "BREACH_NOTIFY_MAX_LINE_BYTES"
                )
            key = (item.shard.index, "line_too_long")
            refused[key] = refused.get(key, 0) + 1

        with (
            formats.read_errors(item.shard, spec.options.fmt),
            formats.open_reader(
                item.shard, item.layout, tick, on_bad, spec.limits, on_long
            ) as reader,
        ):
            labels.append(item.shard.label)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                tag = pa.repeat(pa.scalar(f, pa.int32()), batch.num_rows)  # type: ignore[attr-defined]
                pending.append(
                    pa.RecordBatch.from_arrays(
                        [*batch.columns, tag], names=[*batch.schema.names, "f"]
                    )
                )
                size += batch.nbytes
                if size >= limit:
                    yield pa.Table.from_batches(pending), labels
                    pending, size, labels = [], 0, [item.shard.label]
    if pending:
        yield pa.Table.from_batches(pending), labels


def _prefetch(
    chunks: Iterator[tuple[pa.Table, list[str]]],
) -> Iterator[tuple[pa.Table, list[str]]]:
    """Read (and decompress) the next chunk in a thread while DuckDB works on this one."""
    q: queue.Queue[tuple[pa.Table, list[str]] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                q.put(chunk)
            q.put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        thread.join()
