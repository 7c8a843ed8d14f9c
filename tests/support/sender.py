"""Helpers for the notice tests (no tests here): subscribers and breaches written directly.

Subscribers are inserted the way the subscribers package stores them (sealed number with the row
id as associated data, pseudonym under the active key), so these tests do not depend on it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import phonenumbers

from breach_notify.crypto import Keyring
from breach_notify.notify.match import match
from breach_notify.settings import Settings
from breach_notify.store import db

# Mobile ranges that phonenumbers deems valid and places in one time zone.
_PATTERNS = {
    "FR": ("+336", 8),  # Europe/Paris
    "DE": ("+49151", 8),  # Europe/Berlin
    "GB": ("+447400", 6),  # Europe/London
}


def numbers(n: int, region: str = "FR", seed: int = 1) -> list[str]:
    """``n`` distinct valid mobile numbers in E.164."""
    prefix, digits = _PATTERNS[region]
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        cand = prefix + "".join(str(rng.randrange(10)) for _ in range(digits))
        if phonenumbers.is_valid_number(phonenumbers.parse(cand, None)):
            out.add(cand)
    return sorted(out)


def add_subscriber(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    e164: str,
    *,
    status: str = "active",
    language: str = "en",
) -> str:
    sid = "S" + uuid.uuid4().hex[:16]
    sealed = ring.sealer().seal(e164, sid)
    p = ring.pseudonymizer()
    conn.execute(
        "INSERT INTO subscribers (id, status, pseudonym, pseudonym_key_id, sealed, seal_key_id,"
        " language, confirmed_at, consent_source) VALUES (?, ?, ?, ?, ?, ?, ?, now(), 'test')",
        [sid, status, p.pseudonym(e164), p.key_id, sealed.blob, sealed.key_id, language],
    )
    return sid


def add_breach(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    breach_id: str,
    members: Iterable[str],
    *,
    title: str = "Test breach",
    kinds: int = 0b11,
    key_id: str | None = None,
) -> None:
    p = ring.pseudonymizer(key_id)
    rows = [(breach_id, d, kinds, int.from_bytes(d[:4], "big")) for d in map(p.pseudonym, members)]
    conn.execute(
        "INSERT INTO breaches (id, title, format, key_id, k, distinct_numbers)"
        " VALUES (?, ?, 'csv', ?, 50, ?)",
        [breach_id, title, p.key_id, len(rows)],
    )
    if rows:
        conn.executemany("INSERT INTO breach_pseudonyms VALUES (?, ?, ?, ?)", rows)


def set_status(conn: duckdb.DuckDBPyConnection, sid: str, status: str) -> None:
    conn.execute("UPDATE subscribers SET status = ? WHERE id = ?", [status, sid])


def states(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM notices GROUP BY 1").fetchall())


@dataclass
class World:
    settings: Settings
    keyring: Keyring = field(repr=False)
    numbers: list[str] = field(repr=False)
    subs: dict[str, str] = field(repr=False)  # number → subscriber id
    expected: set[str] = field(repr=False)  # numbers that should get a notice

    def notice_order(self) -> list[str]:
        """Subscriber ids in the order the sender works the outbox."""
        with db.session(self.settings) as conn:
            rows = conn.execute(
                "SELECT subscriber_id FROM notices ORDER BY created_at, id"
            ).fetchall()
        return [r[0] for r in rows]

    def states(self) -> dict[str, int]:
        with db.session(self.settings) as conn:
            return states(conn)


def build(settings: Settings, keyring: Keyring, n: int = 30, seed: int = 11) -> World:
    """n subscribers (a few not active), a breach holding most of them and strangers."""
    nums = numbers(n + 20, seed=seed)
    with db.session(settings) as conn:
        subs = {
            x: add_subscriber(conn, keyring, x, language=random.Random(x).choice(["en", "fr"]))
            for x in nums[:n]
        }
        set_status(conn, subs[nums[0]], "opted_out")
        set_status(conn, subs[nums[1]], "pending")
        add_breach(conn, keyring, "fb", nums[: n - 3] + nums[n:], title="Facebook “2021”")
        match(conn)
    return World(settings, keyring, nums, subs, set(nums[2 : n - 3]))
