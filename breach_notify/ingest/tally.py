"""The verdict tally both readers share: counts per verdict, and valid rows as pseudonyms.

Both readers run the same row and normalisation SQL, which returns per row ``kinds``, ``e164``
(or, with the SQL HMAC, ``pseudonym``), ``reason`` and ``raw`` (the phone value of a row the SQL
could not decide) and, when several shards share one query, ``f`` (the shard). :class:`Tally`
counts each batch's verdicts per shard and turns its valid rows into output tables of
``(f, pseudonym, kinds, prefix)``: the rows the SQL decided hashed as one Arrow column, the
undecided ones settled by :func:`breach_notify.numbers.verdict`, :data:`PYTHON_BATCH` at a time,
so that their Python objects stay bounded however many there are. No plaintext leaves it,
except to the self-check's :class:`~.selfcheck.ShardTagger` when the ingest tags: it is handed
the valid rows' E.164 values where the tally holds them, with their pseudonyms (so that the
self-check keeps only numbers the breach holds).
"""

from __future__ import annotations

import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from breach_notify.crypto import Pseudonymizer
from breach_notify.crypto.pseudonymizer import bucket_prefixes
from breach_notify.ingest.formats import Shard
from breach_notify.ingest.selfcheck import ShardTagger
from breach_notify.numbers import verdict

#: Undecided rows settled by ``phonenumbers`` per output table (bounds their Python objects).
PYTHON_BATCH = 8192
#: What every reader writes: pseudonyms, kinds and bucket prefixes, tagged with the shard.
OUTPUT = pa.schema(
    [
        ("f", pa.int32()),
        ("pseudonym", pa.binary()),
        ("kinds", pa.uint16()),
        ("prefix", pa.uint32()),
    ]
)


@dataclass
class ShardResult:
    """Counts (and Parquet output, on the distributed path) of one shard; no personal data."""

    shard: Shard
    key_id: str
    rows_read: int = 0
    valid_rows: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    header_lines: int = 0
    files: list[Path] = field(default_factory=list)
    sql_decided: int = 0
    python_decided: int = 0
    tag_files: list[Path] = field(default_factory=list)  # self-check tags (staged Parquet)


@dataclass
class _Counts:
    rows: int = 0
    valid: int = 0
    sql: int = 0
    python: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class Tally:
    """Verdict counts per shard (``f``) and the valid rows' pseudonyms.

    ``plus`` reads a raw value as ``'+' || value`` (``facebook-2021``); ``region`` is the default
    region for national forms (CSV); ``tagger`` is given the valid E.164 values (self-check).
    """

    def __init__(
        self,
        p: Pseudonymizer,
        *,
        plus: bool,
        region: str | None,
        tagger: ShardTagger | None = None,
    ) -> None:
        self._p = p
        self._plus = plus
        self._region = region
        self._tagger = tagger
        self._counts: dict[int, _Counts] = {}

    def _of(self, f: int) -> _Counts:
        c = self._counts.get(f)
        if c is None:
            c = self._counts[f] = _Counts()
        return c

    def count(self, f: int, reason: str, n: int) -> None:
        """``n`` rows of shard ``f`` that a reader refused before the SQL (e.g. ``bad_line``)."""
        if n:
            c = self._of(f)
            c.rows += n
            c.reasons[reason] += n

    def add(
        self, rows: pa.RecordBatch | pa.Table, f: int = 0, *, raw_utf8: bool = False
    ) -> Iterator[pa.Table]:
        """Count the verdicts of ``rows`` and yield their valid rows as :data:`OUTPUT` tables.

        ``f`` is the shard of rows without an ``f`` column; ``raw_utf8``: their text was read as
        UTF-8, and ``raw`` values are turned back into the Latin-1 reading of the same bytes (as
        the Arrow reader sees them) before ``phonenumbers`` decides them.
        """
        batches = rows.to_batches() if isinstance(rows, pa.Table) else [rows]
        for batch in batches:
            yield from self._batch(batch, f, raw_utf8)

    def _batch(self, batch: pa.RecordBatch, f: int, raw_utf8: bool) -> Iterator[pa.Table]:
        n = batch.num_rows
        if n == 0:
            return
        shards = batch.column("f") if "f" in batch.schema.names else None
        if shards is not None:
            distinct = pc.unique(shards)
            if len(distinct) == 1:
                f, shards = int(distinct[0].as_py()), None
        if shards is None:
            self._count_one(batch, f)
        else:
            self._count_many(batch, shards)
        found = self._sql_decided(batch, f, shards)
        if found is not None:
            yield found
        raw = batch.column("raw")
        if raw.null_count < n:
            undecided = batch.filter(pc.is_valid(raw))
            for start in range(0, undecided.num_rows, PYTHON_BATCH):
                piece = undecided.slice(start, PYTHON_BATCH)
                out = self._python_decided(piece, f, shards is not None, raw_utf8)
                if out is not None:
                    yield out

    def _count_one(self, batch: pa.RecordBatch, f: int) -> None:
        c = self._of(f)
        c.rows += batch.num_rows
        reason = batch.column("reason")
        if reason.null_count < batch.num_rows:
            for item in pc.value_counts(reason.drop_null()).to_pylist():
                c.reasons[item["values"]] += item["counts"]

    def _count_many(self, batch: pa.RecordBatch, shards: pa.Array) -> None:
        for item in pc.value_counts(shards).to_pylist():
            self._of(int(item["values"])).rows += item["counts"]
        reason = batch.column("reason")
        if reason.null_count < batch.num_rows:
            keep = pc.is_valid(reason)
            pairs = pa.table({"f": shards.filter(keep), "r": reason.filter(keep)})
            for row in pairs.group_by(["f", "r"]).aggregate([("r", "count")]).to_pylist():
                self._of(int(row["f"])).reasons[str(row["r"])] += int(row["r_count"])

    def _sql_decided(
        self, batch: pa.RecordBatch, f: int, shards: pa.Array | None
    ) -> pa.Table | None:
        if "pseudonym" in batch.schema.names:  # the SQL HMAC computed them already
            column = batch.column("pseudonym")
            keep = pc.is_valid(column)
            fixed = column.filter(keep).cast(pa.binary(32))
        else:
            column = batch.column("e164")
            keep = pc.is_valid(column)
            fixed = None
        if column.null_count == batch.num_rows:
            return None
        if fixed is None:
            found = column.filter(keep)
            fixed = self._p.pseudonyms_arrow(found)
            if self._tagger is not None:
                self._tagger.add(found, fixed)
        kinds = batch.column("kinds").filter(keep).cast(pa.uint16())
        tags = shards.filter(keep) if shards is not None else _constant(f, len(fixed))
        self._sql_valid(tags if shards is not None else None, f, len(fixed))
        return _output(tags, fixed, kinds)

    def _python_decided(
        self, piece: pa.RecordBatch, f: int, tagged: bool, raw_utf8: bool
    ) -> pa.Table | None:
        values = piece.column("raw").to_pylist()
        if raw_utf8:
            values = [v.encode("utf-8").decode("latin-1") for v in values]
        kinds = piece.column("kinds").to_pylist()
        shards = piece.column("f").to_pylist() if tagged else [f] * len(values)
        digests: list[bytes] = []
        out_kinds: list[int] = []
        out_f: list[int] = []
        numbers: list[str] = []
        for value, k, s in zip(values, kinds, shards, strict=True):
            c = self._of(int(s))
            c.python += 1
            e164, reason = verdict("+" + value if self._plus else value, self._region)
            if e164 is None:
                c.reasons[reason or "not_valid"] += 1
                continue
            c.valid += 1
            digests.append(self._p.pseudonym(e164))
            out_kinds.append(int(k))
            out_f.append(int(s))
            if self._tagger is not None:
                numbers.append(e164)
        if not digests:
            return None
        if numbers and self._tagger is not None:
            self._tagger.add(numbers, digests)
        fixed = pa.array(digests, pa.binary(32))
        return _output(pa.array(out_f, pa.int32()), fixed, pa.array(out_kinds, pa.uint16()))

    def _sql_valid(self, tags: pa.Array | None, f: int, n: int) -> None:
        """Count ``n`` valid rows the SQL decided, of shard ``f`` or per ``tags``."""
        if tags is None:
            c = self._of(f)
            c.valid += n
            c.sql += n
            return
        for item in pc.value_counts(tags).to_pylist():
            c = self._of(int(item["values"]))
            c.valid += item["counts"]
            c.sql += item["counts"]

    def result(self, f: int, shard: Shard, key_id: str) -> ShardResult:
        """Shard ``f`` 's counts; header and blank lines are not rows."""
        c = self._counts.get(f, _Counts())
        reasons = Counter(c.reasons)
        header = reasons.pop("_header", 0)
        blank = reasons.pop("_blank", 0)
        return ShardResult(
            shard,
            key_id,
            rows_read=c.rows - header - blank,
            valid_rows=c.valid,
            invalid_by_reason=dict(reasons),
            header_lines=header,
            sql_decided=c.sql,
            python_decided=c.python,
        )


def _constant(f: int, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(f, pa.int32()), n)  # type: ignore[attr-defined,no-any-return]


def _output(tags: pa.Array, fixed: pa.Array, kinds: pa.Array) -> pa.Table:
    return pa.Table.from_arrays(
        [tags.cast(pa.int32()), _variable_width(fixed), kinds, bucket_prefixes(fixed)],
        schema=OUTPUT,
    )


def _variable_width(fixed: pa.Array) -> pa.Array:
    """The same 32-byte values as a plain ``binary`` array, sharing the data buffer: DuckDB
    takes those in measurably faster than ``binary(32)``."""
    n = len(fixed)
    if fixed.offset or n == 0:
        return fixed.cast(pa.binary())
    return pa.Array.from_buffers(pa.binary(), n, [None, _offsets(n), fixed.buffers()[1]])


def _offsets(n: int) -> pa.Buffer:
    """int32 offsets 0, 32, …, 32 n (cached: the batches have the same few sizes)."""
    global _OFFSETS
    if len(_OFFSETS) < 4 * (n + 1):
        _OFFSETS = pa.py_buffer(array.array("i", range(0, 32 * (2 * n + 1), 32)).tobytes())
    return _OFFSETS.slice(0, 4 * (n + 1))


_OFFSETS = pa.py_buffer(b"")
