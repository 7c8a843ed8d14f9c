"""The event journal and its applier, without the web: durable, private, each event once,
consent never backwards in time, opt-outs binding the next send."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from support.events import append, pseudonyms
from support.flows import Run
from support.privacy import scan
from support.sender import build
from support.subscribers import GB_MOBILE, add_notice, opted_out_an_hour_ago

from breach_notify.crypto import Keyring
from breach_notify.events import journal
from breach_notify.events.journal import Writer
from breach_notify.notify import applier
from breach_notify.notify.sender import send
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store import db
from breach_notify.subscribers import consent, events

NOON_PARIS = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def test_journal_is_private_and_keeps_a_replay_once(settings: Settings, keyring: Keyring) -> None:
    entry = journal.inbound_entry("SM1", "opt_out", pseudonyms(keyring, GB_MOBILE))
    append(settings, entry, entry)
    append(settings, entry)  # across restarts too
    path = settings.journal_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert journal.backlog(path).pending == 1
    assert scan([path.parent], [GB_MOBILE]) == []


def test_concurrent_appends_share_commits(settings: Settings) -> None:
    writer = Writer(settings.journal_path).start()
    futures = []
    lock = threading.Barrier(8)

    def burst(t: int) -> None:
        lock.wait()
        for i in range(50):
            futures.append(writer.submit(journal.status_entry(f"SM{t}x{i}", "sent", None, {})))

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result(10)
    writer.close()
    assert journal.backlog(settings.journal_path).pending == 400
    assert writer.batches < 400  # group commit: one fsync served several requests


def test_journaled_stop_binds_the_next_send(settings: Settings, keyring: Keyring) -> None:
    world = build(settings, keyring, n=12)
    stopped = sorted(world.expected)[:2]
    entries = [
        journal.inbound_entry(f"SM{i}", "opt_out", pseudonyms(keyring, n))
        for i, n in enumerate([*stopped, "+447400123456"])  # the last one is nobody's
    ]
    append(settings, *entries)
    assert scan([settings.journal_path.parent], [*world.numbers, "+447400123456"]) == []

    gw = MemoryGateway()
    report = send(settings, keyring, gw, clock=lambda: NOON_PARIS).as_dict()
    assert {m.to.value for m, _, _ in gw.outbox} == world.expected - set(stopped)
    assert report["sent"] == len(world.expected) - 2 and report["suppressed"] == 2
    with db.session(settings) as conn:
        for number in stopped:
            assert events.trail(conn, world.subs[number])[-1] == ("opted_out", "sms")
        assert applier.drain(conn).applied == 0  # consumed
    assert journal.backlog(settings.journal_path).pending == 0
    assert scan([settings.home], world.numbers) == []


def test_journaled_stop_survives_pseudonym_key_rotation(
    settings: Settings, keyring: Keyring
) -> None:
    world = build(settings, keyring, n=6)
    number = sorted(world.expected)[0]
    keyring.rotate("pseudonym")  # subscribers still under p1: every key version is journaled
    append(settings, journal.inbound_entry("SM1", "opt_out", pseudonyms(keyring, number)))
    with db.session(settings) as conn:
        assert applier.drain(conn).changed == 1
        assert not consent.is_active(conn, world.subs[number])


def test_an_event_is_applied_once_when_the_journal_mark_is_lost(
    settings: Settings, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the store's commit and the journal's mark re-applies nothing."""
    world = build(settings, keyring, n=6)
    number = sorted(world.expected)[0]
    sid = world.subs[number]
    with db.session(settings) as conn:
        add_notice(conn, "nx", sid, "sent", gateway_id="SMx", breach="other")
    append(
        settings,
        journal.inbound_entry("SM1", "opt_out", pseudonyms(keyring, number)),
        journal.status_entry("SMx", "delivered", None, {}),
    )

    def crash(self: journal.Reader, seqs: list[int]) -> None:
        raise KeyboardInterrupt  # the process dies after the store's commit

    with monkeypatch.context() as m:
        m.setattr(journal.Reader, "mark_applied", crash)
        with db.session(settings) as conn, pytest.raises(KeyboardInterrupt):
            applier.drain(conn)
    assert journal.backlog(settings.journal_path).pending == 2
    with db.session(settings) as conn:
        again = applier.drain(conn)
        assert (again.applied, again.skipped) == (0, 2)
        assert events.trail(conn, sid).count(("opted_out", "sms")) == 1
        row = conn.execute("SELECT state FROM notices WHERE id = 'nx'").fetchone()
        assert row == ("delivered",)
    assert journal.backlog(settings.journal_path).pending == 0


def test_a_start_accepted_before_a_later_opt_out_is_not_applied(
    settings: Settings, keyring: Keyring
) -> None:
    """Consent never goes backwards: the START waited in the journal while the carrier's
    opt-out (a later decision) reached the store first."""
    with db.session(settings) as conn:
        sid = opted_out_an_hour_ago(conn, keyring, GB_MOBILE)
    append(settings, journal.inbound_entry("SMstart", "opt_in", pseudonyms(keyring, GB_MOBILE)))
    with db.session(settings) as conn:
        consent.opt_out(conn, sid, "gateway:21610")  # now: after the START was accepted
        assert applier.drain(conn).applied == 1
        assert conn.execute("SELECT status FROM subscribers WHERE id = ?", [sid]).fetchone() == (
            "opted_out",
        )
        assert ("opted_in", "sms") not in events.trail(conn, sid)


def test_an_unreadable_journal_stops_the_sender(settings: Settings, keyring: Keyring) -> None:
    """Opt-outs may be in it: sending without them is worse than not sending."""
    from breach_notify.errors import OperationalError

    build(settings, keyring, n=4)
    settings.journal_path.parent.mkdir(mode=0o700)
    settings.journal_path.write_bytes(b"not a journal" * 100)
    gw = MemoryGateway()
    with pytest.raises(OperationalError, match="journal"):
        send(settings, keyring, gw, clock=lambda: NOON_PARIS)
    assert gw.outbox == []


def test_status_shows_the_backlog_and_alarms_when_it_is_stuck(
    settings: Settings, keyring: Keyring, cli: Callable[..., Run]
) -> None:
    import time

    append(
        settings,
        journal.inbound_entry("SM1", "opt_out", pseudonyms(keyring, GB_MOBILE)),
        journal.status_entry("SM2", "delivered", None, pseudonyms(keyring, GB_MOBILE)),
    )
    calm = cli("status", "--json")
    assert calm.code == 0 and calm.json["events"]["pending"] == 2 and calm.json["alarms"] == []
    time.sleep(1.1)
    stuck = cli("status", "--json", env={"BREACH_NOTIFY_EVENTS_ALARM_SECONDS": "1"})
    assert stuck.json["events"]["pending"] == 2
    assert stuck.json["events"]["oldest_seconds"] >= 1
    assert len(stuck.json["alarms"]) == 1 and "not applied" in stuck.json["alarms"][0]
    human = cli("status", env={"BREACH_NOTIFY_EVENTS_ALARM_SECONDS": "1"})
    assert "Web events: 2 pending" in human.stdout and "alarm:" in human.stderr
    outputs = [r.stdout + r.stderr for r in (calm, stuck, human)]
    assert scan([settings.home], [GB_MOBILE], texts=outputs) == []


def test_pruning_forgets_old_callbacks_but_never_an_inbound_id(
    settings: Settings, keyring: Keyring
) -> None:
    append(
        settings,
        journal.inbound_entry("SMin", "opt_out", pseudonyms(keyring, GB_MOBILE)),
        journal.status_entry("SMst", "delivered", None, {}),
    )
    with db.session(settings) as conn:
        assert applier.drain(conn).applied == 2
        applier.prune(conn, settings.journal_path, retention_seconds=0)
        kept = conn.execute("SELECT event_id FROM applied_events").fetchall()
    assert kept == [("in:SMin",)]  # a replayed START must never apply again
    with journal.reader(settings.journal_path) as jr:
        assert jr is not None and jr.pending(10) == []
        assert jr.conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    append(settings, journal.inbound_entry("SMin", "opt_out", pseudonyms(keyring, GB_MOBILE)))
    with db.session(settings) as conn:
        report = applier.drain(conn)
    assert (report.applied, report.skipped) == (0, 1)  # the store still knows it
