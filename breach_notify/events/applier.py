"""Moving the web's journal into the store: in batches, one transaction each, each entry once.

Every entry's id goes into ``applied_events`` in the transaction that applies it; an entry found
there is skipped. So a crash between the store's commit and the journal's mark (or two processes
draining the same entries one after the other) applies nothing twice. Effects go through the
owners' functions: ``subscribers.inbound.apply`` (consent, never backwards in time),
``notify.delivery.record_delivery`` (status only moves forward), ``events.settle`` (a callback
for a message id never recorded).

Whoever holds the store drains first: the web's background :mod:`worker`, the sender each time
it opens the store (so an opt-out accepted during a send binds its next chunk), and match.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from breach_notify.events import journal, settle
from breach_notify.events.journal import INBOUND, STATUS, Stored
from breach_notify.notify import delivery
from breach_notify.settings import Settings
from breach_notify.store.db import transaction
from breach_notify.subscribers import consent, inbound, registry
from breach_notify.subscribers.keywords import Intent

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class DrainReport:
    """``applied``: entries applied now; ``skipped``: already in the store; ``changed``: entries
    that changed a subscriber or a notice."""

    applied: int = 0
    skipped: int = 0
    changed: int = 0
    batches: int = 0
    more: bool = False  # stopped at ``max_seconds`` with entries left

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "skipped": self.skipped,
            "changed": self.changed,
            "batches": self.batches,
        }


def journal_of(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """The journal that feeds the store ``conn`` is open on (it lives in the same data dir)."""
    row = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[0]:
        return None
    return Settings(home=Path(str(row[0])).parent).journal_path


def drain(
    conn: duckdb.DuckDBPyConnection,
    journal_path: Path | None = None,
    *,
    max_seconds: float | None = None,
    batch: int = BATCH,
) -> DrainReport:
    """Apply every pending journal entry (or stop after ``max_seconds``); call it outside a
    transaction. Raises ``JournalUnavailable`` when a journal exists but cannot be read."""
    report = DrainReport()
    path = journal_path or journal_of(conn)
    if path is None:
        return report
    started = time.monotonic()
    with journal.reader(path) as jr:
        if jr is None:
            return report
        while True:
            entries = jr.pending(batch)
            if not entries:
                break
            with transaction(conn):
                applied, changed = apply_batch(conn, entries)
            jr.mark_applied([e.seq for e in entries])
            report.batches += 1
            report.applied += applied
            report.skipped += len(entries) - applied
            report.changed += changed
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                report.more = bool(jr.pending(1))
                break
    if report.batches:
        log.info(
            "applied %d web event(s) (%d changed something, %d already applied)",
            report.applied,
            report.changed,
            report.skipped,
        )
    return report


def apply_batch(conn: duckdb.DuckDBPyConnection, entries: list[Stored]) -> tuple[int, int]:
    """Apply the entries not yet in ``applied_events``, in journal order, and record their ids.
    Runs in the caller's transaction; returns (applied, changed)."""
    ids = [e.event_id for e in entries]
    done = {
        str(r[0])
        for r in conn.execute(
            "SELECT event_id FROM applied_events"
            " WHERE event_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": ids},
        ).fetchall()
    }
    fresh = [e for e in entries if e.event_id not in done]
    changed = 0
    for entry in fresh:
        try:
            changed += _apply(conn, entry)
        except (KeyError, ValueError, TypeError):
            log.warning("a journal entry of kind %s is malformed; skipped", entry.kind[:20])
    if fresh:
        conn.execute(
            "INSERT INTO applied_events (event_id, applied_at)"
            " SELECT unnest($ids::VARCHAR[]), now()",
            {"ids": [e.event_id for e in fresh]},
        )
    return len(fresh), changed


def _candidates(pseudonyms: dict[str, str]) -> dict[str, bytes]:
    return {str(kid): bytes.fromhex(h) for kid, h in pseudonyms.items()}


def _apply(conn: duckdb.DuckDBPyConnection, entry: Stored) -> bool:
    p = entry.payload
    if entry.kind == INBOUND:
        sub = registry.find_by_pseudonyms(conn, _candidates(p["p"]))
        if sub is None:
            return False
        return inbound.apply(conn, sub.id, Intent(p["intent"]), entry.accepted_at)
    if entry.kind == STATUS:
        return _status(conn, entry)
    return False


def _status(conn: duckdb.DuckDBPyConnection, entry: Stored) -> bool:
    p = entry.payload
    gateway_id, status, code = str(p["sid"]), str(p["status"]), p.get("error")
    at = entry.accepted_at
    changed = delivery.record_delivery(conn, gateway_id, status, code, at)
    if not changed and p.get("to"):
        sub = registry.find_by_pseudonyms(conn, _candidates(p["to"]))
        if sub is not None and settle.attach_unrecorded(conn, gateway_id, [sub.id], at):
            changed = delivery.record_delivery(conn, gateway_id, status, code, at) or True
    if code == delivery.OPTED_OUT_CODE:
        subscriber_id = delivery.subscriber_of(conn, gateway_id)
        if subscriber_id is not None and not consent.superseded(conn, subscriber_id, at):
            consent.opt_out(conn, subscriber_id, "gateway", at)
            changed = True
    return changed


def prune(conn: duckdb.DuckDBPyConnection, journal_path: Path, retention_seconds: float) -> None:
    """Forget applied entries older than the retention: the journal's, and the store's ids of
    status callbacks (a replayed callback only moves a notice forward, so that is harmless).
    Inbound ids stay: a replayed START must never apply again."""
    with journal.reader(journal_path) as jr:
        if jr is not None:
            jr.prune(retention_seconds)
    conn.execute(
        "DELETE FROM applied_events WHERE event_id LIKE 'st:%'"
        " AND applied_at < now() - to_seconds($s::DOUBLE)",
        {"s": retention_seconds},
    )
