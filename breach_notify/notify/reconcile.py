"""Finding a message at the gateway: what became of a request that may or may not have gone.

A notice left ``sending`` by a crash was claimed, and its request may have reached the gateway.
Before anything is sent, each one is looked up: found → the state the gateway reports (``sent``
or later); certainly absent → ``pending``; the gateway cannot tell → ``in_doubt``, resent only
when the operator accepts a possible duplicate. The same lookup settles, before any retry, a
request that failed in a way that may have sent it (a read timeout).

A gateway that knows notices by id (``NoticeLookup``) answers for certain; otherwise messages
are looked up by recipient, and a record counts when it is recent, its text (if reported) is
this notice's, and no other notice claims its id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from breach_notify.notify import outbox
from breach_notify.numbers import E164
from breach_notify.sms.errors import GatewayError
from breach_notify.sms.gateway import Gateway, NoticeLookup, SentRecord
from breach_notify.store.db import LazyConnection

log = logging.getLogger(__name__)

# How far the gateway's clock may be behind ours: a lookup starts this long before the attempt.
LOOKUP_SKEW = timedelta(minutes=2)

# Opens a subscriber's number: (subscriber id, sealed blob, seal key id) → number or None.
NumberOf = Callable[[str, bytes | None, str | None], E164 | None]
# The text a notice carries: (language, breach title, kinds) → text.
TextOf = Callable[[str | None, str | None, int | None], str]

_SENDING = """
SELECT n.id, n.subscriber_id, n.attempt_at, n.kinds, s.sealed, s.seal_key_id, s.language, b.title
FROM notices n
LEFT JOIN subscribers s ON s.id = n.subscriber_id
LEFT JOIN breaches b ON b.id = n.breach_id
WHERE n.state = 'sending'
ORDER BY n.attempt_at, n.id
"""


@dataclass
class Settled:
    """``reconciled``: ``sending`` notices settled; ``in_doubt``: how many became in doubt."""

    reconciled: int = 0
    in_doubt: int = 0


def settle_sending(
    store: LazyConnection,
    gateway: Gateway,
    number_of: NumberOf,
    text_of: TextOf,
    hold_seconds: float,
) -> Settled:
    """Settle every ``sending`` notice left by an earlier run; call before sending anything.

    The store is closed whenever it was held ``hold_seconds``: lookups are network calls, and
    the webhooks must get in meanwhile. A notice the gateway cannot be asked about now (a
    gateway error) stays ``sending`` for the next run.
    """
    settled = Settled()
    rows = store.get().execute(_SENDING).fetchall()
    for nid, sid, attempt_at, kinds, sealed, seal_kid, language, title in rows:
        to = number_of(sid, sealed, seal_kid)
        body = text_of(language, title, kinds)
        try:
            found = find_sent(store.get(), gateway, nid, to, attempt_at, body)
        except GatewayError:
            log.warning("could not reconcile a notice with the gateway; it stays 'sending'")
            continue
        conn = store.get()
        if isinstance(found, SentRecord):
            outbox.settle(conn, nid, found.gateway_id, found.created_at, found.status)
        elif found is False:
            outbox.release(conn, [nid])
        else:
            outbox.mark_in_doubt(conn, [nid])
            settled.in_doubt += 1
        settled.reconciled += 1
        if store.held_for() > hold_seconds:
            store.close()
    return settled


def find_sent(
    conn: duckdb.DuckDBPyConnection,
    gateway: Gateway,
    notice_id: str,
    to: E164 | None,
    attempted_at: datetime | None,
    body: str,
    taken: Iterable[str] = (),
) -> SentRecord | bool | None:
    """The gateway's record of this notice; False when surely not sent; None when unknown.

    ``attempted_at`` is when the request started (our clock); messages created more than
    ``LOOKUP_SKEW`` before it are not this notice's. ``taken`` holds gateway ids sent in this run
    but not yet recorded in the store.
    """
    if isinstance(gateway, NoticeLookup):
        rec = gateway.sent_notice(notice_id)
        return rec if rec is not None else False
    if to is None or attempted_at is None:
        return None
    since = attempted_at - LOOKUP_SKEW
    records = gateway.lookup(to, since)
    if records is None:
        return None
    taken = set(taken)
    for rec in sorted(records, key=lambda r: r.created_at):
        if rec.created_at < since:
            continue
        if rec.body is not None and rec.body != body:
            continue
        if rec.gateway_id in taken:
            continue
        claimed = conn.execute(
            "SELECT count(*) FROM notices WHERE gateway_id = ? AND id <> ?",
            [rec.gateway_id, notice_id],
        ).fetchone()
        if claimed and claimed[0]:
            continue
        return rec
    return False
