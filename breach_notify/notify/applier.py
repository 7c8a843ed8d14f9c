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

A JOIN (or a START from a number the store does not know) carries the sender's number sealed
with the MessageSid as associated data; the applier opens it with the keyring (loaded on first
need, reloaded when the file changes) and calls ``optin.join_by_sms`` with the time the message
was accepted. Such an entry is *held* (left pending in the journal, counted in
``DrainReport.held``, logged with the key id only) while its seal key is not in the keyring, or
while its line-type verdict (``settings.lookup_line_type``) has not arrived, at most
``LOOKUP_WAIT`` seconds. One that cannot be opened although its key is there (tampered) is
dropped with a warning.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from breach_notify.crypto import InvalidToken, Keyring, KeyringError, Sealed
from breach_notify.crypto.keyring import ENV_VAR
from breach_notify.events import journal
from breach_notify.events.journal import INBOUND, LOOKUP, STATUS, Stored
from breach_notify.notify import outbox
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.store.db import transaction
from breach_notify.subscribers import consent, inbound, optin, registry
from breach_notify.subscribers.keywords import Intent

log = logging.getLogger(__name__)

BATCH = 500
LOOKUP_WAIT = 120.0  # seconds a JOIN waits for its line-type verdict; then it applies anyway


class _Rings:
    """Keyrings by path, loaded on first need and again when the file's identity changes (a
    rotation renames a new file into place); one that fails to load keeps the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Path, tuple[object, Keyring]] = {}

    def get(self, path: Path) -> Keyring | None:
        if os.environ.get(ENV_VAR):
            identity: object = ("env", hash(os.environ[ENV_VAR]))
        else:
            try:
                st = os.stat(path)
            except OSError:
                identity = None
            else:
                identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            held = self._held.get(path)
            if held is not None and held[0] == identity:
                return held[1]
            try:
                ring = Keyring.load(path)
            except KeyringError:
                log.error("the keyring does not load; sealed journal entries wait")
                return held[1] if held is not None else None
            self._held[path] = (identity, ring)
            return ring


_RINGS = _Rings()


@dataclass
class _Joins:
    """What a batch needs to apply JOINs: the keyring (asked for only when a sealed number is
    to be opened) and the line-type verdicts journaled for them."""

    keyring: Keyring | None = None
    keyring_path: Path | None = None
    verdicts: dict[str, Stored] = field(default_factory=dict)
    now: datetime | None = None
    _settings: Settings | None = None

    def ring(self) -> Keyring | None:
        if self.keyring is None and self.keyring_path is not None:
            return _RINGS.get(self.keyring_path)
        return self.keyring

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings


@dataclass
class DrainReport:
    """``applied``: entries applied now; ``skipped``: already in the store; ``changed``: entries
    that changed a subscriber or a notice."""

    applied: int = 0
    skipped: int = 0
    changed: int = 0
    batches: int = 0
    held: int = 0  # JOINs left pending: seal key missing, or a line-type verdict to come
    more: bool = False  # stopped at ``max_seconds`` with entries left

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "skipped": self.skipped,
            "changed": self.changed,
            "batches": self.batches,
            "held": self.held,
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
    keyring: Keyring | None = None,
    keyring_path: Path | None = None,
    settings: Settings | None = None,
    max_seconds: float | None = None,
    batch: int = BATCH,
) -> DrainReport:
    """Apply every pending journal entry (or stop after ``max_seconds``); call it outside a
    transaction. Raises ``JournalUnavailable`` when a journal exists but cannot be read.

    JOINs open their sealed number with ``keyring``, else the keyring at ``keyring_path``
    (default: the data dir's, or ``settings``'), loaded only when one is needed."""
    report = DrainReport()
    path = journal_path or journal_of(conn)
    if path is None:
        return report
    if keyring_path is None:
        keyring_path = (settings or Settings(home=path.parent.parent)).keyring_path
    joins = _Joins(keyring, keyring_path, _settings=settings)
    started = time.monotonic()
    after = 0
    with journal.reader(path) as jr:
        if jr is None:
            return report
        while True:
            entries = jr.pending(batch, after)
            if not entries:
                break
            after = entries[-1].seq
            joins.verdicts = jr.find(
                [journal.lookup_id(e.event_id[3:]) for e in entries if e.payload.get("lookup")]
            )
            joins.now = datetime.now(UTC)
            with transaction(conn):
                applied, changed, held = apply_batch(conn, entries, joins)
            jr.mark_applied([e.seq for e in entries if e.seq not in held])
            report.batches += 1
            report.applied += applied
            report.skipped += len(entries) - applied - len(held)
            report.changed += changed
            report.held += len(held)
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                report.more = bool(jr.pending(1, after))
                break
    if report.batches:
        log.info(
            "applied %d web event(s) (%d changed something, %d already applied, %d held)",
            report.applied,
            report.changed,
            report.skipped,
            report.held,
        )
    return report


def apply_batch(
    conn: duckdb.DuckDBPyConnection, entries: list[Stored], joins: _Joins | None = None
) -> tuple[int, int, set[int]]:
    """Apply the entries not yet in ``applied_events`` and record their ids, in the caller's
    transaction; returns (applied, changed, the seqs held for later).

    Delivery statuses go in one statement for the batch (``outbox.record_deliveries``: the
    furthest status wins, whatever the order). Consent: the subscribers whose only messages in
    the batch are STOPs in bulk (``consent.apply_opt_outs``), everyone else's messages one by one
    in journal order; each decision only if no later one was made (``consent.superseded``).
    """
    joins = joins or _Joins()
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
    numbers, held = _open_joins(messages, senders, joins)
    intents: dict[str, set[str]] = {}
    for e in messages:
        sub = senders[e.seq]
        if sub is not None:
            intents.setdefault(sub.id, set()).add(str(e.payload["intent"]))
    bulk = {sid for sid, seen in intents.items() if seen == {Intent.OPT_OUT.value}}
    stops = [
        (sub.id, e.accepted_at)
        for e in messages
        if (sub := senders[e.seq]) is not None and sub.id in bulk
    ]
    changed += len(consent.apply_opt_outs(conn, stops, inbound.SOURCE))
    for entry in fresh:
        if entry.seq in held:
            continue
        if entry.kind == INBOUND:
            sub = senders[entry.seq]
            intent = Intent(entry.payload["intent"])
            if intent is Intent.JOIN or (intent is Intent.OPT_IN and sub is None):
                if _join(conn, entry, sub, numbers.get(entry.seq), joins):
                    changed += 1
                    waiting = [e for e in messages if e.seq > entry.seq and senders[e.seq] is None]
                    found = registry.find_by_pseudonyms(
                        conn, [_candidates(e.payload["p"]) for e in waiting]
                    )
                    senders.update(zip((e.seq for e in waiting), found, strict=True))
            elif sub is not None and sub.id not in bulk:
                changed += inbound.apply(conn, sub.id, intent, entry.accepted_at)
        elif entry.kind == STATUS and entry.payload.get("error") == outbox.OPTED_OUT_CODE:
            changed += _carrier_opt_out(conn, entry)
    kept = [e.event_id for e in entries if e.event_id not in done and e.seq not in held]
    if kept:
        conn.execute(
            "INSERT INTO applied_events (event_id, applied_at)"
            " SELECT unnest($ids::VARCHAR[]), now()",
            {"ids": kept},
        )
    return len(fresh) - len(held), changed, held


def _open_joins(
    messages: list[Stored], senders: dict[int, registry.Subscriber | None], joins: _Joins
) -> tuple[dict[int, E164], set[int]]:
    """The sealed numbers of the batch's JOINs, opened; and the seqs to hold for later (seal key
    missing, or a line-type verdict still to come)."""
    numbers: dict[int, E164] = {}
    held: set[int] = set()
    missing: set[str] = set()
    ring: Keyring | None = None
    asked = False
    for e in messages:
        intent = Intent(e.payload["intent"])
        if not (intent is Intent.JOIN or (intent is Intent.OPT_IN and senders[e.seq] is None)):
            continue
        if e.payload.get("n") is None:
            continue  # journaled before JOIN by SMS existed: nothing to open
        if e.payload.get("lookup") and journal.lookup_id(e.event_id[3:]) not in joins.verdicts:
            now = joins.now or datetime.now(UTC)
            if (now - e.accepted_at).total_seconds() < LOOKUP_WAIT:
                held.add(e.seq)
                continue
        if not asked:
            ring, asked = joins.ring(), True
        key_id, blob = _sealed(e.payload["n"])
        if ring is None or key_id not in ring.key_ids.get("seal", []):
            missing.add(key_id[:20])
            held.add(e.seq)
            continue
        try:
            numbers[e.seq] = E164(ring.sealer().open(Sealed(key_id, blob), row_id=e.event_id[3:]))
        except InvalidToken:
            log.warning("a JOIN's sealed number does not open (tampered?); dropped")
    if missing:
        log.warning(
            "JOIN(s) left pending in the journal: seal key %s not in the keyring; restore it",
            ", ".join(sorted(missing)),
        )
    return numbers, held


def _sealed(n: dict[str, str]) -> tuple[str, bytes]:
    try:
        return str(n["k"]), base64.b64decode(n["c"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return "", b""


def _join(
    conn: duckdb.DuckDBPyConnection,
    entry: Stored,
    sub: registry.Subscriber | None,
    number: E164 | None,
    joins: _Joins,
) -> bool:
    """A JOIN (or a START from an unknown number): pending through ``optin.join_by_sms``,
    unless refused (not a mobile per Lookup, not SMS-capable) or older than a later decision."""
    verdict = joins.verdicts.get(journal.lookup_id(entry.event_id[3:]))
    if number is None or (verdict is not None and verdict.payload.get("mobile") is False):
        return False
    if not number.can_receive_sms:
        return False
    if sub is not None and consent.superseded(conn, sub.id, entry.accepted_at):
        return False
    ring = joins.ring()
    assert ring is not None  # the number was opened with it
    answer = optin.join_by_sms(
        conn,
        ring,
        joins.settings(),
        number,
        str(entry.payload.get("lang") or "en"),
        source=inbound.SOURCE,
        now=entry.accepted_at,
    )
    return answer.changed


def _well_formed(entry: Stored) -> bool:
    p = entry.payload
    try:
        if entry.kind == INBOUND:
            Intent(p["intent"])
            _candidates(p["p"])
        elif entry.kind == STATUS:
            str(p["sid"]), str(p["status"]), _candidates(p.get("to") or {})
        elif entry.kind == LOOKUP:
            str(p["of"]), bool(p["mobile"])
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
