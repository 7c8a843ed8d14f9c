"""kill -9 a real sender process mid-run, restart it, and count what the fake Twilio received."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.fake_twilio import FakeTwilio, env
from support.privacy import scan
from support.sender import build, states

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings
from breach_notify.store import db


def _start(home: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breach_notify",
            "--home",
            str(home),
            "send",
            "--gateway",
            url,
            "--ignore-quiet-hours",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env()},
    )


def _kill(proc: subprocess.Popen[str], outputs: list[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    outputs += [out, err]


def _wait_for(cond: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_mid_run_then_restart(settings: Settings, keyring: Keyring) -> None:
    w = build(settings, keyring, n=150, seed=21)
    outputs: list[str] = []
    rng = random.Random(5)
    with FakeTwilio(delay=0.01) as fake:
        url = fake.gateway_url()

        # 1. Killed while a request is in flight: Twilio has created the message, the sender
        #    has not heard back (the crash DESIGN §6 is about).
        reached, release = threading.Event(), threading.Event()

        def hold_fifth(msg: dict[str, Any]) -> None:
            if len(fake.ledger) == 5:
                reached.set()
                release.wait(30)

        fake.on_create = hold_fifth
        proc = _start(settings.home, url)
        assert reached.wait(60)
        _kill(proc, outputs)
        release.set()
        fake.on_create = None
        assert len(fake.ledger) == 5
        with db.session(settings) as conn:
            assert states(conn).get("sending", 0) >= 1  # the fifth, and maybe its chunk

        # 2. Killed at arbitrary moments while sending.
        for _ in range(3):
            before = len(fake.ledger)
            proc = _start(settings.home, url)
            _wait_for(lambda b=before: len(fake.ledger) >= b + 4)
            time.sleep(rng.uniform(0, 0.08))
            _kill(proc, outputs)

        # 3. Killed early: during start-up or the reconciliation of what the last kill left.
        for _ in range(2):
            proc = _start(settings.home, url)
            time.sleep(rng.uniform(0.2, 0.7))
            _kill(proc, outputs)

        assert len(fake.ledger) < len(w.expected), "the kills came too late to test anything"

        # 4. A clean run finishes the job.
        time.sleep(0.3)  # let the server finish requests a killed sender left in flight
        before_final = len(fake.ledger)
        proc = _start(settings.home, url)
        out, err = proc.communicate(timeout=120)
        outputs += [out, err]
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert report["in_doubt"] == 0 and report["failed"] == 0
        assert report["sent"] == len(w.expected) - before_final

        got = fake.recipients()
        assert set(got) == w.expected
        assert [n for n, c in got.items() if c != 1] == []
        with db.session(settings) as conn:
            assert states(conn) == {"sent": len(w.expected)}
            ids = {r[0] for r in conn.execute("SELECT gateway_id FROM notices").fetchall()}
        assert ids == {m["sid"] for m in fake.ledger}
    assert scan([settings.home], w.numbers, outputs) == []


@pytest.mark.slow
def test_stop_from_another_process_during_a_paced_run(settings: Settings, keyring: Keyring) -> None:
    """The sender lets go of the store while it waits for the rate limit, so another process
    (the webhooks) can record a STOP mid-run; the sender then skips that subscriber."""
    w = build(settings, keyring, n=18, seed=22)
    order = w.notice_order()
    late = order[-3:]
    by_sid = {v: k for k, v in w.subs.items()}
    outputs: list[str] = []
    with FakeTwilio() as fake:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "breach_notify",
                "--home",
                str(settings.home),
                "send",
                "--gateway",
                fake.gateway_url(),
                "--rate",
                "3",
                "--ignore-quiet-hours",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env()},
        )
        # at 3/s the last three go ~4 s in: time for the STOP even on a loaded machine
        _wait_for(lambda: len(fake.ledger) >= 5)
        started = time.monotonic()
        with db.session(settings) as conn:  # waits for the sender to let go of the lock
            waited = time.monotonic() - started
            for sid in late:
                conn.execute("UPDATE subscribers SET status = 'opted_out' WHERE id = ?", [sid])
        out, err = proc.communicate(timeout=60)
        outputs += [out, err]
        assert proc.returncode == 0, err
        assert waited < 5.0  # the real proof: the STOP took effect mid-run, below
        report = json.loads(out)
        assert report["suppressed"] == 3 and report["sent"] == len(w.expected) - 3
        got = fake.recipients()
        assert set(got) == w.expected - {by_sid[s] for s in late}
        assert set(got.values()) == {1}
    assert scan([settings.home], w.numbers, outputs) == []


@pytest.mark.slow
def test_two_senders_at_once_send_each_notice_once(settings: Settings, keyring: Keyring) -> None:
    """The deployments run one sender, but two by mistake must still not duplicate anything."""
    w = build(settings, keyring, n=50, seed=23)
    outputs: list[str] = []
    with FakeTwilio(delay=0.005) as fake:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "breach_notify",
                    "--home",
                    str(settings.home),
                    "send",
                    "--gateway",
                    fake.gateway_url(),
                    "--rate",
                    "20",
                    "--ignore-quiet-hours",
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **env()},
            )
            for _ in range(2)
        ]
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            outputs += [out, err]
            assert proc.returncode == 0, err
            reports.append(json.loads(out))
        assert sum(r["sent"] for r in reports) == len(w.expected)
        # (whether they interleave depends on who catches the lock between waits)
        got = fake.recipients()
        assert set(got) == w.expected and set(got.values()) == {1}
    assert scan([settings.home], w.numbers, outputs) == []
