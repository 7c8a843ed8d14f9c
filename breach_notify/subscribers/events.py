"""The consent trail: one PII-free row per change of state."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb


def utcnow() -> datetime:
    return datetime.now(UTC)


def record(
    conn: duckdb.DuckDBPyConnection,
    subscriber_id: str,
    event: str,
    source: str,
    now: datetime | None = None,
) -> None:
    """Append ``event`` (a short word, never a value) for ``subscriber_id``."""
    conn.execute(
        "INSERT INTO subscriber_events (subscriber_id, event, source, occurred_at)"
        " VALUES (?, ?, ?, ?)",
        [subscriber_id, event, source, now or utcnow()],
    )


def trail(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> list[tuple[str, str]]:
    """``(event, source)`` pairs for one subscriber, oldest first."""
    rows = conn.execute(
        "SELECT event, source FROM subscriber_events WHERE subscriber_id = ? ORDER BY id",
        [subscriber_id],
    ).fetchall()
    return [(str(e), str(s)) for e, s in rows]
