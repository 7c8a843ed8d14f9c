"""Match: active subscribers found in breaches become pending notices, one per pair.

Set-based SQL. A subscriber's pseudonym counts for a breach only under the breach's key id:
``subscribers.pseudonym`` under ``pseudonym_key_id``, or a row of ``subscriber_pseudonyms`` (one
per subscriber and key version still needed, kept by ``subscribers.pseudonyms.sync``, which
``match(..., keyring=…)`` and the ``match`` command run first). Re-running creates nothing new;
subscribers who join later are matched against every earlier breach; subscribers who are not
active (pending, opted out, erased) get no notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.notify import applier
from breach_notify.store.db import transaction
from breach_notify.subscribers import pseudonyms

_PAIRS = """
WITH sub AS (
    SELECT id AS subscriber_id, pseudonym_key_id AS key_id, pseudonym
    FROM subscribers
    WHERE status = 'active' AND pseudonym IS NOT NULL AND pseudonym_key_id IS NOT NULL
    UNION
    SELECT sp.subscriber_id, sp.key_id, sp.pseudonym
    FROM subscriber_pseudonyms sp JOIN subscribers s ON s.id = sp.subscriber_id
    WHERE s.status = 'active'
)
SELECT sub.subscriber_id, b.id AS breach_id, bit_or(bp.kinds)::USMALLINT AS kinds
FROM sub
JOIN breaches b ON b.key_id = sub.key_id
JOIN breach_pseudonyms bp ON bp.breach_id = b.id AND bp.pseudonym = sub.pseudonym
WHERE $breach IS NULL OR b.id = $breach
GROUP BY ALL
"""

_INSERT = f"""
INSERT INTO notices (id, subscriber_id, breach_id, state, kinds, created_at, updated_at)
SELECT gen_random_uuid()::VARCHAR, p.subscriber_id, p.breach_id, 'pending', p.kinds, now(), now()
FROM ({_PAIRS}) p
WHERE NOT EXISTS (
    SELECT 1 FROM notices n WHERE n.subscriber_id = p.subscriber_id AND n.breach_id = p.breach_id
)
"""


@dataclass(frozen=True)
class MatchReport:
    """``matched``: (subscriber, breach) pairs found; ``new_notices``: notices created now."""

    matched: int
    new_notices: int
    breach: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.matched, "new_notices": self.new_notices}
        if self.breach is not None:
            out["breach"] = self.breach
        return out


def match(
    conn: duckdb.DuckDBPyConnection, breach_id: str | None = None, keyring: Keyring | None = None
) -> MatchReport:
    """Create the missing pending notices (for one breach, or all); one transaction.

    With ``keyring``, subscribers' pseudonyms are first brought up to date under every breach's
    key id (``subscribers.pseudonyms.sync``, which opens sealed numbers only for subscribers that
    lack one); without it, match relies on them being current.
    """
    # The web's journal first: its opt-outs, confirmations and JOINs count.
    applier.drain(conn, keyring=keyring)
    if breach_id is not None:
        known = conn.execute("SELECT count(*) FROM breaches WHERE id = ?", [breach_id]).fetchone()
        if not known or not known[0]:
            raise BadInput(f"no breach {breach_id!r}; see 'breach-notify breaches list'")
    if keyring is not None:
        with transaction(conn):
            pseudonyms.sync(conn, keyring)
    params = {"breach": breach_id}
    with transaction(conn):
        row = conn.execute(f"SELECT count(*) FROM ({_PAIRS})", params).fetchone()
        matched = int(row[0]) if row else 0
        inserted = conn.execute(_INSERT, params).fetchone()
        new = int(inserted[0]) if inserted else 0
    return MatchReport(matched, new, breach_id)
