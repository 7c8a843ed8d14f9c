"""Leaving by code (the web "Stop alerts" page): a stop code to the number, then the opt-out.

The code is bound to its purpose (``codes.STOP``), so it cannot confirm a subscription. Only a
pending or active subscriber gets one; the caller answers the same whatever happened.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.numbers import E164
from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, consent, events, registry
from breach_notify.subscribers.optin import Pending


def request_stop(
    conn: duckdb.DuckDBPyConnection, ring: Keyring, number: E164, *, source: str, now: datetime
) -> Pending | None:
    """A stop code for a pending or active subscriber; None otherwise (or when rate-limited)."""
    with transaction(conn):
        sub = registry.find(conn, ring, number)
        if sub is None or sub.status not in ("pending", "active"):
            return None
        code = codes.issue(conn, ring, sub.id, now, purpose=codes.STOP)
        if code is None:
            events.record(conn, sub.id, "code_rate_limited", source, now)
            return None
        events.record(conn, sub.id, "stop_code_issued", source, now)
    return Pending(sub.id, number, code, sub.language)


def confirm_stop(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    number: E164,
    code: str,
    *,
    source: str,
    now: datetime,
) -> bool:
    """Opt out when ``code`` is the number's live stop code; every try counts as an attempt."""
    with transaction(conn):
        sub = registry.find(conn, ring, number)
        if sub is None or sub.status not in ("pending", "active"):
            return False
        if not codes.verify(conn, ring, sub.id, code, now, purpose=codes.STOP):
            events.record(conn, sub.id, "stop_failed", source, now)
            return False
        consent.opt_out(conn, sub.id, source, now)
    return True
