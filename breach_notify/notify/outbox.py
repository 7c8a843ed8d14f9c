"""The outbox: every change of a notice's state happens here, and nowhere else in the package.

A notice is ``pending`` → ``sending`` (claimed, committed *before* the request) → ``sent`` (with
the gateway's id) → ``delivered | undelivered | failed`` (the gateway's callbacks). Besides:
``failed`` (a permanent error), ``suppressed`` (opted out or erased before sending), ``in_doubt``
(a crash between request and record, and the gateway cannot tell; back to ``pending`` only when
the operator accepts a possible duplicate), ``undecryptable`` (the number did not open: its seal
key is missing or wrong; back to ``pending`` once it opens). A quiet-hours deferral leaves a
notice ``pending``. The schema's CHECK (migration 005) lists the same states as :data:`STATES`.

Delivery callbacks arrive more than once and out of order, so from ``sending`` on a notice only
moves forward along :data:`RANK`; a repeated or late callback changes nothing. Every function
here works in the caller's transaction when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb

from breach_notify.crypto import InvalidToken, Keyring, Sealed
from breach_notify.store.db import transaction
from breach_notify.subscribers import erasure

STATES = (
    "pending",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "suppressed",
    "in_doubt",
    "undecryptable",
)
# Provider status (a callback's or a lookup's) → notice state.
PROVIDER_STATES = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# How far along a notice is; states not listed (pending, suppressed) are never touched by the
# gateway's reports.
RANK = {"sending": 0, "in_doubt": 0, "sent": 1, "undelivered": 2, "failed": 2, "delivered": 3}
_RANK_SQL = "CASE state " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in RANK.items()) + " END"
UNSENT = ("pending", "sending", "in_doubt", "undecryptable")
OPTED_OUT_CODE = "21610"

_IDS = "id IN (SELECT unnest($ids::VARCHAR[]))"


def _changed(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.fetchone()
    return int(row[0]) if row else 0


# -- the sender's transitions -----------------------------------------------------------------


def claim(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> set[str]:
    """``pending`` → ``sending`` with the attempt's time; the ids actually claimed."""
    rows = conn.execute(
        "UPDATE notices SET state = 'sending', attempt_at = now(), attempts = attempts + 1,"
        f" updated_at = now() WHERE {_IDS} AND state = 'pending' RETURNING id",
        {"ids": list(ids)},
    ).fetchall()
    return {str(r[0]) for r in rows}


def mark_sent(
    conn: duckdb.DuckDBPyConnection,
    ids: Sequence[str],
    gateway_ids: Sequence[str],
    segments: Sequence[int],
) -> None:
    """``sending`` → ``sent`` with the gateway's message id and the segments billed."""
    if not ids:
        return
    conn.execute(
        "UPDATE notices SET state = 'sent', gateway_id = v.gid, segments = v.seg,"
        " sent_at = now(), error_code = NULL, updated_at = now()"
        " FROM (SELECT unnest($ids::VARCHAR[]) AS id, unnest($gids::VARCHAR[]) AS gid,"
        "       unnest($segs::INTEGER[]) AS seg) v"
        " WHERE notices.id = v.id AND notices.state = 'sending'",
        {"ids": list(ids), "gids": list(gateway_ids), "segs": list(segments)},
    )


def _close_with_code(
    conn: duckdb.DuckDBPyConnection, state: str, ids: Sequence[str], codes: Sequence[str | None]
) -> None:
    if not ids:
        return
    conn.execute(
        f"UPDATE notices SET state = '{state}', error_code = v.code, updated_at = now()"
        " FROM (SELECT unnest($ids::VARCHAR[]) AS id, unnest($codes::VARCHAR[]) AS code) v"
        " WHERE notices.id = v.id AND notices.state = 'sending'",
        {"ids": list(ids), "codes": list(codes)},
    )


def mark_failed(
    conn: duckdb.DuckDBPyConnection, ids: Sequence[str], codes: Sequence[str | None]
) -> None:
    """``sending`` → ``failed`` (a permanent error, or retries used up) with the error code."""
    _close_with_code(conn, "failed", ids, codes)


def mark_opted_out(
    conn: duckdb.DuckDBPyConnection, ids: Sequence[str], codes: Sequence[str | None]
) -> None:
    """``sending`` → ``suppressed``: the carrier says the recipient opted out."""
    _close_with_code(conn, "suppressed", ids, codes)


def _move(conn: duckdb.DuckDBPyConnection, ids: Sequence[str], old: str, new: str) -> int:
    """``old`` → ``new`` for the notices ``ids`` still in ``old``; how many changed."""
    if not ids:
        return 0
    return _changed(
        conn.execute(
            f"UPDATE notices SET state = $new, updated_at = now() WHERE {_IDS} AND state = $old",
            {"ids": list(ids), "old": old, "new": new},
        )
    )


def mark_in_doubt(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> int:
    """``sending`` → ``in_doubt``: the request may have gone and the gateway cannot tell."""
    return _move(conn, ids, "sending", "in_doubt")


def release(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> int:
    """``sending`` → ``pending``: surely not sent (not reached, or the gateway has no record)."""
    return _move(conn, ids, "sending", "pending")


def suppress(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> int:
    """``pending`` → ``suppressed`` (the subscriber is no longer active); how many changed."""
    return _move(conn, ids, "pending", "suppressed")


def settle(
    conn: duckdb.DuckDBPyConnection, notice_id: str, gateway_id: str, sent_at: datetime, status: str
) -> None:
    """``sending`` → what the gateway's record says (found after a crash).

    The gateway may know more than "sent" by now: its callbacks had no id to go to.
    """
    state = PROVIDER_STATES.get(status.lower(), "sent")
    conn.execute(
        "UPDATE notices SET state = ?, gateway_id = ?, sent_at = ?, updated_at = now(),"
        " delivered_at = CASE WHEN ? = 'delivered' THEN now() END"
        " WHERE id = ? AND state = 'sending'",
        [state, gateway_id, sent_at, state, notice_id],
    )


def release_in_doubt(conn: duckdb.DuckDBPyConnection) -> int:
    """``in_doubt`` → ``pending`` for all: the operator accepts a possible duplicate."""
    return _changed(
        conn.execute(
            "UPDATE notices SET state = 'pending', updated_at = now() WHERE state = 'in_doubt'"
        )
    )


def mark_undecryptable(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> int:
    """``pending`` → ``undecryptable``: the subscriber's number did not open; how many changed."""
    return _move(conn, ids, "pending", "undecryptable")


def retry_undecryptable(conn: duckdb.DuckDBPyConnection, keyring: Keyring) -> int:
    """``undecryptable`` → ``pending`` for every notice whose number opens with ``keyring`` now,
    or that no longer needs opening (its subscriber is not active or was erased: the sender then
    suppresses it). Returns how many. Call it once the seal key is back (``send`` does, first)."""
    rows = conn.execute(
        "SELECT DISTINCT n.subscriber_id, s.status, s.sealed, s.seal_key_id FROM notices n"
        " LEFT JOIN subscribers s ON s.id = n.subscriber_id WHERE n.state = 'undecryptable'"
    ).fetchall()
    if not rows:
        return 0
    sealer = keyring.sealer()
    ready: list[str] = []
    for sid, status, sealed, key_id in rows:
        if status == "active" and sealed is not None and key_id is not None:
            try:
                sealer.open(Sealed(str(key_id), bytes(sealed)), str(sid))
            except InvalidToken:
                continue
        ready.append(str(sid))
    if not ready:
        return 0
    return _changed(
        conn.execute(
            "UPDATE notices SET state = 'pending', updated_at = now() WHERE state = 'undecryptable'"
            " AND subscriber_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": ready},
        )
    )


def undecryptable_by_key(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Seal key id → how many ``undecryptable`` notices wait for it."""
    rows = conn.execute(
        "SELECT coalesce(s.seal_key_id, '?'), count(*) FROM notices n"
        " LEFT JOIN subscribers s ON s.id = n.subscriber_id WHERE n.state = 'undecryptable'"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(kid): int(n) for kid, n in rows}


def left(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many notices are still ``pending``, ``in_doubt`` or ``sending`` (only those present)."""
    rows = conn.execute(
        "SELECT state, count(*) FROM notices"
        " WHERE state IN ('pending', 'in_doubt', 'sending') GROUP BY state"
    ).fetchall()
    return {str(state): int(n) for state, n in rows}


# -- the gateway's delivery callbacks ---------------------------------------------------------


def record_delivery(
    conn: duckdb.DuckDBPyConnection,
    gateway_id: str,
    status: str,
    error_code: str | None,
    now: datetime | None = None,
) -> bool:
    """Apply one status callback; True when the notice changed. Unknown ids and statuses: False."""
    target = PROVIDER_STATES.get(status.strip().lower())
    if target is None or not gateway_id:
        return False
    code = (error_code or "").strip() or None
    when = now or datetime.now(UTC)
    changed = conn.execute(
        "UPDATE notices SET state = ?,"
        " error_code = CASE WHEN ? IN ('undelivered', 'failed') THEN coalesce(?, error_code)"
        "  ELSE error_code END,"
        " sent_at = coalesce(sent_at, ?), updated_at = ?,"
        " delivered_at = CASE WHEN ? = 'delivered' THEN coalesce(delivered_at, ?)"
        "  ELSE delivered_at END"
        f" WHERE gateway_id = ? AND {_RANK_SQL} < ?"
        " RETURNING id",
        [target, target, code, when, when, target, when, gateway_id, RANK[target]],
    ).fetchall()
    return bool(changed)


def subscriber_of(conn: duckdb.DuckDBPyConnection, gateway_id: str) -> str | None:
    """The subscriber a gateway message id was sent to, if it is a notice."""
    row = conn.execute(
        "SELECT subscriber_id FROM notices WHERE gateway_id = ? LIMIT 1", [gateway_id]
    ).fetchone()
    return None if row is None else str(row[0])


# -- erasure ----------------------------------------------------------------------------------


def cancel_unsent(conn: duckdb.DuckDBPyConnection, subscriber_id: str, now: datetime) -> int:
    """``pending | sending | in_doubt | undecryptable`` → ``suppressed`` for one subscriber."""
    rows = conn.execute(
        "UPDATE notices SET state = 'suppressed', updated_at = ?"
        " WHERE subscriber_id = ? AND state IN (SELECT unnest(?::VARCHAR[])) RETURNING id",
        [now, subscriber_id, list(UNSENT)],
    ).fetchall()
    return len(rows)


def erase(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime | None = None
) -> int:
    """Erase a subscriber (``subscribers.erasure``) and cancel their unsent notices, together.

    Returns how many unsent notices were suppressed.
    """
    now = now or datetime.now(UTC)
    with transaction(conn):
        erasure.erase(conn, subscriber_id, source, now)
        return cancel_unsent(conn, subscriber_id, now)


# -- the web's events: delivery statuses in batches, callbacks that settle in-flight notices ----
#
# ``record_deliveries`` is ``record_delivery`` for a whole batch in one statement (same rules: a
# notice only moves forward; of several callbacks for one message the furthest wins, the
# earliest among equals): one statement per callback cannot keep up with Twilio's pace.
#
# When a create times out and the gateway's message list lags, the sender cannot tell whether
# the message left; the callback proves it did. Its ``To`` (journaled as pseudonyms) names the
# subscriber, and ``attach_unrecorded`` settles that subscriber's notice attempted within
# ``WINDOW`` before the callback that holds no gateway id yet.

WINDOW = timedelta(minutes=15)
SKEW = timedelta(minutes=1)  # a callback accepted just before the attempt was stamped


def attach_unrecorded(
    conn: duckdb.DuckDBPyConnection, gateway_id: str, subscriber_ids: list[str], at: datetime
) -> str | None:
    """Give ``gateway_id`` to the in-flight notice it must belong to; the notice id, or None.

    The notice is left ``sending`` (or ``in_doubt``) with the id: the caller then records the
    callback's status with ``record_delivery``, which only moves it forward.
    """
    if not gateway_id or not subscriber_ids:
        return None
    known = conn.execute(
        "SELECT 1 FROM notices WHERE gateway_id = ? LIMIT 1", [gateway_id]
    ).fetchone()
    if known is not None:
        return None
    row = conn.execute(
        "UPDATE notices SET gateway_id = $gid, updated_at = $at,"
        " state = CASE WHEN state = 'pending' THEN 'sending' ELSE state END"
        " WHERE id = ("
        "  SELECT id FROM notices"
        "  WHERE subscriber_id IN (SELECT unnest($subs::VARCHAR[])) AND gateway_id IS NULL"
        "   AND state IN ('sending', 'in_doubt', 'pending') AND attempt_at IS NOT NULL"
        "   AND attempt_at BETWEEN $earliest AND $latest"
        "  ORDER BY attempt_at, id LIMIT 1)"
        " RETURNING id",
        {
            "gid": gateway_id,
            "at": at,
            "subs": subscriber_ids,
            "earliest": at - WINDOW,
            "latest": at + SKEW,
        },
    ).fetchone()
    return None if row is None else str(row[0])


_RANK_OF_STATE = (
    "CASE notices.state WHEN 'sending' THEN 0 WHEN 'in_doubt' THEN 0 WHEN 'sent' THEN 1"
    " WHEN 'undelivered' THEN 2 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 END"
)
# Per message: the furthest status (the earliest of equals), and — as one by one would leave
# it — the error code of a failure that came before the delivery receipt.
_RECORD = f"""
UPDATE notices SET
    state = best.target,
    error_code = CASE
        WHEN best.target IN ('undelivered', 'failed') THEN coalesce(best.code, notices.error_code)
        WHEN best.early_failure AND {_RANK_OF_STATE} < 2
            THEN coalesce(best.early_code, notices.error_code)
        ELSE notices.error_code END,
    sent_at = coalesce(notices.sent_at, best.first_at),
    updated_at = best.last_at,
    delivered_at = CASE WHEN best.target = 'delivered'
        THEN coalesce(notices.delivered_at, best.target_at) ELSE notices.delivered_at END
FROM (
    SELECT gid,
           first(target ORDER BY rnk DESC, ord) AS target,
           max(rnk) AS rnk,
           first(code ORDER BY rnk DESC, ord) AS code,
           first(seen ORDER BY rnk DESC, ord) AS target_at,
           bool_or(rnk = 2 AND ord < delivered_ord) AS early_failure,
           first(code ORDER BY ord) FILTER (WHERE rnk = 2 AND ord < delivered_ord) AS early_code,
           min(seen) AS first_at,
           max(seen) AS last_at
    FROM (
        SELECT *, coalesce(min(ord) FILTER (WHERE rnk = 3) OVER (PARTITION BY gid), 1 << 30)
                  AS delivered_ord
        FROM (SELECT unnest($gids::VARCHAR[]) AS gid, unnest($targets::VARCHAR[]) AS target,
                     unnest($ranks::INTEGER[]) AS rnk, unnest($codes::VARCHAR[]) AS code,
                     unnest($ats::TIMESTAMPTZ[]) AS seen, unnest($ords::INTEGER[]) AS ord)
    )
    GROUP BY gid
) best
WHERE notices.gateway_id = best.gid AND {_RANK_OF_STATE} < best.rnk
RETURNING notices.gateway_id
"""


def record_deliveries(
    conn: duckdb.DuckDBPyConnection,
    callbacks: Sequence[tuple[str, str, str | None, datetime]],
) -> set[str]:
    """Apply ``(gateway id, status, error code, when)`` callbacks, in order; the ids of the
    notices that changed. Unknown statuses and ids change nothing."""
    rows = [
        (gid, PROVIDER_STATES[status.strip().lower()], (code or "").strip() or None, at)
        for gid, status, code, at in callbacks
        if gid and status.strip().lower() in PROVIDER_STATES
    ]
    if not rows:
        return set()
    changed = conn.execute(
        _RECORD,
        {
            "gids": [r[0] for r in rows],
            "targets": [r[1] for r in rows],
            "ranks": [RANK[r[1]] for r in rows],
            "codes": [r[2] for r in rows],
            "ats": [r[3] for r in rows],
            "ords": list(range(len(rows))),
        },
    ).fetchall()
    return {str(r[0]) for r in changed}
