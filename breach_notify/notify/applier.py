"""Moving the web's journal into the store: in batches, one transaction each, each entry once.

Every entry's id goes into ``applied_events`` in the transaction that applies it; an entry found
there is skipped. So a crash between the store's commit and the journal's mark (or two processes
draining the same entries one after the other) applies nothing twice. Effects go through the
owners' functions: ``subscribers.inbound.apply`` (consent, never backwards in time),
``consent.opt_out`` (the carrier's 21610); delivery statuses go through
``outbox.record_deliveries`` (the rules of the outbox, a batch per statement; a callback for
a message id never recorded settles the recipient's in-flight notice).

Whoever holds the store drains first: the web's background :mod:`worker`, the sender each time
it opens the store (so an opt-out accepted during a send binds its next chunk), and match.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from breach_notify.events import journal
from breach_notify.events.journal import INBOUND, STATUS, Stored
from breach_notify.notify import outbox
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
    """Apply the entries not yet in ``applied_events`` and record their ids, in the caller's
    transaction; returns (applied, changed).

    Delivery statuses go in one statement for the batch (``outbox.record_deliveries``: the
    furthest status wins, whatever the order). Consent: the subscribers whose only messages in
    the batch are STOPs in bulk (``consent.apply_opt_outs``), everyone else's messages one by one
    in journal order; each decision only if no later one was made (``consent.superseded``).
    """
    ids = [e.event_id for e in entries]
    done = {
        str(r[0])
        for r in conn.execute(
            "SELECT event_id FROM applied_events"
            " WHERE event_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": ids},
        ).fetchall()
    }
    fresh = [e for e in entries if e.event_id not in done and _well_formed(e)]
    statuses = [e for e in fresh if e.kind == STATUS]
    changed = len(_statuses(conn, statuses))
    messages = [e for e in fresh if e.kind == INBOUND]
    senders = dict(
        zip(
            (e.seq for e in messages),
            registry.find_by_pseudonyms(conn, [_candidates(e.payload["p"]) for e in messages]),
            strict=True,
        )
    )
    intents: dict[str, set[str]] = {}
    for e in messages:
        sub = senders[e.seq]
        if sub is not None:
            intents.setdefault(sub.id, set()).add(str(e.payload["intent"]))
    stops = [
        (sub.id, e.accepted_at)
        for e in messages
        if (sub := senders[e.seq]) is not None and intents[sub.id] == {Intent.OPT_OUT.value}
    ]
    changed += len(consent.apply_opt_outs(conn, stops, inbound.SOURCE))
    for entry in fresh:
        if entry.kind == INBOUND:
            sub = senders[entry.seq]
            if sub is not None and intents[sub.id] != {Intent.OPT_OUT.value}:
                intent = Intent(entry.payload["intent"])
                changed += inbound.apply(conn, sub.id, intent, entry.accepted_at)
        elif entry.kind == STATUS and entry.payload.get("error") == outbox.OPTED_OUT_CODE:
            changed += _carrier_opt_out(conn, entry)
    if fresh:
        conn.execute(
            "INSERT INTO applied_events (event_id, applied_at)"
            " SELECT unnest($ids::VARCHAR[]), now()",
            {"ids": [e.event_id for e in entries if e.event_id not in done]},
        )
    return len(fresh), changed


def _well_formed(entry: Stored) -> bool:
    p = entry.payload
    try:
        if entry.kind == INBOUND:
            Intent(p["intent"])
            _candidates(p["p"])
        elif entry.kind == STATUS:
            str(p["sid"]), str(p["status"]), _candidates(p.get("to") or {})
        else:
            raise ValueError
    except (KeyError, ValueError, TypeError, AttributeError):
        log.warning("a journal entry of kind %s is malformed; skipped", entry.kind[:20])
        return False
    return True


def _candidates(pseudonyms: dict[str, str]) -> dict[str, bytes]:
    return {str(kid): bytes.fromhex(h) for kid, h in pseudonyms.items()}


def _statuses(conn: duckdb.DuckDBPyConnection, entries: list[Stored]) -> set[str]:
    """Record a batch of callbacks; the gateway ids whose notice changed."""

    def rows(batch: list[Stored]) -> list[tuple[str, str, str | None, datetime]]:
        return [
            (str(e.payload["sid"]), str(e.payload["status"]), e.payload.get("error"), e.accepted_at)
            for e in batch
        ]

    changed = outbox.record_deliveries(conn, rows(entries))
    gids = sorted({str(e.payload["sid"]) for e in entries})
    known = {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT gateway_id FROM notices"
            " WHERE gateway_id IN (SELECT unnest($gids::VARCHAR[]))",
            {"gids": gids},
        ).fetchall()
    }
    attached: set[str] = set()
    for e in entries:  # a message id no notice holds: the recipient's in-flight notice, if any
        gid = str(e.payload["sid"])
        if gid in known or gid in attached or not e.payload.get("to"):
            continue
        sub = registry.find_by_pseudonyms(conn, [_candidates(e.payload["to"])])[0]
        if sub is not None and outbox.attach_unrecorded(conn, gid, [sub.id], e.accepted_at):
            attached.add(gid)
    if attached:
        changed |= (
            outbox.record_deliveries(
                conn, rows([e for e in entries if str(e.payload["sid"]) in attached])
            )
            | attached
        )
    return changed


def _carrier_opt_out(conn: duckdb.DuckDBPyConnection, entry: Stored) -> bool:
    """Twilio's 21610: the recipient opted out with the carrier; record it like a STOP."""
    subscriber_id = outbox.subscriber_of(conn, str(entry.payload["sid"]))
    if subscriber_id is None or consent.superseded(conn, subscriber_id, entry.accepted_at):
        return False
    consent.opt_out(conn, subscriber_id, "gateway", entry.accepted_at)
    return True


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
