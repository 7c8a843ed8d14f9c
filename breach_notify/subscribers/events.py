"""The consent trail: one PII-free row per change of state, and the store helpers it shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import duckdb

from breach_notify.store.db import transaction


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


def in_transaction(conn: duckdb.DuckDBPyConnection) -> bool:
    """True inside BEGIN … COMMIT: the transaction id only moves between statements otherwise."""
    first = conn.execute("SELECT txid_current()").fetchone()
    second = conn.execute("SELECT txid_current()").fetchone()
    return first == second


@contextmanager
def atomic(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction, or the caller's own when one is already open (DuckDB cannot nest them)."""
    if in_transaction(conn):
        yield conn
        return
    with transaction(conn):
        yield conn
