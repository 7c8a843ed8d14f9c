"""Daily clean-up: unconfirmed subscriptions after 24 h, and code rows past the rate-limit day."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, events

PENDING_TTL = timedelta(hours=24)


def expire_pending(conn: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Remove pending subscribers whose last code (or creation) is over 24 h old.

    The row, its pseudonyms and codes are deleted; an ``expired`` event is the tombstone. A
    pending subscriber has no notices (match takes active subscribers only), so none is touched.
    """
    cutoff = now - PENDING_TTL
    with transaction(conn):
        ids = [
            str(r[0])
            for r in conn.execute(
                "SELECT s.id FROM subscribers s LEFT JOIN confirmation_codes c"
                " ON c.subscriber_id = s.id WHERE s.status = 'pending' GROUP BY s.id, s.created_at"
                " HAVING greatest(s.created_at, coalesce(max(c.created_at), s.created_at)) <= ?",
                [cutoff],
            ).fetchall()
        ]
        if ids:
            conn.execute(
                "DELETE FROM subscriber_pseudonyms WHERE subscriber_id IN (SELECT unnest(?))",
                [ids],
            )
            conn.execute(
                "DELETE FROM confirmation_codes WHERE subscriber_id IN (SELECT unnest(?))", [ids]
            )
            conn.execute("DELETE FROM subscribers WHERE id IN (SELECT unnest(?))", [ids])
            conn.executemany(
                "INSERT INTO subscriber_events (subscriber_id, event, source, occurred_at)"
                " VALUES (?, 'expired', 'housekeeping', ?)",
                [[i, now] for i in ids],
            )
    return len(ids)


def run(conn: duckdb.DuckDBPyConnection, now: datetime | None = None) -> dict[str, int]:
    """Both clean-ups; counts only."""
    now = now or events.utcnow()
    expired = expire_pending(conn, now)
    with transaction(conn):
        purged = codes.purge(conn, now)
    return {"pending_expired": expired, "codes_purged": purged}
