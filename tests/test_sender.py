"""The sender: exact recipients, errors, opt-outs, quiet hours, pacing, crash safety."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.fake_twilio import FakeTwilio, Fault
from support.privacy import scan
from support.sender import World, add_breach, add_subscriber, build, numbers, set_status

from breach_notify.crypto import Keyring
from breach_notify.notify import outbox
from breach_notify.notify.match import match
from breach_notify.notify.sender import send
from breach_notify.notify.templates import TemplateConfig, render
from breach_notify.notify.throttle import Backoff, TokenBucket
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.errors import AccountError
from breach_notify.sms.gateway import Gateway, Message, SendResult, SentRecord, open_gateway
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store import db

FAST = Backoff(attempts=4, base=0.01, cap=0.05)
NOON_PARIS = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 12:00 in Paris (CEST)
NIGHT_PARIS = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)  # 23:30 in Paris


@pytest.fixture
def world(
    settings: Settings,
    keyring: Keyring,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    """The generated world; afterwards, no number of it in the data dir, logs or output."""
    caplog.set_level(logging.DEBUG)
    w = build(settings, keyring)
    yield w
    out = capsys.readouterr()
    assert scan([settings.home], w.numbers, [caplog.text, out.out, out.err]) == []


@pytest.fixture
def memory() -> Iterator[MemoryGateway]:
    gw = MemoryGateway()
    yield gw
    gw.clear()


def _run(w: World, gw: Gateway, **kw: Any) -> dict[str, Any]:
    kw.setdefault("clock", lambda: NOON_PARIS)
    kw.setdefault("backoff", FAST)
    return send(w.settings, w.keyring, gw, **kw).as_dict()


def _ledger_exactly_once(fake: FakeTwilio, expected: set[str]) -> None:
    got = fake.recipients()
    assert set(got) == expected
    assert [n for n, c in got.items() if c != 1] == []


# -- recipients -------------------------------------------------------------------------------


def test_exact_recipients_memory(world: World, memory: MemoryGateway) -> None:
    report = _run(world, memory)
    assert report["sent"] == len(world.expected) and report["failed"] == 0
    sent_to = Counter(m.to.value for m, _, _ in memory.outbox)
    assert set(sent_to) == world.expected and max(sent_to.values()) == 1
    assert world.states() == {"sent": len(world.expected)}
    assert all("Facebook '2021'" in m.body for m, _, _ in memory.outbox)
    assert _run(world, memory)["sent"] == 0  # nothing left


def test_exact_recipients_twilio(world: World, fake: FakeTwilio) -> None:
    gw = open_gateway(fake.gateway_url(), world.settings)
    report = _run(world, gw)
    assert report["sent"] == len(world.expected)
    _ledger_exactly_once(fake, world.expected)
    with db.session(world.settings) as conn:
        ids = {r[0] for r in conn.execute("SELECT gateway_id FROM notices").fetchall()}
    assert ids == {m["sid"] for m in fake.ledger}
    assert scan([world.settings.home], world.numbers) == []


def test_max_messages(world: World, memory: MemoryGateway) -> None:
    assert _run(world, memory, max_messages=5)["sent"] == 5
    assert _run(world, memory, max_messages=0)["sent"] == 0
    assert _run(world, memory)["sent"] == len(world.expected) - 5
    assert len({m.to.value for m, _, _ in memory.outbox}) == len(world.expected)


def test_status_is_rechecked_at_send_time(world: World, memory: MemoryGateway) -> None:
    stopped = sorted(world.expected)[:3]
    with db.session(world.settings) as conn:
        for n in stopped:
            set_status(conn, world.subs[n], "opted_out")
    report = _run(world, memory)
    assert report["suppressed"] == 3 and report["sent"] == len(world.expected) - 3
    assert not {m.to.value for m, _, _ in memory.outbox} & set(stopped)


# -- errors -----------------------------------------------------------------------------------


def test_429_storm(world: World, fake: FakeTwilio) -> None:
    fake.script(
        *[Fault(code=20429)] * 3,
        Fault(code=20500),
        *[Fault(code=20429)] * 3,
        Fault(code=20503),
        *[Fault(code=20429)] * 2,
    )
    gw = open_gateway(fake.gateway_url(), world.settings)
    sleeps: list[float] = []
    storm = Backoff(attempts=12, base=0.01, cap=1.0)
    report = _run(world, gw, _sleep=sleeps.append, backoff=storm)
    assert report["sent"] == len(world.expected) and report["failed"] == 0
    assert report["retries"] == 10 and len(sleeps) == 10
    assert sleeps[-1] > sleeps[0] * 50  # exponential: 0.01 * 2**9 with jitter
    _ledger_exactly_once(fake, world.expected)


def test_transient_errors_give_up_after_the_limit(world: World, fake: FakeTwilio) -> None:
    fake.script(*[Fault(code=20503)] * FAST.attempts)
    gw = open_gateway(fake.gateway_url(), world.settings)
    sleeps: list[float] = []
    report = _run(world, gw, _sleep=sleeps.append)
    assert report["failed"] == 1 and report["sent"] == len(world.expected) - 1
    assert len(sleeps) == FAST.attempts - 1
    assert sleeps == sorted(sleeps)  # exponential (jitter keeps the order here)
    with db.session(world.settings) as conn:
        assert conn.execute(
            "SELECT error_code, attempts FROM notices WHERE state = 'failed'"
        ).fetchall() == [("20503", FAST.attempts)]


def test_permanent_errors_and_21610(world: World, fake: FakeTwilio) -> None:
    order = world.notice_order()
    by_sid = {v: k for k, v in world.subs.items()}
    bad, invalid, opted = by_sid[order[0]], by_sid[order[1]], by_sid[order[2]]
    fake.fail_for.update({bad: 21614, invalid: 21211, opted: 21610})
    # a second breach: the opted-out recipient's next notice must be suppressed, not sent
    with db.session(world.settings) as conn:
        add_breach(conn, world.keyring, "li", sorted(world.expected), title="LinkedIn")
        match(conn)
    gw = open_gateway(fake.gateway_url(), world.settings)
    report = _run(world, gw)
    n = len(world.expected)
    assert report["failed"] == 4 and report["suppressed"] == 2
    assert report["sent"] == 2 * n - 6
    got = fake.recipients()
    assert set(got) == world.expected - {bad, invalid, opted}
    assert set(got.values()) == {2}
    with db.session(world.settings) as conn:
        assert conn.execute(
            "SELECT status FROM subscribers WHERE id = ?", [world.subs[opted]]
        ).fetchone() == ("opted_out",)
        assert conn.execute(
            "SELECT event, source FROM subscriber_events WHERE subscriber_id = ?",
            [world.subs[opted]],
        ).fetchall() == [("opted_out", "gateway:21610")]
        codes = Counter(
            r[0]
            for r in conn.execute(
                "SELECT error_code FROM notices WHERE state IN ('failed', 'suppressed')"
            ).fetchall()
        )
    assert codes == Counter({"21614": 2, "21211": 2, "21610": 1, None: 1})


def test_account_errors_stop_the_run_and_keep_notices(
    world: World, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "revoked")
    gw = open_gateway(fake.gateway_url(), world.settings)
    with pytest.raises(AccountError):
        _run(world, gw)
    assert world.states() == {"pending": len(world.expected)}


def test_stop_during_a_run(world: World, fake: FakeTwilio) -> None:
    """A STOP recorded (by another writer) while the sender runs stops later messages."""
    order = world.notice_order()
    by_sid = {v: k for k, v in world.subs.items()}
    late = order[-3:]

    def stop_late(msg: dict[str, Any]) -> None:
        if len(fake.ledger) == 2:
            with db.session(world.settings) as conn:
                for sid in late:
                    set_status(conn, sid, "opted_out")

    fake.on_create = stop_late
    gw = open_gateway(fake.gateway_url(), world.settings)
    report = _run(world, gw, rate=10.0)
    assert report["suppressed"] == 3
    _ledger_exactly_once(fake, world.expected - {by_sid[s] for s in late})


# -- quiet hours and pacing -------------------------------------------------------------------


def test_quiet_hours_defer(settings: Settings, keyring: Keyring, memory: MemoryGateway) -> None:
    fr, gb = numbers(3, "FR", seed=2), numbers(3, "GB", seed=2)
    with db.session(settings) as conn:
        for x in fr + gb:
            add_subscriber(conn, keyring, x)
        add_breach(conn, keyring, "b", fr + gb)
        match(conn)
    w = World(settings, keyring, fr + gb, {}, set(fr + gb))
    # 20:30 UTC = 22:30 Paris (quiet) but 21:30 London (quiet too with the default 09-20)
    night = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)
    report = _run(w, memory, clock=lambda: night)
    assert report["deferred"] == 6 and report["sent"] == 0
    # 07:30 UTC = 09:30 Paris (open), 08:30 London (quiet)
    report = _run(w, memory, clock=lambda: datetime(2026, 6, 1, 7, 30, tzinfo=UTC))
    assert (report["sent"], report["deferred"]) == (3, 3)
    assert {m.to.value for m, _, _ in memory.outbox} == set(fr)
    assert _run(w, memory, clock=lambda: night, ignore_quiet_hours=True)["sent"] == 3
    assert w.states() == {"sent": 6}


def test_quiet_window_may_wrap_midnight(world: World, memory: MemoryGateway) -> None:
    from datetime import time

    world.settings.quiet_start, world.settings.quiet_end = time(22, 0), time(2, 0)
    assert _run(world, memory, clock=lambda: NOON_PARIS)["sent"] == 0
    assert _run(world, memory, clock=lambda: NIGHT_PARIS)["sent"] == len(world.expected)


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: now[0])
    assert bucket.try_take(1) and bucket.try_take(1) and not bucket.try_take(1)
    assert bucket.wait_time(1) == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.try_take(1) and not bucket.try_take(1)
    now[0] = 10.0
    assert bucket.try_take(3)  # larger than the bucket: goes when full
    assert bucket.wait_time(1) == pytest.approx(1.0)


def test_rate_limit_paces_segments(world: World, memory: MemoryGateway) -> None:
    import time as _time

    n = len(world.expected)  # 25 one-segment notices
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        _time.sleep(s)

    started, wall_start = _time.monotonic(), datetime.now(UTC)
    report = _run(world, memory, rate=20.0, _sleep=sleep)
    took = _time.monotonic() - started
    assert report["sent"] == n and report["segments"] == n
    # a burst of 20 (one second's worth), then 20 segments/s: by T seconds after the first
    # token is taken at most 20 + 20 T segments have gone, so the 25 need at least 0.25 s. (On
    # a loaded machine the sends themselves may take that long and no sleep is needed, so
    # ``slept`` may be empty; the bound holds either way.)
    assert took >= (n - 20) / 20.0, (took, slept)
    last = max(at for _, _, at in memory.outbox)
    assert (last - wall_start).total_seconds() >= (n - 20) / 20.0


def test_pace_is_asked_for_every_segment_with_the_store_released(
    world: World, memory: MemoryGateway
) -> None:
    import subprocess
    import sys

    asked: list[int] = []
    others_could_write: list[bool] = []

    def pace(segments: int) -> None:
        if not asked:  # another process can open the store for writing while we wait here
            probe = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
                    str(world.settings.db_path),
                ],
                capture_output=True,
            )
            others_could_write.append(probe.returncode == 0)
        asked.append(segments)

    report = _run(world, memory, pace=pace)
    assert report["sent"] == len(world.expected)
    assert sum(asked) == report["segments"] and all(n > 0 for n in asked)
    assert others_could_write == [True]


# -- crash safety -----------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs."""


class Crashing:
    """Wraps a gateway; crashes before or after the n-th request reaches it."""

    def __init__(self, inner: Gateway, n: int, after: bool, lookup: bool = True) -> None:
        self.inner, self.n, self.after, self.can_lookup = inner, n, after, lookup
        self.name = inner.name
        self.calls = 0

    def send(self, message: Message) -> SendResult:
        self.calls += 1
        if self.calls == self.n and not self.after:
            raise Crash
        result = self.inner.send(message)
        if self.calls == self.n:
            raise Crash
        return result

    def lookup(self, to: E164, since: datetime) -> list[SentRecord] | None:
        return self.inner.lookup(to, since) if self.can_lookup else None

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("after", [False, True], ids=["before-request", "after-request"])
@pytest.mark.parametrize("n", [1, 7])
def test_crash_then_restart_twilio(world: World, fake: FakeTwilio, n: int, after: bool) -> None:
    gw = open_gateway(fake.gateway_url(), world.settings)
    with pytest.raises(Crash):
        _run(world, Crashing(gw, n, after))
    assert world.states().get("sending", 0) >= 1
    report = _run(world, open_gateway(fake.gateway_url(), world.settings))
    assert report["reconciled"] >= 1 and report["in_doubt"] == 0
    _ledger_exactly_once(fake, world.expected)
    assert world.states() == {"sent": len(world.expected)}
    assert fake.requests["list"] >= 1  # reconciled by looking the number up


def test_reconciliation_takes_the_gateways_latest_status(world: World, fake: FakeTwilio) -> None:
    gw = open_gateway(fake.gateway_url(), world.settings)
    with pytest.raises(Crash):
        _run(world, Crashing(gw, 1, after=True))
    fake.ledger[0]["status"] = "delivered"  # its callback found no gateway id to attach to
    _run(world, open_gateway(fake.gateway_url(), world.settings))
    assert world.states() == {"delivered": 1, "sent": len(world.expected) - 1}
    _ledger_exactly_once(fake, world.expected)


@pytest.mark.parametrize("after", [False, True])
def test_crash_then_restart_dryrun(world: World, after: bool) -> None:
    out = world.settings.home / "outbox" / "dryrun.jsonl"
    with pytest.raises(Crash):
        _run(world, Crashing(open_gateway("dryrun://", world.settings), 4, after))
    report = _run(world, open_gateway("dryrun://", world.settings))
    assert report["in_doubt"] == 0
    lines = out.read_text().splitlines()
    import json

    notices = Counter(json.loads(x)["notice"] for x in lines)
    assert len(notices) == len(world.expected) and set(notices.values()) == {1}
    assert world.states() == {"sent": len(world.expected)}


def test_in_doubt_is_not_resent_unless_asked(world: World, memory: MemoryGateway) -> None:
    with pytest.raises(Crash):
        _run(world, Crashing(memory, 3, after=True, lookup=False))
    blind = Crashing(memory, 0, after=False, lookup=False)  # cannot look up, never crashes
    report = _run(world, blind)
    assert report["in_doubt"] >= 1
    assert Counter(m.to.value for m, _, _ in memory.outbox).most_common(1)[0][1] == 1
    doubt = world.states()["in_doubt"]
    again = _run(world, blind)
    assert again["sent"] == 0 and again["left"]["in_doubt"] == doubt  # nothing resent
    report = _run(world, blind, resend_in_doubt=True)
    assert report["sent"] == doubt
    assert world.states() == {"sent": len(world.expected)}


def test_timeout_after_acceptance_is_reconciled_in_run(world: World, fake: FakeTwilio) -> None:
    fake.script(Fault(delay=0.6, after_create=True), Fault(delay=0.6, after_create=True))
    gw = open_gateway(fake.gateway_url(timeout="0.25"), world.settings)
    report = _run(world, gw)
    assert report["sent"] == len(world.expected) and report["in_doubt"] == 0
    _ledger_exactly_once(fake, world.expected)


def test_an_older_message_with_the_same_text_is_not_taken_for_a_dropped_request(
    world: World, fake: FakeTwilio
) -> None:
    """A request dropped unsent is looked up once, over ``LOOKUP_SKEW`` before it: a message with
    the same text sent to the same number 3 minutes earlier is not this notice's."""
    with db.session(world.settings) as conn:
        nid, sid, language, kinds, title = conn.execute(
            "SELECT n.id, n.subscriber_id, s.language, n.kinds, b.title FROM notices n"
            " JOIN subscribers s ON s.id = n.subscriber_id JOIN breaches b ON b.id = n.breach_id"
            " WHERE s.status = 'active' ORDER BY n.created_at, n.id LIMIT 1"
        ).fetchone()
    number = next(n for n, s in world.subs.items() if s == sid)
    body = render(language, title, kinds, TemplateConfig.from_settings(world.settings)).text
    gw = open_gateway(fake.gateway_url(), world.settings)
    earlier = gw.send(Message(E164(number), body))  # e.g. by a second install, 3 minutes ago
    at = fake.ledger[0]["date_sent"] - timedelta(minutes=3)
    fake.ledger[0].update(date_created=at, date_sent=at)
    fake.script(Fault(drop=True))  # the first request of the run: dropped, nothing created
    report = _run(world, gw)
    assert report["sent"] == len(world.expected) and report["in_doubt"] == 0
    assert fake.recipients()[number] == 2  # the earlier message, and this notice's own
    with db.session(world.settings) as conn:
        row = conn.execute("SELECT state, gateway_id FROM notices WHERE id = ?", [nid]).fetchone()
    assert row is not None and row[0] == "sent" and row[1] != earlier.gateway_id


def test_sender_never_moves_a_notice_backwards(world: World, memory: MemoryGateway) -> None:
    def delivered_early(msg: Message) -> None:  # a callback racing the sender's record
        with db.session(world.settings) as conn:
            conn.execute("UPDATE notices SET state = 'delivered' WHERE id = ?", [msg.notice_id])

    memory.before_send = delivered_early
    _run(world, memory, max_messages=1)
    assert world.states()["delivered"] == 1


# -- the command, end to end ------------------------------------------------------------------


def test_send_command_dryrun(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("send", "--gateway", "dryrun://", "--ignore-quiet-hours", "--json")
    assert res.code == 0, res.stderr
    data = res.json
    assert {k: data[k] for k in ("sent", "failed", "deferred", "suppressed", "in_doubt")} == {
        "sent": len(world.expected),
        "failed": 0,
        "deferred": 0,
        "suppressed": 0,
        "in_doubt": 0,
    }
    out = world.settings.outbox_dir / "dryrun.jsonl"
    assert len(out.read_text().splitlines()) == len(world.expected)
    bad = cli("send", "--gateway", "nope://", "--json")
    assert bad.code == 2 and "unknown gateway" in bad.stderr
    bad = cli("send", "--gateway", "dryrun://", "--rate", "0", "--json")
    assert bad.code == 2
    texts = [r.stdout + r.stderr for r in cli.captured]
    assert scan([world.settings.home], world.numbers, texts) == []


def test_notices_whose_number_does_not_open_are_kept_named_and_retried(
    world: World,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    """A seal key missing from the keyring: not ``suppressed`` but ``undecryptable``, a loud
    error naming the key and the count, exit 1; sent once the key is back."""
    home = world.settings.home
    shutil.copy(home / "keyring.json", home / "keyring-s1.json")  # the backup lacks s2
    rotated = cli("keys", "rotate", "--seal", "--json")
    assert rotated.code == 0 and rotated.json["active"] == "s2", rotated.stderr
    n = len(world.expected)
    old = ("--keyring", str(home / "keyring-s1.json"))
    res = cli(*old, "send", "--gateway", "dryrun://", "--ignore-quiet-hours", "--json")
    assert res.code == 1
    assert res.json["undecryptable"] == n and res.json["sent"] == 0
    assert res.json["suppressed"] == 0
    assert f"{n} notice(s) not sent" in res.stderr and "'s2', which is not in" in res.stderr
    assert world.states() == {"undecryptable": n}
    again = cli(*old, "send", "--gateway", "dryrun://", "--ignore-quiet-hours", "--json")
    assert again.code == 1 and again.json["undecryptable"] == n  # still loud, nothing lost
    res = cli("send", "--gateway", "dryrun://", "--ignore-quiet-hours", "--json")
    assert res.code == 0, res.stderr
    assert res.json["sent"] == n and res.json["undecryptable"] == 0
    assert world.states() == {"sent": n}
    texts = [r.stdout + r.stderr for r in cli.captured]
    assert scan([home], world.numbers, texts) == []


def test_a_replaced_seal_key_is_named_and_its_notices_wait(
    world: World, memory: MemoryGateway, caplog: pytest.LogCaptureFixture
) -> None:
    other = Keyring.create(world.settings.home / "other-keyring.json")  # s1, other bytes
    report = send(world.settings, other, memory, ignore_quiet_hours=True, backoff=FAST)
    n = len(world.expected)
    assert (report.sent, report.suppressed, report.undecryptable) == (0, 0, n)
    assert report.undecryptable_keys == {"s1": n}
    assert "which the keyring holds with different bytes" in caplog.text
    assert world.states() == {"undecryptable": n}
    with db.session(world.settings) as conn:
        assert outbox.retry_undecryptable(conn, other) == 0  # still does not open
        assert outbox.retry_undecryptable(conn, world.keyring) == n
    assert world.states() == {"pending": n}
    report = send(world.settings, world.keyring, memory, ignore_quiet_hours=True, backoff=FAST)
    assert (report.sent, report.undecryptable) == (n, 0)


def test_quiet_window_rules() -> None:
    from datetime import time

    from breach_notify.notify import quiet

    nine, eight_pm = time(9), time(20)
    assert quiet.in_window(time(9), nine, eight_pm)
    assert not quiet.in_window(time(20), nine, eight_pm)
    assert quiet.in_window(time(23), time(22), time(2))
    assert quiet.in_window(time(1), time(22), time(2))
    assert not quiet.in_window(time(12), time(22), time(2))
    # a US number: one zone per area code; 14:00 UTC is 10:00 in New York (open)
    ny = E164("+12015550123")
    assert quiet.zones(ny) == ("America/New_York",)
    assert quiet.may_send(ny, datetime(2026, 6, 1, 14, 0, tzinfo=UTC), nine, eight_pm)
    assert not quiet.may_send(ny, datetime(2026, 6, 1, 12, 0, tzinfo=UTC), nine, eight_pm)
    # no known zone: the fallback decides
    odd = E164("+447700900123")
    assert quiet.zones(odd) == ()
    at = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)
    assert not quiet.may_send(odd, at, nine, eight_pm, "UTC")
    assert quiet.may_send(odd, at, nine, eight_pm, "Asia/Tokyo")
