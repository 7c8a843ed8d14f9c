"""Delivery status from the gateway's callbacks, applied to the ``notices`` outbox.

Callbacks arrive more than once and out of order, so a notice only ever moves forward:
``sending | in_doubt`` → ``sent`` → ``undelivered | failed`` → ``delivered``. A delivered notice
never goes back; a repeated callback changes nothing. The sender owns every other transition.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

# Provider status → notice state.
STATES = {
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
# How far along a notice is; states not listed (pending, suppressed) are never touched here.
RANK = {"sending": 0, "in_doubt": 0, "sent": 1, "undelivered": 2, "failed": 2, "delivered": 3}
OPTED_OUT_CODE = "21610"


def record_delivery(
    conn: duckdb.DuckDBPyConnection,
    gateway_id: str,
    status: str,
    error_code: str | None,
    now: datetime | None = None,
) -> bool:
    """Apply one status callback; True when the notice changed. Unknown ids and statuses: False."""
    target = STATES.get(status.strip().lower())
    if target is None or not gateway_id:
        return False
    rank = RANK[target]
    code = (error_code or "").strip() or None
    when = now or datetime.now(UTC)
    changed = conn.execute(
        "UPDATE notices SET state = ?,"
        " error_code = CASE WHEN ? IN ('undelivered', 'failed') THEN coalesce(?, error_code)"
        "  ELSE error_code END,"
        " sent_at = coalesce(sent_at, ?), updated_at = ?,"
        " delivered_at = CASE WHEN ? = 'delivered' THEN coalesce(delivered_at, ?)"
        "  ELSE delivered_at END"
        " WHERE gateway_id = ? AND CASE state WHEN 'sending' THEN 0 WHEN 'in_doubt' THEN 0"
        "  WHEN 'sent' THEN 1 WHEN 'undelivered' THEN 2 WHEN 'failed' THEN 2"
        "  WHEN 'delivered' THEN 3 END < ?"
        " RETURNING id",
        [target, target, code, when, when, target, when, gateway_id, rank],
    ).fetchall()
    return bool(changed)


def subscriber_of(conn: duckdb.DuckDBPyConnection, gateway_id: str) -> str | None:
    """The subscriber a gateway message id was sent to, if it is a notice."""
    row = conn.execute(
        "SELECT subscriber_id FROM notices WHERE gateway_id = ? LIMIT 1", [gateway_id]
    ).fetchone()
    return None if row is None else str(row[0])
