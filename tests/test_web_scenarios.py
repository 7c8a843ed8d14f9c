"""Nothing the web acknowledges is lost: the real ``web`` process on loopback, bursts of signed
status callbacks and inbound messages 16 at a time, with the store idle, during a send of 2,000+
notices, held by another process for 60 s, and across a kill -9. Each ends with the plaintext
scan over the store, the journal, the web's log and every response."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from support import privacy
from support.events import wait_applied
from support.sender import add_breach, numbers
from support.subscribers import add_notice
from support.web import Web, message_sid

from breach_notify.crypto import Keyring
from breach_notify.notify.match import match
from breach_notify.notify.outbox import PROVIDER_STATES as STATES
from breach_notify.notify.outbox import RANK
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.store import db
from breach_notify.subscribers import consent, events, registry

pytestmark = pytest.mark.slow

CONCURRENCY = 16
# Takes the store (waiting while the web's applier has it, as an ingest would), holds it 60 s.
HOLDER = """
import duckdb, sys, time
for _ in range(600):
    try:
        c = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        time.sleep(0.05)
print("held", flush=True)
time.sleep(60)
c.close()
"""


@dataclass
class Request:
    path: str
    params: dict[str, str]
    kind: str  # "stop" | "start" | "yes" | "help" | "status"
    who: str = ""  # subscriber id (inbound) or gateway id (status)
    status: str = ""


@dataclass
class World:
    numbers: list[str] = field(repr=False)
    stoppers: dict[str, str] = field(default_factory=dict)  # number → subscriber id
    resumers: dict[str, str] = field(default_factory=dict)
    confirmers: dict[str, str] = field(default_factory=dict)
    callbacks: dict[str, list[str]] = field(default_factory=dict)  # gateway id → statuses
    notice_of: dict[str, str] = field(default_factory=dict)  # gateway id → notice id

    def requests(self, seed: int = 7) -> list[Request]:
        out: list[Request] = []
        for kind, group, word in (
            ("stop", self.stoppers, "STOP"),
            ("start", self.resumers, "START"),
            ("yes", self.confirmers, "YES"),
        ):
            for number, sid in group.items():
                params = {"From": number, "To": "+15005550006", "Body": word}
                params["MessageSid"] = message_sid()
                out.append(Request("/twilio/inbound", params, kind, sid))
        for number in self.numbers[:20]:
            params = {"From": number, "Body": "HELP", "MessageSid": message_sid()}
            out.append(Request("/twilio/inbound", params, "help"))
        for gid, statuses in self.callbacks.items():
            for status in statuses:
                params = {"MessageSid": gid, "MessageStatus": status}
                if status == "failed":
                    params["ErrorCode"] = "30005"
                out.append(Request("/twilio/status", params, "status", gid, status))
        random.Random(seed).shuffle(out)
        return out


def seed_world(
    settings: Settings, ring: Keyring, *, stoppers: int, others: int = 40, notices: int = 200
) -> World:
    """Active subscribers who will STOP, opted-out ones who will START, pending ones who will
    answer YES, and notices already sent whose callbacks are due."""
    nums = numbers(stoppers + 2 * others, region="FR", seed=5)
    world = World(nums)
    now = datetime.now(UTC)
    with db.session(settings) as conn, db.transaction(conn):
        chunks = (nums[:stoppers], nums[stoppers : stoppers + others], nums[stoppers + others :])
        for group, chunk, status in zip(
            (world.stoppers, world.resumers, world.confirmers),
            chunks,
            ("active", "active", "pending"),
            strict=True,
        ):
            ids = registry.create_many(
                conn,
                ring,
                [(E164(n), "en") for n in chunk],
                status=status,
                now=now - timedelta(days=1),
                consent_source="test",
            )
            group.update(zip(chunk, ids, strict=True))
        for sid in world.resumers.values():
            consent.opt_out(conn, sid, "sms", now - timedelta(hours=1))
        subs = list(world.stoppers.values())
        for i in range(notices):
            gid = f"SMold{i:027d}"
            add_notice(conn, f"old{i}", subs[i % len(subs)], "sent", gateway_id=gid, breach=f"o{i}")
            world.notice_of[gid] = f"old{i}"
            world.callbacks[gid] = ["sent", "failed" if i % 5 == 0 else "delivered"]
    return world


@dataclass
class Outcome:
    request: Request
    code: int | None  # None: no answer (connection refused or dropped)
    seconds: float
    text: str = ""


def fire(
    web: Web, requests: list[Request], *, on_progress: Callable[[int], None] | None = None
) -> list[Outcome]:
    """Every request, ``CONCURRENCY`` at a time, each thread with its own client."""
    local = threading.local()
    done = [0]
    lock = threading.Lock()
    clients: list[httpx.Client] = []

    def one(req: Request) -> Outcome:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=30)
            with lock:
                clients.append(local.client)
        started = time.monotonic()
        try:
            r = web.post(local.client, req.path, req.params)
            out = Outcome(req, r.status_code, time.monotonic() - started, r.text)
        except httpx.HTTPError:
            out = Outcome(req, None, time.monotonic() - started)
        with lock:
            done[0] += 1
            n = done[0]
        if on_progress is not None:
            on_progress(n)
        return out

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        outcomes = list(pool.map(one, requests))
    for client in clients:
        client.close()
    return outcomes


def check(settings: Settings, world: World, outcomes: list[Outcome], *, all_acked: bool) -> None:
    """Every acknowledged event applied exactly once; with ``all_acked``, every one was."""
    acked = [o for o in outcomes if o.code is not None and 200 <= o.code < 300]
    if all_acked:
        assert len(acked) == len(outcomes), {o.code for o in outcomes}
    wait_applied(settings, timeout=60)
    with db.session(settings) as conn:
        status = dict(conn.execute("SELECT id, status FROM subscribers").fetchall())
        states = dict(conn.execute("SELECT id, state FROM notices").fetchall())
        for o in acked:
            req = o.request
            if req.kind in ("stop", "start", "yes"):
                want = "opted_out" if req.kind == "stop" else "active"
                assert status[req.who] == want, req.kind
                event = {"stop": "opted_out", "start": "opted_in", "yes": "confirmed"}[req.kind]
                assert events.trail(conn, req.who).count((event, "sms")) == 1, req.kind
            elif req.kind == "status":
                got = states[world.notice_of[req.who]]
                assert RANK[got] >= RANK[STATES[req.status]], (got, req.status)
                assert got in {"sent", *(STATES[s] for s in world.callbacks[req.who])}
        applied = conn.execute("SELECT count(*) FROM applied_events").fetchone()
    with sqlite3.connect(settings.journal_path) as jc:
        journaled = jc.execute("SELECT count(*) FROM events").fetchone()
        unapplied = jc.execute("SELECT count(*) FROM events WHERE applied_us IS NULL").fetchone()
    assert applied == journaled and unapplied == (0,)  # each journaled event applied once


def scan(settings: Settings, world: World, web: Web, outcomes: list[Outcome], *more: str) -> None:
    texts = [web.log, *(o.text for o in outcomes), *more]
    assert privacy.scan([settings.home], world.numbers, texts=texts) == []


@pytest.fixture
def web(settings: Settings, keyring: Keyring) -> Iterator[Web]:
    with db.session(settings):
        pass
    w = Web(settings.home).start()
    yield w
    w.stop()


def test_nothing_is_lost_while_the_store_is_idle(
    settings: Settings, keyring: Keyring, web: Web
) -> None:
    world = seed_world(settings, keyring, stoppers=120)
    outcomes = fire(web, world.requests())
    check(settings, world, outcomes, all_acked=True)
    scan(settings, world, web, outcomes)


def test_nothing_is_lost_during_a_send_of_2000_notices(
    settings: Settings, keyring: Keyring, web: Web
) -> None:
    world = seed_world(settings, keyring, stoppers=2100, notices=300)
    with db.session(settings) as conn:
        add_breach(conn, keyring, "big", list(world.stoppers))
        assert match(conn).new_notices == 2100
    sender = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breach_notify",
            "--home",
            str(settings.home),
            "send",
            "--gateway",
            "dryrun://",
            "--rate",
            "250",
            "--ignore-quiet-hours",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)  # the send is under way
    requests = world.requests()
    stops = {r.who: r for r in requests if r.kind == "stop"}
    keep = set(list(stops)[:150])  # 150 of the 2,100 recipients stop during the send
    requests = [r for r in requests if r.kind != "stop" or r.who in keep]
    outcomes = fire(web, requests)
    assert sender.poll() is None, "the send ended before the burst did: slow it down"
    out, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err[-2000:]
    check(settings, world, outcomes, all_acked=True)
    with db.session(settings) as conn:
        rows = conn.execute(
            "SELECT subscriber_id, state, sent_at FROM notices WHERE breach_id = 'big'"
        ).fetchall()
    with sqlite3.connect(settings.journal_path) as jc:
        accepted = {eid: us for eid, us in jc.execute("SELECT event_id, accepted_us FROM events")}
    for sub, state, sent_at in rows:
        if sub not in keep:
            assert state == "sent"
            continue
        assert state in ("sent", "suppressed")
        if state == "sent":  # only if it left before the STOP could bind the next chunk
            stop_us = accepted[f"in:{stops[sub].params['MessageSid']}"]
            assert sent_at.timestamp() < stop_us / 1e6 + 3.0
    scan(settings, world, web, outcomes, out, err)


def test_nothing_is_lost_while_another_process_holds_the_store_for_60_seconds(
    settings: Settings, keyring: Keyring, web: Web
) -> None:
    world = seed_world(settings, keyring, stoppers=120)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(settings.db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        outcomes = fire(web, world.requests())
        assert time.monotonic() - held_at < 55, "the burst must end while the store is held"
        assert holder.poll() is None
        assert all(o.code is not None and o.code < 300 for o in outcomes)
        yes = [o.seconds for o in outcomes if o.request.kind in ("yes", "start")]
        assert max(yes) < 2.0  # the acknowledgement comes at once, the store notwithstanding
        assert all("they are on now" in o.text for o in outcomes if o.request.kind == "yes")
        assert journal_pending(settings) > 0  # nothing could be applied yet
    finally:
        holder.wait(90)
    check(settings, world, outcomes, all_acked=True)
    scan(settings, world, web, outcomes)


def journal_pending(settings: Settings) -> int:
    from breach_notify.events import journal

    return journal.backlog(settings.journal_path).pending


def test_every_acknowledged_event_survives_kill_9(
    settings: Settings, keyring: Keyring, web: Web
) -> None:
    world = seed_world(settings, keyring, stoppers=200, notices=300)
    requests = world.requests()
    killed = threading.Event()

    def kill_midway(n: int) -> None:
        if n == len(requests) // 3 and not killed.is_set():
            killed.set()
            web.kill()

    outcomes = fire(web, requests, on_progress=kill_midway)
    assert killed.is_set()
    answered = sum(o.code is not None for o in outcomes)
    assert len(requests) // 3 <= answered < len(requests)
    web.start()  # the restarted process applies what the dead one acknowledged
    check(settings, world, outcomes, all_acked=False)
    scan(settings, world, web, outcomes)
