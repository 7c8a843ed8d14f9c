"""A status callback whose message id no notice holds settles the recipient's in-flight notice.

When a create times out and the gateway's message list lags, the sender cannot tell whether the
message left; without this, the notice ends ``in_doubt`` or is sent again. The callback proves
it left: its ``To`` (journaled as pseudonyms) names the subscriber, and the notice to settle is
that subscriber's one attempted within :data:`WINDOW` before the callback and holding no gateway
id yet (``sending``, ``in_doubt``, or ``pending`` again after a timeout that looked unsent).

Note: this is the only transition on ``notices`` made outside ``notify``; it belongs with the
outbox's transitions and should move there.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

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
