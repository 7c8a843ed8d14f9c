"""Merge shard results into DuckDB in one transaction; k-anonymous buckets; breach summaries.

Pseudonyms come from the store connection's temp table ``bn_acc`` (default runner) and from
one Parquet file per shard (distributed runner); both hold ``(pseudonym, kinds, prefix)``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from breach_notify.errors import BadInput, OperationalError
from breach_notify.ingest import selfcheck
from breach_notify.ingest.arrow_reader import UNPARSABLE
from breach_notify.ingest.options import IngestSpec
from breach_notify.ingest.sinks import ACC
from breach_notify.ingest.tally import ShardResult
from breach_notify.settings import Settings
from breach_notify.store.db import connect, transaction

#: A file whose rows are mostly unparsable is not in the declared format.
UNPARSABLE_SHARE = 0.5


@dataclass
class IngestReport:
    """What one ingest call did (counts only). ``as_dict`` gives the CLI ``--json`` fields."""

    breach: str
    rows_read: int = 0
    rows_invalid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    rows_duplicate: int = 0
    distinct_numbers: int = 0
    new_numbers: int = 0
    prefix_bits: int = 0
    k: int = 0
    min_bucket: int | None = None
    seconds: float = 0.0
    files: int = 0
    files_skipped: int = 0
    shards: int = 0
    header_lines: int = 0
    sql_decided: int = 0
    python_decided: int = 0
    self_check: dict[str, Any] | None = None  # tags stored for the private self-check

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def check_formats(spec: IngestSpec, results: Sequence[ShardResult]) -> None:
    """Refuse a file whose rows are mostly not in the declared format (e.g. wrong ``--format``)."""
    by_file: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for r in results:
        key = r.shard.content_sha256 + (r.shard.member or "")
        labels[key] = r.shard.label
        bad = sum(r.invalid_by_reason.get(x, 0) for x in UNPARSABLE)
        acc = by_file.setdefault(key, [0, 0])
        acc[0] += bad
        acc[1] += r.rows_read
    for key, (bad, total) in by_file.items():
        if total and bad > UNPARSABLE_SHARE * total:
            raise BadInput(
                f"{labels[key]}: {bad} of {total} rows cannot be parsed as {spec.options.fmt}; "
                "check --format (and --phone-column for CSV)"
            )


def merge_shards(
    settings: Settings, spec: IngestSpec, results: Sequence[ShardResult]
) -> IngestReport:
    """One transaction: breach row, files, new pseudonyms (kinds OR-ed), buckets, counters.

    Results of files already recorded for the breach are ignored, so a repeated merge changes
    nothing. Raises ``BadInput`` (store unchanged) when a file is not in the declared format.
    """
    check_formats(spec, results)
    conn = connect(settings)
    try:
        return merge_into(conn, settings, spec, results)
    finally:
        conn.close()


def merge_into(
    conn: duckdb.DuckDBPyConnection,
    settings: Settings,
    spec: IngestSpec,
    results: Sequence[ShardResult],
    *,
    acc: bool = False,
    tagging: list[selfcheck.Tagged] | None = None,
    prefer: str | None = None,
    retagged: int = 0,
) -> IngestReport:
    """:func:`merge_shards` on an open store connection; pseudonyms from the results' Parquet
    files and, with ``acc``, from the connection's temp table ``bn_acc``.

    ``tagging``: the self-check's staged tags of this call by key (the local runner's, with its
    re-tag pass; ``prefer`` the active OPRF key, ``retagged`` the files read again); by default
    the new files' tags under ``spec.self_check``."""
    started = time.monotonic()
    check_formats(spec, results)
    try:
        conn.execute("SET enable_progress_bar = false")
        conn.execute("SET enable_progress_bar_print = false")
        return _merge(conn, settings, spec, results, started, acc, tagging, prefer, retagged)
    except duckdb.Error:
        raise OperationalError(
            "the ingest could not be stored (store unchanged); check disk space and the memory "
            "limit, then retry"
        ) from None


def _merge(
    conn: duckdb.DuckDBPyConnection,
    settings: Settings,
    spec: IngestSpec,
    results: Sequence[ShardResult],
    started: float,
    acc: bool = False,
    tagging: list[selfcheck.Tagged] | None = None,
    prefer: str | None = None,
    retagged: int = 0,
) -> IngestReport:
    options = spec.options
    bid = options.breach_id
    report = IngestReport(breach=bid)
    with transaction(conn):
        existing = conn.execute("SELECT key_id, k FROM breaches WHERE id = ?", [bid]).fetchone()
        known = {
            r[0]
            for r in conn.execute(
                "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [bid]
            ).fetchall()
        }
        fresh = [r for r in results if r.shard.content_sha256 not in known]
        key_ids = {r.key_id for r in fresh}
        if existing is not None and key_ids - {existing[0]}:
            raise BadInput(
                f"breach {bid} was hashed under pseudonym key {existing[0]}; "
                "ingest its new files under that key"
            )
        report.files_skipped = len({r.shard.content_sha256 for r in results} & known)
        k = options.k or (int(existing[1]) if existing else settings.default_k)
        report.k = k
        if fresh:
            _add_files(conn, report, spec, fresh, existing, acc)
        if tagging is None:
            tagging = []
            if spec.self_check is not None and fresh:
                tagging = [
                    selfcheck.Tagged(
                        spec.self_check,
                        [p for r in fresh for p in r.tag_files],
                        {r.shard.content_sha256 for r in fresh},
                    )
                ]
        if tagging:
            report.self_check = selfcheck.merge(
                conn, tagging, bid, prefer=prefer, retagged=retagged
            )
        _before_commit()
    return _finish(conn, report, started, bid)


def _add_files(
    conn: duckdb.DuckDBPyConnection,
    report: IngestReport,
    spec: IngestSpec,
    fresh: list[ShardResult],
    existing: Any,
    acc: bool,
) -> None:
    """The new files, their pseudonyms and the breach's counters (inside the transaction)."""
    bid, options, k = report.breach, spec.options, report.k
    key_ids = {r.key_id for r in fresh}
    if existing is None:
        conn.execute(
            "INSERT INTO breaches (id, title, format, key_id, k) VALUES (?, ?, ?, ?, ?)",
            [bid, options.title or bid, options.fmt, next(iter(key_ids)), k],
        )
    files: dict[str, list[Any]] = {}
    reasons: Counter[str] = Counter()
    valid = 0
    for r in fresh:
        f = files.setdefault(r.shard.content_sha256, [r.shard.path.name, r.shard.size, 0])
        f[2] += r.rows_read
        report.rows_read += r.rows_read
        report.header_lines += r.header_lines
        report.sql_decided += r.sql_decided
        report.python_decided += r.python_decided
        reasons.update(r.invalid_by_reason)
        valid += r.valid_rows
    # one statement for all files (executemany costs ~ms per row: 10,000 files, 30 s)
    shas = list(files)
    conn.execute(
        "INSERT INTO breach_files (breach_id, content_sha256, name, bytes, rows_read)"
        " SELECT ?, unnest(?), unnest(?), unnest(?), unnest(?)",
        [
            bid,
            shas,
            [files[s][0] for s in shas],
            [files[s][1] for s in shas],
            [files[s][2] for s in shas],
        ],
    )
    report.files = len(files)
    paths = [str(p) for r in fresh for p in r.files]
    distinct_in_call = _merge_pseudonyms(conn, bid, paths, existing is not None, report, acc)
    report.invalid_by_reason = dict(sorted(reasons.items()))
    report.rows_invalid = sum(reasons.values())
    report.rows_duplicate = valid - distinct_in_call
    distinct = _count(conn, bid)
    bits, min_bucket = buckets(conn, bid, k, distinct)
    old = conn.execute("SELECT invalid_by_reason FROM breaches WHERE id = ?", [bid]).fetchone()
    total_reasons = Counter(json.loads(old[0]) if old and old[0] else {})
    total_reasons.update(reasons)
    conn.execute(
        """UPDATE breaches SET k = ?, prefix_bits = ?, min_bucket = ?,
               rows_read = rows_read + ?, rows_invalid = rows_invalid + ?,
               rows_duplicate = rows_duplicate + ?, distinct_numbers = ?,
               invalid_by_reason = ?, updated_at = now()
           WHERE id = ?""",
        [
            k,
            bits,
            min_bucket,
            report.rows_read,
            report.rows_invalid,
            report.rows_duplicate,
            distinct,
            json.dumps(dict(sorted(total_reasons.items()))),
            bid,
        ],
    )


def _before_commit() -> None:
    """Test seam: called inside the transaction, just before COMMIT."""


def _merge_pseudonyms(
    conn: duckdb.DuckDBPyConnection,
    bid: str,
    paths: list[str],
    update: bool,
    report: IngestReport,
    acc: bool = False,
) -> int:
    """Insert the call's distinct pseudonyms (kinds OR-ed); returns how many distinct it had.

    One set-based statement per step; DuckDB's aggregate and join spill to the temp directory
    (pseudonyms only) when they exceed the memory limit.
    """
    parts, params = [], []
    if paths:
        parts.append("SELECT pseudonym, kinds, prefix FROM read_parquet(?)")
        params.append(paths)
    if acc:
        parts.append(f"SELECT pseudonym, kinds, prefix FROM {ACC}")
    if not parts:
        return 0
    source = (
        "SELECT pseudonym, bit_or(kinds)::USMALLINT AS kinds, any_value(prefix) AS prefix"
        f" FROM ({' UNION ALL '.join(parts)}) GROUP BY pseudonym"
    )
    if not update:
        before = _count(conn, bid)
        conn.execute(
            f"INSERT INTO breach_pseudonyms (breach_id, pseudonym, kinds, prefix)"
            f" SELECT ?, pseudonym, kinds, prefix FROM ({source})",
            [bid, *params],
        )
        added = _count(conn, bid) - before
        report.new_numbers += added
        return added
    conn.execute(f"CREATE OR REPLACE TEMP TABLE bn_new AS {source}", params)
    row = conn.execute("SELECT count(*) FROM bn_new").fetchone()
    distinct = int(row[0]) if row else 0
    conn.execute(
        """UPDATE breach_pseudonyms AS b SET kinds = (b.kinds | n.kinds)::USMALLINT
           FROM bn_new AS n
           WHERE b.breach_id = ? AND b.pseudonym = n.pseudonym
             AND b.kinds | n.kinds <> b.kinds""",
        [bid],
    )
    before = _count(conn, bid)
    conn.execute(
        """INSERT INTO breach_pseudonyms (breach_id, pseudonym, kinds, prefix)
           SELECT ?, n.pseudonym, n.kinds, n.prefix FROM bn_new AS n
           WHERE NOT EXISTS (SELECT 1 FROM breach_pseudonyms b
                             WHERE b.breach_id = ? AND b.pseudonym = n.pseudonym)""",
        [bid, bid],
    )
    report.new_numbers += _count(conn, bid) - before
    conn.execute("DROP TABLE bn_new")
    return distinct


def _count(conn: duckdb.DuckDBPyConnection, bid: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM breach_pseudonyms WHERE breach_id = ?", [bid]
    ).fetchone()
    return int(row[0]) if row else 0


def buckets(conn: duckdb.DuckDBPyConnection, bid: str, k: int, n: int) -> tuple[int, int | None]:
    """(L, min bucket): the largest L where every one of the 2^L prefixes holds ≥ k pseudonyms.

    One scan of the stored ``prefix`` column (the first 32 bits of each pseudonym, written by the
    ingest) counts the buckets at the largest L the total allows; coarser levels are sums of
    those counts (in Python, at most 2^L small integers)."""
    if n == 0:
        return 0, None
    top = 0
    while top < 32 and n >= k * (2 ** (top + 1)):
        top += 1
    if top == 0:
        return 0, n
    rows = conn.execute(
        f"""SELECT prefix >> {32 - top} AS b, count(*) AS c
            FROM breach_pseudonyms WHERE breach_id = ? GROUP BY b""",
        [bid],
    ).fetchall()
    counts = {int(b): int(c) for b, c in rows}
    for bits in range(top, 0, -1):
        if bits < top:
            coarser: dict[int, int] = {}
            for b, c in counts.items():
                coarser[b >> 1] = coarser.get(b >> 1, 0) + c
            counts = coarser
        if len(counts) == 2**bits and min(counts.values()) >= k:
            return bits, min(counts.values())
    return 0, n


def _finish(
    conn: duckdb.DuckDBPyConnection, report: IngestReport, started: float, bid: str
) -> IngestReport:
    row = conn.execute(
        "SELECT distinct_numbers, prefix_bits, k, min_bucket FROM breaches WHERE id = ?", [bid]
    ).fetchone()
    if row is not None:
        report.distinct_numbers, report.prefix_bits, report.k = (
            int(row[0]),
            int(row[1]),
            int(row[2]),
        )
        report.min_bucket = None if row[3] is None else int(row[3])
    report.seconds += time.monotonic() - started
    return report
