"""Shared by the subscriber, consent, rotation and webhook tests (not a test module)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.numbers import parse_number
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.subscribers import consent, registry

# Valid numbers of each kind (phonenumbers' own examples and neighbours).
GB_MOBILE = "+447400123456"
GB_MOBILE_2 = "+447400123457"
GB_MOBILE_3 = "+447911123456"
US_MOBILE = "+12015550123"  # FIXED_LINE_OR_MOBILE
DE_MOBILE = "+4915123456789"
GB_FIXED = "+442079460000"
ALL_NUMBERS = [GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, US_MOBILE, DE_MOBILE, GB_FIXED]

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def last_code(gateway: MemoryGateway) -> str:
    """The 6-digit code in the newest message the gateway took."""
    body = gateway.outbox[-1][0].body
    found = re.search(r"\b(\d{6})\b", body)
    assert found, "no code in the message"
    return found.group(1)


def snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Everything the consent side can change, for 'nothing changed' assertions."""
    tables = [
        "subscribers",
        "subscriber_events",
        "confirmation_codes",
        "notices",
        "subscriber_pseudonyms",
    ]
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def add_notice(
    conn: duckdb.DuckDBPyConnection,
    notice_id: str,
    subscriber_id: str,
    state: str,
    gateway_id: str | None = None,
    breach: str = "b1",
) -> None:
    conn.execute(
        "INSERT INTO notices (id, subscriber_id, breach_id, state, gateway_id)"
        " VALUES (?, ?, ?, ?, ?)",
        [notice_id, subscriber_id, breach, state, gateway_id],
    )


def notice_state(conn: duckdb.DuckDBPyConnection, notice_id: str) -> tuple[str, str | None]:
    row = conn.execute("SELECT state, error_code FROM notices WHERE id = ?", [notice_id]).fetchone()
    assert row is not None
    return str(row[0]), row[1]


def opted_out_an_hour_ago(conn: duckdb.DuckDBPyConnection, keyring: Keyring, number: str) -> str:
    """An active subscriber (since yesterday) who texted STOP an hour ago; their id."""
    sid = registry.create(
        conn,
        keyring,
        parse_number(number),
        status="active",
        language="en",
        now=datetime.now(UTC) - timedelta(days=1),
    )
    consent.opt_out(conn, sid, "sms", datetime.now(UTC) - timedelta(hours=1))
    return sid
