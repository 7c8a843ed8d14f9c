"""Moving subscribers to a new key version after ``keys rotate``.

``seal``: every sealed number is opened under its own key and sealed under the active one.
``pseudonym``: every subscriber's pseudonym is recomputed from the sealed number under the active
key; pseudonyms under keys that breaches still use are kept (see ``pseudonyms``), so matches
against breaches hashed before the rotation are still found. Both are all-or-nothing and
idempotent: only rows not yet under the active key are touched, so a rerun finishes the job.
"""

from __future__ import annotations

import duckdb

from breach_notify.crypto import Keyring, Sealed
from breach_notify.settings import Settings
from breach_notify.store.db import session, transaction
from breach_notify.subscribers import pseudonyms


def apply(settings: Settings, ring: Keyring, purpose: str) -> int:
    """Re-seal or re-pseudonymise every subscriber under the active key; returns how many."""
    if purpose not in ("seal", "pseudonym"):
        return 0
    with session(settings) as conn, transaction(conn):
        return reseal(conn, ring) if purpose == "seal" else repseudonymise(conn, ring)


def reseal(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> int:
    sealer = ring.sealer()
    rows = conn.execute(
        "SELECT id, sealed, seal_key_id FROM subscribers"
        " WHERE sealed IS NOT NULL AND seal_key_id <> ?",
        [sealer.active],
    ).fetchall()
    for sid, blob, kid in rows:
        new = sealer.reseal(Sealed(str(kid), bytes(blob)), row_id=str(sid))
        conn.execute(
            "UPDATE subscribers SET sealed = ?, seal_key_id = ? WHERE id = ?",
            [new.blob, new.key_id, sid],
        )
    return len(rows)


def repseudonymise(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> int:
    sealer = ring.sealer()
    p = ring.pseudonymizer()
    rows = conn.execute(
        "SELECT id, sealed, seal_key_id FROM subscribers"
        " WHERE sealed IS NOT NULL AND pseudonym_key_id IS DISTINCT FROM ?",
        [p.key_id],
    ).fetchall()
    for sid, blob, kid in rows:
        e164 = sealer.open(Sealed(str(kid), bytes(blob)), row_id=str(sid))
        conn.execute(
            "UPDATE subscribers SET pseudonym = ?, pseudonym_key_id = ? WHERE id = ?",
            [p.pseudonym(e164), p.key_id, sid],
        )
    pseudonyms.sync(conn, ring)
    return len(rows)
