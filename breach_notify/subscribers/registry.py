"""Subscriber rows: create, find by number, read. Numbers are sealed and pseudonymised here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import duckdb
import phonenumbers

from breach_notify.crypto import Keyring, Sealed
from breach_notify.errors import BadInput
from breach_notify.numbers import E164
from breach_notify.subscribers import pseudonyms

STATUSES = ("pending", "active", "opted_out", "erased")


@dataclass(frozen=True)
class Subscriber:
    """A row as the rest of the package sees it (no number: open ``sealed`` when needed)."""

    id: str
    status: str
    language: str
    confirmed: bool


def new_id() -> str:
    """A random identifier that says nothing about the number."""
    return "sub_" + secrets.token_hex(10)


def require_sms_capable(number: E164) -> None:
    """Refuse numbers that cannot receive SMS (fixed lines, pagers, …) with a clear message."""
    if number.can_receive_sms:
        return
    kind = phonenumbers.number_type(number.parsed)
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        raise BadInput(
            "that is a fixed-line number, which cannot receive SMS; give a mobile number"
        )
    raise BadInput("that kind of number cannot receive SMS here; give a mobile number")


def check_language(language: str) -> str:
    """A lower-case language tag such as ``en`` or ``pt-br``."""
    tag = language.strip().lower().replace("_", "-")
    head, _, tail = tag.partition("-")
    if not (2 <= len(head) <= 3 and head.isalpha() and (not tail or tail.isalnum())):
        raise BadInput("language must be a tag such as 'en' or 'pt-br'")
    return tag


def find(conn: duckdb.DuckDBPyConnection, ring: Keyring, number: E164) -> Subscriber | None:
    """The non-erased subscriber holding ``number``, whatever key version it is under."""
    key_ids = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT pseudonym_key_id FROM subscribers"
            " WHERE pseudonym IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    known = set(ring.key_ids["pseudonym"])
    for key_id in key_ids:
        if key_id not in known:
            continue
        pseudonym = ring.pseudonymizer(key_id).pseudonym(number.value)
        row = conn.execute(
            "SELECT id, status, language, confirmed_at IS NOT NULL FROM subscribers"
            " WHERE pseudonym_key_id = ? AND pseudonym = ? AND status <> 'erased' LIMIT 1",
            [key_id, pseudonym],
        ).fetchone()
        if row is not None:
            return Subscriber(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))
    return None


def get(conn: duckdb.DuckDBPyConnection, subscriber_id: str) -> Subscriber | None:
    row = conn.execute(
        "SELECT id, status, language, confirmed_at IS NOT NULL FROM subscribers WHERE id = ?",
        [subscriber_id],
    ).fetchone()
    return None if row is None else Subscriber(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))


def create(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    number: E164,
    *,
    status: str,
    language: str,
    now: datetime,
    consent_source: str | None = None,
) -> str:
    """Insert a subscriber (sealed + pseudonymised) and its pseudonyms; returns the new id."""
    sid = new_id()
    sealed = ring.sealer().seal(number.value, row_id=sid)
    p = ring.pseudonymizer()
    conn.execute(
        "INSERT INTO subscribers (id, status, pseudonym, pseudonym_key_id, sealed, seal_key_id,"
        " language, confirmed_at, consent_source, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            sid,
            status,
            p.pseudonym(number.value),
            p.key_id,
            sealed.blob,
            sealed.key_id,
            language,
            now if status == "active" else None,
            consent_source,
            now,
            now,
        ],
    )
    pseudonyms.write(conn, ring, sid, number.value)
    return sid


def open_number(conn: duckdb.DuckDBPyConnection, ring: Keyring, subscriber_id: str) -> E164 | None:
    """The plaintext number of a subscriber, for the send step only; None once erased."""
    row = conn.execute(
        "SELECT sealed, seal_key_id FROM subscribers WHERE id = ? AND sealed IS NOT NULL",
        [subscriber_id],
    ).fetchone()
    if row is None:
        return None
    return E164(ring.sealer().open(Sealed(str(row[1]), bytes(row[0])), row_id=subscriber_id))
