"""Opt-outs that arrive while the store is busy (e.g. a long ingest) are kept, not lost.

The webhook appends the sender's keyed pseudonyms (one per key version in the keyring — never the
number) and the time to ``HOME/spool/optout.jsonl``; whoever next opens the store — the sender
before it sends, the webhook on its next request — applies them. A lock file orders appends and
the hand-over: the applier renames the spool under the lock, applies it in one transaction, then
deletes it (a crash in between re-applies it, and opting out twice changes nothing).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.store.db import transaction
from breach_notify.subscribers import consent

SOURCE = "sms:spooled"


def _dir(settings: Settings) -> Path:
    return settings.home / "spool"


@contextmanager
def _locked(settings: Settings) -> Iterator[Path]:
    folder = _dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / "optout.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_opt_out(settings: Settings, ring: Keyring, number: E164, at: datetime) -> None:
    """Record an opt-out for later; durable (fsync) before the caller answers the request."""
    pseudonyms = {
        kid: ring.pseudonymizer(kid).pseudonym(number.value).hex()
        for kid in ring.key_ids["pseudonym"]
    }
    line = json.dumps({"at": at.astimezone(UTC).isoformat(), "p": pseudonyms}) + "\n"
    with _locked(settings) as folder:
        fd = os.open(folder / "optout.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def pending(settings: Settings) -> bool:
    folder = _dir(settings)
    return (folder / "optout.jsonl").exists() or any(folder.glob("optout.applying-*"))


def apply(conn: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Apply every spooled opt-out; returns how many subscribers it opted out.

    Note: call it outside a transaction of your own; each spool file is deleted once its
    opt-outs are committed.
    """
    if not pending(settings):
        return 0
    with _locked(settings) as folder:
        spool = folder / "optout.jsonl"
        if spool.exists():
            spool.rename(folder / f"optout.applying-{time.time_ns():020d}-{os.getpid()}")
    changed = 0
    for taken in sorted(folder.glob("optout.applying-*")):
        with transaction(conn):
            for raw in taken.read_text().splitlines():
                try:
                    entry = json.loads(raw)
                    at = datetime.fromisoformat(entry["at"])
                    candidates = [(kid, bytes.fromhex(h)) for kid, h in entry["p"].items()]
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a line torn by a crash mid-append: nothing to apply
                for kid, pseudonym in candidates:
                    row = conn.execute(
                        "SELECT id, status FROM subscribers WHERE pseudonym_key_id = ?"
                        " AND pseudonym = ? AND status IN ('pending', 'active') LIMIT 1",
                        [kid, pseudonym],
                    ).fetchall()
                    if row:
                        consent.opt_out(conn, str(row[0][0]), SOURCE, at)
                        changed += 1
                        break
        taken.unlink()
    return changed
