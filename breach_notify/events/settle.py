"""The notice transitions the web's events make: delivery statuses in batches, and a callback
whose message id no notice holds settling the recipient's in-flight notice.

Note: these are the only writes to ``notices`` outside ``notify``; they belong with the outbox's
transitions and should move there. ``record_deliveries`` is ``delivery.record_delivery`` for a
whole batch in one statement (the same rules: a notice only moves forward; of several callbacks
for one message the furthest wins, the earliest among equals), because one statement per
callback cannot keep up with Twilio's pace.

When a create times out and the gateway's message list lags, the sender cannot tell whether the
message left; without this, the notice ends ``in_doubt`` or is sent again. The callback proves
it left: its ``To`` (journaled as pseudonyms) names the subscriber, and the notice to settle is
that subscriber's one attempted within :data:`WINDOW` before the callback and holding no gateway
id yet (``sending``, ``in_doubt``, or ``pending`` again after a timeout that looked unsent).

Note: this is the only transition on ``notices`` made outside ``notify``; it belongs with the
outbox's transitions and should move there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb

from breach_notify.notify.delivery import RANK, STATES

WINDOW = timedelta(minutes=15)
SKEW = timedelta(minutes=1)  # a callback accepted just before the attempt was stamped


def attach_unrecorded(
    conn: duckdb.DuckDBPyConnection, gateway_id: str, subscriber_ids: list[str], at: datetime
) -> str | None:
    """Give ``gateway_id`` to the in-flight notice it must belong to; the notice id, or None.

    The notice is left ``sending`` (or ``in_doubt``) with the id: the caller then records the
    callback's status with ``delivery.record_delivery``, which only moves it forward.
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
        (gid, STATES[status.strip().lower()], (code or "").strip() or None, at)
        for gid, status, code, at in callbacks
        if gid and status.strip().lower() in STATES
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
