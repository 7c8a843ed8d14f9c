"""Consent transitions: activate (double opt-in or import), opt out, resume. Each is an event.

An opt-out also leaves a suppression entry (``suppression``) that outlives erasure; a resume,
which only the number itself can ask for (START), lifts it.

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

from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, events, suppression

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


def decided(conn: duckdb.DuckDBPyConnection, subscriber_id: str, at: datetime) -> None:
    """Advance the consent clock for a decision recorded elsewhere (a JOIN by SMS)."""
    _decided(conn, subscriber_id, at)


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
    with transaction(conn):
        _decided(conn, subscriber_id, now)
        changed = conn.execute(
            "UPDATE subscribers SET status = 'opted_out', updated_at = ?"
            " WHERE id = ? AND status IN ('pending', 'active') RETURNING id",
            [now, subscriber_id],
        ).fetchall()
        if changed:
            codes.retire(conn, subscriber_id, now)
            suppression.keep(conn, subscriber_id, "opted_out", now)
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
    with transaction(conn):
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
    with transaction(conn):
        _decided(conn, subscriber_id, now)
        changed = conn.execute(
            "UPDATE subscribers SET status = 'active', updated_at = ?"
            " WHERE id = ? AND status = 'opted_out' AND confirmed_at IS NOT NULL RETURNING id",
            [now, subscriber_id],
        ).fetchall()
        if changed:
            suppression.lift(conn, subscriber_id)
            events.record(conn, subscriber_id, "opted_in", source, now)
    return bool(changed)


def apply_opt_outs(
    conn: duckdb.DuckDBPyConnection, decisions: list[tuple[str, datetime]], source: str
) -> set[str]:
    """Many opt-outs at once (a wave of STOPs from the web's journal), each ``(subscriber id,
    when)``: the same as :func:`opt_out` for every decision that is not :func:`superseded`, in
    a few set-based statements. Returns the ids whose status changed."""
    if not decisions:
        return set()
    with transaction(conn):
        kept = conn.execute(
            "SELECT d.sid, min(d.seen), max(d.seen)"
            " FROM (SELECT unnest($sids::VARCHAR[]) AS sid, unnest($ats::TIMESTAMPTZ[]) AS seen) d"
            " LEFT JOIN consent_clock c ON c.subscriber_id = d.sid"
            " WHERE c.decided_at IS NULL OR d.seen >= c.decided_at GROUP BY d.sid",
            {"sids": [s for s, _ in decisions], "ats": [at for _, at in decisions]},
        ).fetchall()
        if not kept:
            return set()
        k = {
            "sids": [str(r[0]) for r in kept],
            "firsts": [r[1] for r in kept],
            "lasts": [r[2] for r in kept],
        }
        conn.execute(
            "INSERT INTO consent_clock (subscriber_id, decided_at)"
            " SELECT unnest($sids::VARCHAR[]), unnest($lasts::TIMESTAMPTZ[])"
            " ON CONFLICT (subscriber_id) DO UPDATE"
            " SET decided_at = greatest(consent_clock.decided_at, excluded.decided_at)",
            {"sids": k["sids"], "lasts": k["lasts"]},
        )
        changed = {
            str(r[0])
            for r in conn.execute(
                "UPDATE subscribers SET status = 'opted_out', updated_at = k.first"
                " FROM (SELECT unnest($sids::VARCHAR[]) AS sid,"
                "       unnest($firsts::TIMESTAMPTZ[]) AS first) k"
                " WHERE subscribers.id = k.sid AND subscribers.status IN ('pending', 'active')"
                " RETURNING subscribers.id",
                {"sids": k["sids"], "firsts": k["firsts"]},
            ).fetchall()
        }
        if changed:
            firsts = [f for s, f in zip(k["sids"], k["firsts"], strict=True) if s in changed]
            ids = [s for s in k["sids"] if s in changed]
            conn.execute(
                "UPDATE confirmation_codes SET expires_at = k.first"
                " FROM (SELECT unnest($sids::VARCHAR[]) AS sid,"
                "       unnest($firsts::TIMESTAMPTZ[]) AS first) k"
                " WHERE confirmation_codes.subscriber_id = k.sid AND used_at IS NULL"
                " AND expires_at > k.first",
                {"sids": ids, "firsts": firsts},
            )
            conn.execute(
                "INSERT INTO subscriber_events (subscriber_id, event, source, occurred_at)"
                " SELECT unnest($sids::VARCHAR[]), 'opted_out', $source,"
                " unnest($firsts::TIMESTAMPTZ[])",
                {"sids": ids, "firsts": firsts, "source": source},
            )
            for sid, first in zip(ids, firsts, strict=True):
                suppression.keep(conn, sid, "opted_out", first)
    return changed
