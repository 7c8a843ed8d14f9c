"""Leaving by code (the stop page's subscriber side): purpose-bound codes, the opt-out."""

from __future__ import annotations

from datetime import timedelta

from support.subscribers import GB_MOBILE, T0, last_code

from breach_notify.crypto import Keyring
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store.db import session, transaction
from breach_notify.subscribers import codes, consent, leave, optin, registry, suppression


def test_a_stop_code_right_after_a_confirmed_sign_up_opts_out_and_cannot_confirm(
    settings: Settings, keyring: Keyring
) -> None:
    number, gw = parse_number(GB_MOBILE), MemoryGateway()
    with session(settings) as conn:
        optin.add(conn, keyring, settings, gw, number, now=T0)
        optin.confirm(conn, keyring, number, last_code(gw), now=T0)
        soon = T0 + timedelta(seconds=10)  # a used code does not hold back the next one
        pending = leave.request_stop(conn, keyring, number, source="web:stop", now=soon)
        assert pending is not None and pending.code.isdigit()
        sub = registry.find(conn, keyring, number)
        assert sub is not None
        with transaction(conn):  # a stop code is no confirmation code
            assert not codes.verify(conn, keyring, sub.id, pending.code, soon)
        assert leave.confirm_stop(conn, keyring, number, pending.code, source="web:stop", now=soon)
        assert not consent.is_active(conn, sub.id)
        assert suppression.is_suppressed(conn, keyring, number)


def test_no_stop_code_for_unknown_or_opted_out_numbers_and_two_codes_a_minute_are_refused(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(GB_MOBILE)
    with session(settings) as conn:
        assert leave.request_stop(conn, keyring, number, source="web:stop", now=T0) is None
        sid = registry.create(conn, keyring, number, status="active", language="fr", now=T0)
        first = leave.request_stop(conn, keyring, number, source="web:stop", now=T0)
        assert first is not None and first.language == "fr"
        later = T0 + timedelta(seconds=20)
        assert leave.request_stop(conn, keyring, number, source="web:stop", now=later) is None
        wrong = f"{(int(first.code) + 1) % 1_000_000:06d}"
        assert not leave.confirm_stop(conn, keyring, number, wrong, source="web:stop", now=later)
        consent.opt_out(conn, sid, "sms")
        much_later = T0 + timedelta(minutes=5)
        assert leave.request_stop(conn, keyring, number, source="web:stop", now=much_later) is None
