"""Match: exactly the active subscribers found in each breach, once, under the breach's key."""

from __future__ import annotations

import pytest
from support.privacy import scan
from support.sender import add_breach, add_subscriber, numbers, set_status

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.notify.match import match
from breach_notify.settings import Settings
from breach_notify.store import db


def _pairs(conn) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = conn.execute("SELECT subscriber_id, breach_id FROM notices").fetchall()
    return {(s, b) for s, b in rows}


def test_exact_pairs_and_idempotence(settings: Settings, keyring: Keyring) -> None:
    nums = numbers(60, seed=7)
    with db.session(settings) as conn:
        subs = {n: add_subscriber(conn, keyring, n) for n in nums[:40]}
        set_status(conn, subs[nums[0]], "opted_out")
        set_status(conn, subs[nums[1]], "pending")
        set_status(conn, subs[nums[2]], "erased")
        add_breach(conn, keyring, "fb", nums[0:30] + nums[45:60], kinds=0b1)
        add_breach(conn, keyring, "li", nums[20:50], kinds=0b10)
        report = match(conn)
        expected = {(subs[n], "fb") for n in nums[3:30]} | {(subs[n], "li") for n in nums[20:40]}
        assert _pairs(conn) == expected
        assert report.as_dict() == {"matched": len(expected), "new_notices": len(expected)}
        assert match(conn).as_dict() == {"matched": len(expected), "new_notices": 0}
        sql = "SELECT breach_id, min(kinds) FROM notices GROUP BY 1"
        kinds = dict(conn.execute(sql).fetchall())
        assert kinds == {"fb": 1, "li": 2}
        states = {r[0] for r in conn.execute("SELECT DISTINCT state FROM notices").fetchall()}
        assert states == {"pending"}


def test_later_subscribers_match_earlier_breaches(settings: Settings, keyring: Keyring) -> None:
    nums = numbers(10, seed=3)
    with db.session(settings) as conn:
        add_breach(conn, keyring, "old", nums)
        assert match(conn).new_notices == 0
        sid = add_subscriber(conn, keyring, nums[4])
        add_subscriber(conn, keyring, numbers(1, "DE")[0])  # in no breach
        assert match(conn).as_dict() == {"matched": 1, "new_notices": 1}
        assert _pairs(conn) == {(sid, "old")}


def test_one_breach_only(settings: Settings, keyring: Keyring) -> None:
    nums = numbers(5, seed=4)
    with db.session(settings) as conn:
        for n in nums:
            add_subscriber(conn, keyring, n)
        add_breach(conn, keyring, "a", nums[:2])
        add_breach(conn, keyring, "b", nums[2:])
        assert match(conn, "b").as_dict() == {"matched": 3, "new_notices": 3, "breach": "b"}
        assert {b for _, b in _pairs(conn)} == {"b"}
        with pytest.raises(BadInput, match="breaches list"):
            match(conn, "nope")


def test_matching_uses_each_breach_key(settings: Settings, keyring: Keyring) -> None:
    """A breach hashed under p1 matches a subscriber re-pseudonymised under p2 only through the
    subscriber's p1 pseudonym in ``subscriber_pseudonyms``."""
    nums = numbers(3, seed=5)
    with db.session(settings) as conn:
        add_breach(conn, keyring, "old", nums, key_id="p1")
        keyring.rotate("pseudonym")
        sid = add_subscriber(conn, keyring, nums[0])  # stored under p2 only
        assert match(conn).new_notices == 0
        conn.execute(
            "INSERT INTO subscriber_pseudonyms VALUES (?, 'p1', ?)",
            [sid, keyring.pseudonymizer("p1").pseudonym(nums[0])],
        )
        assert match(conn).new_notices == 1
        # a breach under p2 matches the current pseudonym directly
        add_breach(conn, keyring, "new", nums[:1], key_id="p2")
        assert match(conn).as_dict() == {"matched": 2, "new_notices": 1}
        # with the keyring, match first derives missing pseudonyms from the sealed numbers
        late = add_subscriber(conn, keyring, nums[1])
        assert match(conn).new_notices == 0
        assert match(conn, keyring=keyring).new_notices == 1
        assert (late, "old") in _pairs(conn)


def test_match_command(cli, settings: Settings, keyring: Keyring) -> None:  # type: ignore[no-untyped-def]
    nums = numbers(8, seed=6)
    with db.session(settings) as conn:
        for n in nums[:5]:
            add_subscriber(conn, keyring, n)
        add_breach(conn, keyring, "fb", nums[3:])
    res = cli("match", "--json")
    assert res.code == 0, res.stderr
    assert res.json == {"matched": 2, "new_notices": 2}
    again = cli("match", "--breach", "fb", "--json")
    assert again.json == {"matched": 2, "new_notices": 0, "breach": "fb"}
    bad = cli("match", "--breach", "zz", "--json")
    assert bad.code == 2 and "breaches list" in bad.stderr
    texts = [r.stdout + r.stderr for r in cli.captured]
    assert scan([settings.home], nums, texts) == []
