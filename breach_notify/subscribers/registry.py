"""Subscriber rows: create, find by number, read. Numbers are sealed and pseudonymised here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import duckdb
import phonenumbers
import pyarrow as pa

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


def check_region(region: str | None) -> str | None:
    """An upper-case region code that ``phonenumbers`` knows (``GB``), or None."""
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise BadInput(f"unknown region {region!r}; give a two-letter code such as GB or DE")
    return code


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


def find_by_pseudonyms(
    conn: duckdb.DuckDBPyConnection, candidates: list[dict[str, bytes]]
) -> list[Subscriber | None]:
    """For each ``key id → pseudonym`` dict (a number as the web's journal holds it), the
    non-erased subscriber holding one of them, in one query."""
    keys: dict[str, list[object]] = {"i": [], "kid": [], "p": []}
    for i, by_key in enumerate(candidates):
        for kid, pseudonym in by_key.items():
            keys["i"].append(i)
            keys["kid"].append(kid)
            keys["p"].append(pseudonym)
    found: list[Subscriber | None] = [None] * len(candidates)
    if not keys["i"]:
        return found
    rows = conn.execute(
        "SELECT c.i, s.id, s.status, s.language, s.confirmed_at IS NOT NULL"
        " FROM (SELECT unnest($i::INTEGER[]) AS i, unnest($kid::VARCHAR[]) AS kid,"
        "       unnest($p::BLOB[]) AS p) c"
        " JOIN subscribers s ON s.pseudonym_key_id = c.kid AND s.pseudonym = c.p"
        " WHERE s.status <> 'erased' ORDER BY c.i, c.kid",
        keys,
    ).fetchall()
    for i, sid, status, language, confirmed in rows:
        if found[i] is None:
            found[i] = Subscriber(str(sid), str(status), str(language), bool(confirmed))
    return found


def find_many(
    conn: duckdb.DuckDBPyConnection, ring: Keyring, numbers: list[E164]
) -> dict[str, Subscriber]:
    """``find`` for many numbers at once: E.164 text → subscriber, for those that exist."""
    known = set(ring.key_ids["pseudonym"])
    rows = conn.execute(
        "SELECT pseudonym_key_id, pseudonym, id, status, language, confirmed_at IS NOT NULL"
        " FROM subscribers WHERE pseudonym IS NOT NULL AND status <> 'erased'"
    ).fetchall()
    index: dict[str, dict[bytes, Subscriber]] = {}
    for kid, pseudonym, sid, status, language, confirmed in rows:
        if kid in known:
            index.setdefault(str(kid), {})[bytes(pseudonym)] = Subscriber(
                str(sid), str(status), str(language), bool(confirmed)
            )
    found: dict[str, Subscriber] = {}
    for kid, by_pseudonym in index.items():
        p = ring.pseudonymizer(kid)
        for number in numbers:
            sub = by_pseudonym.get(p.pseudonym(number.value))
            if sub is not None:
                found[number.value] = sub
    return found


def create_many(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    items: list[tuple[E164, str]],
    *,
    status: str,
    now: datetime,
    consent_source: str | None = None,
) -> list[str]:
    """``create`` for many ``(number, language)`` pairs in a few set-based inserts; the new ids."""
    if not items:
        return []
    sealer, p = ring.sealer(), ring.pseudonymizer()
    needed = pseudonyms.needed_key_ids(conn, ring)
    others = {kid: ring.pseudonymizer(kid) for kid in needed}
    ids = [new_id() for _ in items]
    subs: dict[str, list[object]] = {
        k: [] for k in ("id", "pseudonym", "sealed", "seal_key_id", "language")
    }
    extra: dict[str, list[object]] = {"subscriber_id": [], "key_id": [], "pseudonym": []}
    for sid, (number, language) in zip(ids, items, strict=True):
        sealed = sealer.seal(number.value, row_id=sid)
        for key, value in (
            ("id", sid),
            ("pseudonym", p.pseudonym(number.value)),
            ("sealed", sealed.blob),
            ("seal_key_id", sealed.key_id),
            ("language", language),
        ):
            subs[key].append(value)
        for kid, other in others.items():
            extra["subscriber_id"].append(sid)
            extra["key_id"].append(kid)
            extra["pseudonym"].append(other.pseudonym(number.value))
    new_subs = pa.table(subs)  # noqa: F841 - read by name in the SQL below
    new_pseudonyms = pa.table(extra)  # noqa: F841
    conn.execute(
        "INSERT INTO subscribers (id, status, pseudonym, pseudonym_key_id, sealed, seal_key_id,"
        " language, confirmed_at, consent_source, created_at, updated_at)"
        " SELECT id, $status, pseudonym, $kid, sealed, seal_key_id, language, $confirmed_at,"
        " $source, $now, $now FROM new_subs",
        {
            "status": status,
            "kid": p.key_id,
            "confirmed_at": now if status == "active" else None,
            "source": consent_source,
            "now": now,
        },
    )
    conn.execute(
        "INSERT INTO subscriber_pseudonyms (subscriber_id, key_id, pseudonym)"
        " SELECT subscriber_id, key_id, pseudonym FROM new_pseudonyms"
    )
    return ids


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
