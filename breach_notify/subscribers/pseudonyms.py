"""One pseudonym per (subscriber, key version still needed), so old breaches keep matching.

Needed key versions: the active pseudonym key and every ``breaches.key_id``. See the note at the
top of ``store/migrations/002_subscribers.sql`` for how the matcher joins them.
"""

from __future__ import annotations

import duckdb

from breach_notify.crypto import Keyring, Sealed


def needed_key_ids(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> list[str]:
    """The active key and every breach's key that the keyring still holds."""
    known = set(ring.key_ids["pseudonym"])
    used = {str(r[0]) for r in conn.execute("SELECT DISTINCT key_id FROM breaches").fetchall()}
    return sorted((used & known) | {ring.active_id("pseudonym")})


def write(conn: duckdb.DuckDBPyConnection, ring: Keyring, subscriber_id: str, e164: str) -> None:
    """Store the pseudonyms of a (new) subscriber under every needed key version."""
    have = {
        str(r[0])
        for r in conn.execute(
            "SELECT key_id FROM subscriber_pseudonyms WHERE subscriber_id = ?", [subscriber_id]
        ).fetchall()
    }
    rows = [
        [subscriber_id, kid, ring.pseudonymizer(kid).pseudonym(e164)]
        for kid in needed_key_ids(conn, ring)
        if kid not in have
    ]
    if rows:
        conn.executemany(
            "INSERT INTO subscriber_pseudonyms (subscriber_id, key_id, pseudonym) VALUES (?, ?, ?)",
            rows,
        )


def sync(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> int:
    """Add missing and drop unneeded pseudonym rows for every non-erased subscriber.

    Opens sealed numbers only for subscribers that lack a needed key version. Returns the number
    of rows added. Call it inside the caller's transaction, or on its own.
    """
    needed = needed_key_ids(conn, ring)
    conn.execute(
        "DELETE FROM subscriber_pseudonyms WHERE key_id NOT IN (SELECT unnest(?::VARCHAR[]))"
        " OR subscriber_id NOT IN (SELECT id FROM subscribers WHERE sealed IS NOT NULL)",
        [needed],
    )
    missing = conn.execute(
        "SELECT s.id, s.sealed, s.seal_key_id, list(sp.key_id) FILTER (sp.key_id IS NOT NULL)"
        " FROM subscribers s LEFT JOIN subscriber_pseudonyms sp ON sp.subscriber_id = s.id"
        " WHERE s.sealed IS NOT NULL GROUP BY ALL"
        " HAVING count(sp.key_id) < ?",
        [len(needed)],
    ).fetchall()
    sealer = ring.sealer()
    added: list[list[object]] = []
    for sid, blob, seal_kid, have in missing:
        e164 = sealer.open(Sealed(str(seal_kid), bytes(blob)), row_id=str(sid))
        for kid in needed:
            if kid not in (have or []):
                added.append([sid, kid, ring.pseudonymizer(kid).pseudonym(e164)])
    if added:
        conn.executemany(
            "INSERT INTO subscriber_pseudonyms (subscriber_id, key_id, pseudonym) VALUES (?, ?, ?)",
            added,
        )
    return len(added)


def forget(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> None:
    """Drop every pseudonym of a subscriber (erasure, expiry)."""
    conn.execute("DELETE FROM subscriber_pseudonyms WHERE subscriber_id = ?", [subscriber_id])
