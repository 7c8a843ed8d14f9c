"""Read model of the ingested breaches: counts only, kinds of field below k suppressed."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from breach_notify.errors import BadInput
from breach_notify.kinds import KINDS


def breach_summary(conn: duckdb.DuckDBPyConnection, breach_id: str) -> dict[str, Any]:
    """Counts of one breach; ``exposed`` maps kinds of field to counts, cells below k left out
    (listed in ``exposed_suppressed``). Raises ``BadInput`` for an unknown breach."""
    row = conn.execute(
        """SELECT id, title, format, key_id, k, prefix_bits, min_bucket, rows_read, rows_invalid,
                  rows_duplicate, distinct_numbers, invalid_by_reason, created_at, updated_at
           FROM breaches WHERE id = ?""",
        [breach_id],
    ).fetchone()
    if row is None:
        raise BadInput(f"no breach {breach_id!r}; see 'breach-notify breaches list'")
    cols = (
        "breach",
        "title",
        "format",
        "key_id",
        "k",
        "prefix_bits",
        "min_bucket",
        "rows_read",
        "rows_invalid",
        "rows_duplicate",
        "distinct_numbers",
        "invalid_by_reason",
        "created_at",
        "updated_at",
    )
    out: dict[str, Any] = dict(zip(cols, row, strict=True))
    out["invalid_by_reason"] = json.loads(row[11]) if row[11] else {}
    out["created_at"] = str(row[12])
    out["updated_at"] = str(row[13])
    k = int(row[4])
    sums = ", ".join(f"count(*) FILTER (WHERE kinds & {1 << i} <> 0)" for i in range(len(KINDS)))
    counts = conn.execute(
        f"SELECT {sums} FROM breach_pseudonyms WHERE breach_id = ?", [breach_id]
    ).fetchone()
    assert counts is not None
    exposed, suppressed = {}, []
    for kind, n in zip(KINDS, counts, strict=True):
        if int(n) >= k:
            exposed[kind] = int(n)
        elif n:
            suppressed.append(kind)
    out["exposed"] = exposed
    out["exposed_suppressed"] = suppressed
    files = conn.execute(
        "SELECT count(*) FROM breach_files WHERE breach_id = ?", [breach_id]
    ).fetchone()
    out["files"] = int(files[0]) if files else 0
    return out


def list_breaches(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every breach, counts only."""
    rows = conn.execute(
        """SELECT b.id, b.title, b.format, b.k, b.prefix_bits, b.min_bucket, b.rows_read,
                  b.rows_invalid, b.distinct_numbers, b.updated_at,
                  (SELECT count(*) FROM breach_files f WHERE f.breach_id = b.id)
           FROM breaches b ORDER BY b.id"""
    ).fetchall()
    cols = (
        "breach",
        "title",
        "format",
        "k",
        "prefix_bits",
        "min_bucket",
        "rows_read",
        "rows_invalid",
        "distinct_numbers",
        "updated_at",
        "files",
    )
    return [{**dict(zip(cols, r, strict=True)), "updated_at": str(r[9])} for r in rows]
