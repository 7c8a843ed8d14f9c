"""Consent that lasts: numbers that opted out or were erased stay out of operator imports.

An entry is a pseudonym per key version (HMAC only: no sealed number, no subscriber id), written
when a subscriber opts out or is erased. ``subscribers import`` skips numbers with an entry and
counts them as suppressed. Only the person's own fresh double opt-in (a code typed on the sign-up
page or sent back with ``subscribers confirm``, a YES or START from the number itself) lifts it.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.numbers import E164

REASONS = ("opted_out", "erased")


def keep(conn: duckdb.DuckDBPyConnection, subscriber_id: str, reason: str, now: datetime) -> int:
    """Copy every pseudonym a subscriber has (all key versions) into the suppression list.

    Call before erasure deletes them. Returns how many entries exist for the subscriber now.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    rows = conn.execute(
        "SELECT pseudonym_key_id, pseudonym FROM subscribers"
        " WHERE id = ? AND pseudonym IS NOT NULL"
        " UNION SELECT key_id, pseudonym FROM subscriber_pseudonyms WHERE subscriber_id = ?",
        [subscriber_id, subscriber_id],
    ).fetchall()
    if rows:
        conn.executemany(
            "INSERT INTO suppressions (key_id, pseudonym, reason, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key_id, pseudonym) DO UPDATE SET reason = excluded.reason",
            [[str(kid), bytes(p), reason, now] for kid, p in rows],
        )
    return len(rows)


def _key_ids(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> list[str]:
    known = set(ring.key_ids["pseudonym"])
    used = [str(r[0]) for r in conn.execute("SELECT DISTINCT key_id FROM suppressions").fetchall()]
    return sorted(k for k in used if k in known)


def suppressed(conn: duckdb.DuckDBPyConnection, ring: Keyring, numbers: list[E164]) -> set[str]:
    """The E.164 texts among ``numbers`` that hold a suppression entry (under any key known)."""
    found: set[str] = set()
    for kid in _key_ids(conn, ring):
        p = ring.pseudonymizer(kid)
        by_pseudonym = {p.pseudonym(n.value): n.value for n in numbers if n.value not in found}
        if not by_pseudonym:
            break
        rows = conn.execute(
            "SELECT pseudonym FROM suppressions WHERE key_id = ?"
            " AND pseudonym IN (SELECT unnest(?::BLOB[]))",
            [kid, list(by_pseudonym)],
        ).fetchall()
        found |= {by_pseudonym[bytes(r[0])] for r in rows}
    return found


def is_suppressed(conn: duckdb.DuckDBPyConnection, ring: Keyring, number: E164) -> bool:
    return bool(suppressed(conn, ring, [number]))


def lift_number(conn: duckdb.DuckDBPyConnection, ring: Keyring, number: E164) -> int:
    """Delete the entries of ``number`` (its owner confirmed again); returns how many."""
    removed = 0
    for kid in _key_ids(conn, ring):
        removed += len(
            conn.execute(
                "DELETE FROM suppressions WHERE key_id = ? AND pseudonym = ? RETURNING key_id",
                [kid, ring.pseudonymizer(kid).pseudonym(number.value)],
            ).fetchall()
        )
    return removed


def lift(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> int:
    """Delete the entries matching any pseudonym of a (confirmed again) subscriber."""
    rows = conn.execute(
        "DELETE FROM suppressions WHERE (key_id, pseudonym) IN ("
        " SELECT pseudonym_key_id, pseudonym FROM subscribers"
        " WHERE id = ? AND pseudonym IS NOT NULL"
        " UNION SELECT key_id, pseudonym FROM subscriber_pseudonyms WHERE subscriber_id = ?)"
        " RETURNING key_id",
        [subscriber_id, subscriber_id],
    ).fetchall()
    return len(rows)


def count(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT count(*) FROM suppressions").fetchone()
    return int(row[0]) if row else 0
