"""Erasure: pseudonyms, sealed number and codes deleted; a tombstone kept.

The tombstone is the row's id, status ``erased`` and its PII-free events. Unsent notices are the
outbox's: ``notify.outbox.erase`` calls this and cancels them in the same transaction. The
pseudonyms move to the suppression list first (``suppression``), so an old list imported again
cannot bring the number back; only the person's own fresh double opt-in can.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, events, pseudonyms, suppression


def erase(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime | None = None
) -> None:
    """Erase one subscriber's number, pseudonyms and codes; record the ``erased`` event."""
    now = now or events.utcnow()
    with transaction(conn):
        suppression.keep(conn, subscriber_id, "erased", now)
        conn.execute(
            "UPDATE subscribers SET status = 'erased', pseudonym = NULL, pseudonym_key_id = NULL,"
            " sealed = NULL, seal_key_id = NULL, consent_source = NULL, updated_at = ?"
            " WHERE id = ?",
            [now, subscriber_id],
        )
        pseudonyms.forget(conn, subscriber_id)
        codes.forget(conn, subscriber_id)
        events.record(conn, subscriber_id, "erased", source, now)
