"""Confirmation codes: 6 digits, stored only as a keyed hash, with expiry, attempts and limits.

A code is ``HMAC(code key, subscriber id || ":" || code)``: bound to one subscriber, useless
without the keyring. A code for another purpose than confirming (``"stop"``, the stop page) hashes
``subscriber id || ":" || purpose || ":" || code``, so it cannot confirm and vice versa.
Issuing a new code retires the previous one. Rows stay for a day after they are issued because
they are the rate-limit record (SMS-bombing guard).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

import duckdb

from breach_notify.crypto import Keyring

LENGTH = 6
TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
PER_MINUTE = 1
PER_DAY = 3


CONFIRM = "confirm"
STOP = "stop"


def _hash(
    ring: Keyring, subscriber_id: str, code: str, purpose: str = CONFIRM
) -> tuple[str, bytes]:
    hasher = ring.code_hasher()
    bound = f"{subscriber_id}:{code}" if purpose == CONFIRM else f"{subscriber_id}:{purpose}:{code}"
    return hasher.key_id, hasher.digest(bound.encode())


def rate_limited(conn: duckdb.DuckDBPyConnection, subscriber_id: str, now: datetime) -> bool:
    """True when a new code now would exceed one per minute or three per day.

    A code that was used does not count against the minute: its owner is there (a sign-up
    confirmed a moment ago may ask for a stop code straight away).
    """
    row = conn.execute(
        "SELECT count(*) FILTER (created_at > ? AND used_at IS NULL),"
        " count(*) FILTER (created_at > ?)"
        " FROM confirmation_codes WHERE subscriber_id = ?",
        [now - timedelta(minutes=1), now - timedelta(days=1), subscriber_id],
    ).fetchone()
    assert row is not None
    return int(row[0]) >= PER_MINUTE or int(row[1]) >= PER_DAY


def issue(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    subscriber_id: str,
    now: datetime,
    purpose: str = CONFIRM,
) -> str | None:
    """A fresh code for ``subscriber_id``, or None when rate-limited. Older codes are retired."""
    if rate_limited(conn, subscriber_id, now):
        return None
    code = f"{secrets.randbelow(10**LENGTH):0{LENGTH}d}"
    key_id, digest = _hash(ring, subscriber_id, code, purpose)
    retire(conn, subscriber_id, now)
    conn.execute(
        "INSERT INTO confirmation_codes (subscriber_id, code_hash, code_key_id, created_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?)",
        [subscriber_id, digest, key_id, now, now + TTL],
    )
    return code


def retire(conn: duckdb.DuckDBPyConnection, subscriber_id: str, now: datetime) -> None:
    """Make every outstanding code of a subscriber unusable (rows kept for the rate limit)."""
    conn.execute(
        "UPDATE confirmation_codes SET expires_at = ? WHERE subscriber_id = ? AND used_at IS NULL"
        " AND expires_at > ?",
        [now, subscriber_id, now],
    )


def withdraw_latest(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> None:
    """Delete the newest code (it could not be sent), so it does not count against the limits."""
    conn.execute(
        "DELETE FROM confirmation_codes WHERE id = (SELECT max(id) FROM confirmation_codes"
        " WHERE subscriber_id = ?)",
        [subscriber_id],
    )


def has_live(conn: duckdb.DuckDBPyConnection, subscriber_id: str, now: datetime) -> bool:
    """True when an unused, unexpired code with attempts left exists."""
    row = conn.execute(
        "SELECT count(*) FROM confirmation_codes WHERE subscriber_id = ? AND used_at IS NULL"
        " AND expires_at > ? AND attempts < ?",
        [subscriber_id, now, MAX_ATTEMPTS],
    ).fetchone()
    return bool(row and row[0])


def verify(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    subscriber_id: str,
    code: str,
    now: datetime,
    purpose: str = CONFIRM,
) -> bool:
    """Check ``code`` against the newest live code; every try counts as an attempt.

    Note: the caller must commit even when this returns False, or attempts are not counted.
    """
    row = conn.execute(
        "SELECT id, code_hash, code_key_id, attempts FROM confirmation_codes"
        " WHERE subscriber_id = ? AND used_at IS NULL AND expires_at > ?"
        " ORDER BY id DESC LIMIT 1",
        [subscriber_id, now],
    ).fetchone()
    if row is None or int(row[3]) >= MAX_ATTEMPTS:
        return False
    code_id, stored, key_id, _ = row
    conn.execute("UPDATE confirmation_codes SET attempts = attempts + 1 WHERE id = ?", [code_id])
    candidate = code.strip()
    if len(candidate) != LENGTH or not candidate.isdigit():
        return False
    got_key, digest = _hash(ring, subscriber_id, candidate, purpose)
    if got_key != key_id or not hmac.compare_digest(digest, bytes(stored)):
        return False
    conn.execute("UPDATE confirmation_codes SET used_at = ? WHERE id = ?", [now, code_id])
    return True


def forget(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> None:
    conn.execute("DELETE FROM confirmation_codes WHERE subscriber_id = ?", [subscriber_id])


def purge(conn: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Delete code rows older than a day (no longer needed for the rate limit)."""
    rows = conn.execute(
        "DELETE FROM confirmation_codes WHERE created_at <= ? RETURNING id",
        [now - timedelta(days=1)],
    ).fetchall()
    return len(rows)
