"""Consent transitions: activate (double opt-in or import), opt out, resume. Each is an event.

These work inside the caller's transaction when there is one (the sender calls ``opt_out`` and
``is_active`` from its own), and open their own otherwise.

Each decision (whether or not it changes the status) advances the subscriber's consent clock
(``consent_clock``): the time of the latest decision. An event applied late — from the web's
journal — is checked with :func:`superseded` first, so a START accepted before a later STOP
never re-subscribes anyone: consent never goes backwards in time.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.subscribers import codes, events

DOUBLE_OPT_IN = "sms-double-opt-in"


def is_active(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> bool:
    """True only for an active subscriber: the one status that may be messaged."""
    row = conn.execute("SELECT status FROM subscribers WHERE id = ?", [subscriber_id]).fetchone()
    return row is not None and row[0] == "active"


def superseded(conn: duckdb.DuckDBPyConnection, subscriber_id: str, at: datetime) -> bool:
    """True when the subscriber decided about consent after ``at``."""
    row = conn.execute(
        "SELECT decided_at FROM consent_clock WHERE subscriber_id = ?", [subscriber_id]
    ).fetchone()
    return row is not None and row[0] > at


def _decided(conn: duckdb.DuckDBPyConnection, subscriber_id: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO consent_clock (subscriber_id, decided_at) VALUES (?, ?)"
        " ON CONFLICT (subscriber_id) DO UPDATE"
        " SET decided_at = greatest(consent_clock.decided_at, excluded.decided_at)",
        [subscriber_id, at],
    )


def opt_out(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime | None = None
) -> None:
    """Pending or active → opted_out (idempotent). Outstanding codes are retired."""
    now = now or events.utcnow()
    with events.atomic(conn):
        _decided(conn, subscriber_id, now)
        changed = conn.execute(
            "UPDATE subscribers SET status = 'opted_out', updated_at = ?"
            " WHERE id = ? AND status IN ('pending', 'active') RETURNING id",
            [now, subscriber_id],
        ).fetchall()
        if changed:
            codes.retire(conn, subscriber_id, now)
            events.record(conn, subscriber_id, "opted_out", source, now)


def activate(
    conn: duckdb.DuckDBPyConnection,
    subscriber_id: str,
    source: str,
    now: datetime | None = None,
    consent_source: str = DOUBLE_OPT_IN,
) -> bool:
    """Pending or opted_out → active, recording when and how consent was given."""
    now = now or events.utcnow()
    with events.atomic(conn):
        _decided(conn, subscriber_id, now)
        changed = conn.execute(
            "UPDATE subscribers SET status = 'active', confirmed_at = ?, consent_source = ?,"
            " updated_at = ? WHERE id = ? AND status IN ('pending', 'opted_out') RETURNING id",
            [now, consent_source, now, subscriber_id],
        ).fetchall()
        if changed:
            codes.retire(conn, subscriber_id, now)
            events.record(conn, subscriber_id, "confirmed", source, now)
    return bool(changed)


def resume(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime | None = None
) -> bool:
    """START / UNSTOP: opted_out → active, only for someone who once confirmed."""
    now = now or events.utcnow()
    with events.atomic(conn):
        _decided(conn, subscriber_id, now)
        changed = conn.execute(
            "UPDATE subscribers SET status = 'active', updated_at = ?"
            " WHERE id = ? AND status = 'opted_out' AND confirmed_at IS NOT NULL RETURNING id",
            [now, subscriber_id],
        ).fetchall()
        if changed:
            events.record(conn, subscriber_id, "opted_in", source, now)
    return bool(changed)
