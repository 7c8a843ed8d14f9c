"""Opt-outs kept while the store is busy: durable, PII-free, applied before the next send."""

from __future__ import annotations

from datetime import UTC, datetime

from support.privacy import scan
from support.sender import build

from breach_notify.crypto import Keyring
from breach_notify.notify.sender import send
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store import db
from breach_notify.subscribers import spool

NOON_PARIS = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def test_spooled_stop_is_applied_before_the_next_send(settings: Settings, keyring: Keyring) -> None:
    world = build(settings, keyring, n=12)
    stopped = sorted(world.expected)[:2]
    for number in stopped:
        spool.append_opt_out(settings, keyring, E164(number), datetime.now(UTC))
    spool.append_opt_out(settings, keyring, E164("+447400123456"), datetime.now(UTC))  # unknown
    with (settings.home / "spool" / "optout.jsonl").open("a") as fh:
        fh.write('{"at": "2026-')  # a line torn by a crash mid-append
    assert scan([settings.home / "spool"], [*world.numbers, "+447400123456"]) == []

    gw = MemoryGateway()
    report = send(settings, keyring, gw, clock=lambda: NOON_PARIS).as_dict()
    sent_to = {m.to.value for m, _, _ in gw.outbox}
    assert sent_to == world.expected - set(stopped)
    assert report["sent"] == len(world.expected) - 2 and report["suppressed"] == 2
    with db.session(settings) as conn:
        rows = conn.execute(
            "SELECT e.source FROM subscriber_events e WHERE e.event = 'opted_out'"
            " AND e.subscriber_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": [world.subs[n] for n in stopped]},
        ).fetchall()
        assert sorted(r[0] for r in rows) == [spool.SOURCE, spool.SOURCE]
        assert spool.apply(conn, settings) == 0  # consumed; a second apply finds nothing
    assert not spool.pending(settings)
    assert scan([settings.home], world.numbers) == []


def test_spool_survives_pseudonym_key_rotation(settings: Settings, keyring: Keyring) -> None:
    world = build(settings, keyring, n=6)
    number = sorted(world.expected)[0]
    keyring.rotate("pseudonym")  # subscribers still under p1: every key version is spooled
    spool.append_opt_out(settings, keyring, E164(number), datetime.now(UTC))
    with db.session(settings) as conn:
        assert spool.apply(conn, settings) == 1
        status = conn.execute(
            "SELECT status FROM subscribers WHERE id = ?", [world.subs[number]]
        ).fetchall()
    assert status == [("opted_out",)]
