"""Erasure: pseudonyms, sealed number and codes deleted; unsent notices suppressed; tombstone kept.

The tombstone is the row's id, status ``erased`` and its PII-free events. The pseudonyms move to
the suppression list first (``suppression``), so an old list imported again cannot bring the
number back; only the person's own fresh double opt-in can.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.subscribers import codes, events, pseudonyms, suppression

UNSENT = ("pending", "sending", "in_doubt")


def erase(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime | None = None
) -> int:
    """Erase one subscriber; returns how many unsent notices were suppressed."""
    now = now or events.utcnow()
    with events.atomic(conn):
        suppression.keep(conn, subscriber_id, "erased", now)
        conn.execute(
            "UPDATE subscribers SET status = 'erased', pseudonym = NULL, pseudonym_key_id = NULL,"
            " sealed = NULL, seal_key_id = NULL, consent_source = NULL, updated_at = ?"
            " WHERE id = ?",
            [now, subscriber_id],
        )
        pseudonyms.forget(conn, subscriber_id)
        codes.forget(conn, subscriber_id)
        suppressed = conn.execute(
            "UPDATE notices SET state = 'suppressed', updated_at = ?"
            " WHERE subscriber_id = ? AND state IN (SELECT unnest(?::VARCHAR[])) RETURNING id",
            [now, subscriber_id, list(UNSENT)],
        ).fetchall()
        events.record(conn, subscriber_id, "erased", source, now)
    return len(suppressed)
