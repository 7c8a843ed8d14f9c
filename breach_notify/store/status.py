"""Counts for ``status`` and run reports. Totals only; no row-level data."""

from __future__ import annotations

from typing import Any

import duckdb


def snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    breaches = [
        {"breach": r[0], "title": r[1], "distinct_numbers": r[2], "k": r[3], "prefix_bits": r[4]}
        for r in conn.execute(
            "SELECT id, title, distinct_numbers, k, prefix_bits FROM breaches ORDER BY id"
        ).fetchall()
    ]
    subscribers = dict(
        conn.execute("SELECT status, count(*) FROM subscribers GROUP BY 1 ORDER BY 1").fetchall()
    )
    notices = dict(
        conn.execute("SELECT state, count(*) FROM notices GROUP BY 1 ORDER BY 1").fetchall()
    )
    return {"breaches": breaches, "subscribers": subscribers, "notices": notices}
