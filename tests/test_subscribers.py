"""Opt-in rules: add, confirm, codes (expiry, attempts, rate limits), no enumeration, erasure,
expiry of pending subscriptions. Library calls with an injectable clock; no server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import duckdb
import pytest
from support.subscribers import (
    GB_FIXED,
    GB_MOBILE,
    GB_MOBILE_2,
    T0,
    US_MOBILE,
    add_notice,
    last_code,
)

from breach_notify.crypto import Keyring, Sealed
from breach_notify.errors import BadInput
from breach_notify.notify import outbox
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.sms.errors import TransientError
from breach_notify.sms.gateway import Message, SendResult
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store.db import connect, transaction
from breach_notify.subscribers import (
    codes,
    consent,
    events,
    housekeeping,
    optin,
    registry,
    texts,
)


@pytest.fixture
def conn(settings: Settings, keyring: Keyring) -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(settings)
    yield c
    c.close()


@pytest.fixture
def gw() -> MemoryGateway:
    return MemoryGateway()


def _add(conn, keyring, settings, gw, number=GB_MOBILE, now=T0):  # type: ignore[no-untyped-def]
    return optin.add(conn, keyring, settings, gw, parse_number(number), now=now)


def _row(conn: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
    rows = conn.execute(
        "SELECT id, status, pseudonym, pseudonym_key_id, sealed, seal_key_id FROM subscribers"
    ).fetchall()
    assert len(rows) == 1
    return rows[0]


def test_add_stores_pending_sealed_pseudonymised_and_texts_a_code(conn, keyring, settings, gw):
    answer = _add(conn, keyring, settings, gw)
    assert answer.subscriber == "+44 74** ***456" and answer.status == "requested"
    sid, status, pseudonym, pkid, sealed, skid = _row(conn)
    assert status == "pending"
    assert pseudonym == keyring.pseudonymizer().pseudonym(GB_MOBILE) and pkid == "p1"
    assert keyring.sealer().open(Sealed(skid, sealed), row_id=sid) == GB_MOBILE
    (message, _, _) = gw.outbox[0]
    assert message.to.value == GB_MOBILE
    code = last_code(gw)
    assert texts.fits_one_segment(message.body)
    stored = conn.execute("SELECT code_hash FROM confirmation_codes").fetchall()
    assert len(stored) == 1 and code.encode() not in stored[0][0]
    assert events.trail(conn, sid) == [
        ("created", "cli"),
        ("code_issued", "cli"),
        ("code_sent", "cli"),
    ]


def test_fixed_line_is_refused_clearly(conn, keyring, settings, gw):
    with pytest.raises(BadInput, match="fixed-line"):
        _add(conn, keyring, settings, gw, GB_FIXED)
    assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (0,)
    assert gw.outbox == []


def test_fixed_line_or_mobile_is_accepted(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw, US_MOBILE)
    assert len(gw.outbox) == 1


def test_confirm_with_code_activates(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    code = last_code(gw)
    assert (
        optin.confirm(conn, keyring, parse_number(GB_MOBILE), code, now=T0 + timedelta(minutes=5))
        == "active"
    )
    sid = _row(conn)[0]
    assert consent.is_active(conn, sid)
    row = conn.execute("SELECT confirmed_at, consent_source FROM subscribers").fetchone()
    assert row[0] is not None and row[1] == consent.DOUBLE_OPT_IN
    assert events.trail(conn, sid)[-1] == ("confirmed", "cli")
    # A used code cannot be used again.
    with pytest.raises(optin.BadCode):
        optin.confirm(conn, keyring, parse_number(GB_MOBILE), code, now=T0 + timedelta(minutes=6))


def test_code_expires_after_15_minutes(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    code = last_code(gw)
    with pytest.raises(optin.BadCode):
        optin.confirm(
            conn, keyring, parse_number(GB_MOBILE), code, now=T0 + timedelta(minutes=15, seconds=1)
        )
    assert _row(conn)[1] == "pending"
    # Still valid just before expiry (a fresh subscriber and code).
    _add(conn, keyring, settings, gw, GB_MOBILE_2)
    code2 = last_code(gw)
    optin.confirm(
        conn, keyring, parse_number(GB_MOBILE_2), code2, now=T0 + timedelta(minutes=14, seconds=59)
    )


def test_five_attempts_then_the_code_is_dead(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    code = last_code(gw)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(optin.BadCode):
            optin.confirm(conn, keyring, parse_number(GB_MOBILE), wrong, now=T0)
    with pytest.raises(optin.BadCode):
        optin.confirm(conn, keyring, parse_number(GB_MOBILE), code, now=T0)
    assert conn.execute("SELECT attempts FROM confirmation_codes").fetchone() == (5,)
    assert _row(conn)[1] == "pending"


def test_four_wrong_attempts_then_right_still_works(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    code = last_code(gw)
    for bad in ("000000x", "12345", "", "999999" if code != "999999" else "999998"):
        with pytest.raises(optin.BadCode):
            optin.confirm(conn, keyring, parse_number(GB_MOBILE), bad, now=T0)
    assert optin.confirm(conn, keyring, parse_number(GB_MOBILE), code, now=T0) == "active"


def test_rate_limits_one_per_minute_three_per_day(conn, keyring, settings, gw):
    times = [
        T0,
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=61),
        T0 + timedelta(minutes=3),
        T0 + timedelta(hours=5),
        T0 + timedelta(hours=24, seconds=1),
    ]
    answers = [_add(conn, keyring, settings, gw, now=t).as_dict() for t in times]
    # 1st sent, 2nd within a minute refused, 3rd and 4th sent, 5th over the day's three,
    # 6th a day after the first.
    assert len(gw.outbox) == 4
    assert len({str(a) for a in answers}) == 1  # the same answer every time
    assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (1,)
    sid = _row(conn)[0]
    assert [e for e, _ in events.trail(conn, sid)].count("code_rate_limited") == 2


def test_new_code_retires_the_previous_one(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    first = last_code(gw)
    _add(conn, keyring, settings, gw, now=T0 + timedelta(minutes=2))
    second = last_code(gw)
    if first != second:
        with pytest.raises(optin.BadCode):
            optin.confirm(
                conn, keyring, parse_number(GB_MOBILE), first, now=T0 + timedelta(minutes=3)
            )
    optin.confirm(conn, keyring, parse_number(GB_MOBILE), second, now=T0 + timedelta(minutes=3))


def test_readd_answers_identically_and_creates_no_duplicate(conn, keyring, settings, gw):
    fresh = _add(conn, keyring, settings, gw)
    optin.confirm(conn, keyring, parse_number(GB_MOBILE), last_code(gw), now=T0)
    sent_before = len(gw.outbox)
    again = _add(conn, keyring, settings, gw, now=T0 + timedelta(hours=1))
    assert again == fresh
    assert len(gw.outbox) == sent_before  # an active subscriber is not texted again
    assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (1,)
    assert _row(conn)[1] == "active"
    # Same national number in another notation: still one subscriber.
    optin.add(
        conn, keyring, settings, gw, parse_number("07400 123456", "GB"), now=T0 + timedelta(hours=2)
    )
    assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (1,)


def test_confirm_answers_identically_for_unknown_numbers(conn, keyring, settings, gw):
    with pytest.raises(optin.BadCode) as unknown:
        optin.confirm(conn, keyring, parse_number(GB_MOBILE_2), "123456", now=T0)
    _add(conn, keyring, settings, gw)
    with pytest.raises(optin.BadCode) as known:
        optin.confirm(
            conn,
            keyring,
            parse_number(GB_MOBILE),
            "000000" if last_code(gw) != "000000" else "111111",
            now=T0,
        )
    assert str(unknown.value) == str(known.value)
    assert "+44" not in str(known.value) and "7400" not in str(known.value)


def test_gateway_failure_withdraws_the_code(conn, keyring, settings):
    class Failing:
        name = "failing"

        def send(self, message: Message) -> SendResult:
            raise TransientError("provider unavailable", code="20429")

        def lookup(self, to, since):  # type: ignore[no-untyped-def]
            return None

        def close(self) -> None:
            pass

    with pytest.raises(TransientError):
        optin.add(conn, keyring, settings, Failing(), parse_number(GB_MOBILE), now=T0)  # type: ignore[arg-type]
    assert conn.execute("SELECT count(*) FROM confirmation_codes").fetchone() == (0,)
    # The failed attempt does not count against the per-minute limit.
    gw = MemoryGateway()
    _add(conn, keyring, settings, gw, now=T0 + timedelta(seconds=5))
    assert len(gw.outbox) == 1


def test_opted_out_readd_needs_a_new_confirmation(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    optin.confirm(conn, keyring, parse_number(GB_MOBILE), last_code(gw), now=T0)
    sid = _row(conn)[0]
    consent.opt_out(conn, sid, "sms", T0 + timedelta(minutes=1))
    assert not consent.is_active(conn, sid)
    _add(conn, keyring, settings, gw, now=T0 + timedelta(minutes=2))
    assert _row(conn)[1] == "opted_out"  # not messaged until confirmed again
    optin.confirm(
        conn, keyring, parse_number(GB_MOBILE), last_code(gw), now=T0 + timedelta(minutes=3)
    )
    assert consent.is_active(conn, sid)


def test_opt_out_and_is_active_inside_a_callers_transaction(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    optin.confirm(conn, keyring, parse_number(GB_MOBILE), last_code(gw), now=T0)
    sid = _row(conn)[0]
    with transaction(conn):
        assert consent.is_active(conn, sid)
        consent.opt_out(conn, sid, "gateway")
        consent.opt_out(conn, sid, "gateway")  # idempotent
        assert not consent.is_active(conn, sid)
    assert events.trail(conn, sid)[-1] == ("opted_out", "gateway")
    assert [e for e, _ in events.trail(conn, sid)].count("opted_out") == 1
    assert not consent.is_active(conn, "no-such-id")


def test_erasure_leaves_only_a_tombstone(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw)
    optin.confirm(conn, keyring, parse_number(GB_MOBILE), last_code(gw), now=T0)
    sid = _row(conn)[0]
    for i, state in enumerate(["pending", "sending", "in_doubt", "sent", "delivered"]):
        add_notice(conn, f"n{i}", sid, state, breach=f"b{i}")
    suppressed = outbox.erase(conn, sid, "cli", T0 + timedelta(days=1))
    assert suppressed == 3
    row = conn.execute(
        "SELECT status, pseudonym, pseudonym_key_id, sealed, seal_key_id, consent_source"
        " FROM subscribers WHERE id = ?",
        [sid],
    ).fetchone()
    assert row == ("erased", None, None, None, None, None)
    assert conn.execute("SELECT count(*) FROM subscriber_pseudonyms").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM confirmation_codes").fetchone() == (0,)
    states = dict(conn.execute("SELECT id, state FROM notices").fetchall())
    assert states == {
        "n0": "suppressed",
        "n1": "suppressed",
        "n2": "suppressed",
        "n3": "sent",
        "n4": "delivered",
    }
    assert events.trail(conn, sid)[-1] == ("erased", "cli")
    assert registry.find(conn, keyring, parse_number(GB_MOBILE)) is None
    # Adding again makes a new, unrelated subscriber.
    _add(conn, keyring, settings, gw, now=T0 + timedelta(days=2))
    assert conn.execute("SELECT count(*) FROM subscribers WHERE status = 'pending'").fetchone() == (
        1,
    )


def test_expire_pending_after_24_hours(conn, keyring, settings, gw):
    _add(conn, keyring, settings, gw, GB_MOBILE, now=T0)
    _add(conn, keyring, settings, gw, GB_MOBILE_2, now=T0 + timedelta(hours=2))
    optin.confirm(
        conn, keyring, parse_number(GB_MOBILE_2), last_code(gw), now=T0 + timedelta(hours=2)
    )
    _add(conn, keyring, settings, gw, US_MOBILE, now=T0 + timedelta(hours=12))
    assert housekeeping.expire_pending(conn, T0 + timedelta(hours=23)) == 0
    assert housekeeping.expire_pending(conn, T0 + timedelta(hours=24, seconds=1)) == 1
    statuses = sorted(r[0] for r in conn.execute("SELECT status FROM subscribers").fetchall())
    assert statuses == ["active", "pending"]
    tomb = conn.execute(
        "SELECT count(*) FROM subscriber_events WHERE event = 'expired' AND source = 'housekeeping'"
    ).fetchone()
    assert tomb == (1,)
    assert registry.find(conn, keyring, parse_number(GB_MOBILE)) is None
    counts = housekeeping.run(conn, T0 + timedelta(days=3))
    assert counts == {"pending_expired": 1, "codes_purged": 1}  # the active one's


def test_consent_texts_are_one_gsm7_segment(settings):
    for text in (
        texts.confirmation(settings, "123456"),
        texts.confirmed(settings),
        texts.resumed(settings),
        texts.help_text(settings),
        texts.not_confirmable(settings),
    ):
        assert texts.fits_one_segment(text), text
        assert text.isascii() and len(text) <= 160
    long_org = settings.model_copy(update={"org_name": "“Très” Privacy Watch International e.V."})
    assert texts.fits_one_segment(texts.confirmation(long_org, "123456"))


def test_codes_are_keyed_hashes_bound_to_the_subscriber(conn, keyring):
    assert codes.LENGTH == 6 and codes.MAX_ATTEMPTS == 5 and timedelta(minutes=15) == codes.TTL
    k1, h1 = codes._hash(keyring, "sub_a", "123456")
    _, h2 = codes._hash(keyring, "sub_b", "123456")
    assert h1 != h2 and len(h1) == 32 and k1 == "c1"
