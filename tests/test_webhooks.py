"""The Twilio webhooks against a real uvicorn server on loopback, signatures computed with
``twilio.request_validator.RequestValidator``. Every test ends with the plaintext scan."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from support import privacy
from support.net import free_port
from support.subscribers import (
    ALL_NUMBERS,
    GB_MOBILE,
    GB_MOBILE_2,
    US_MOBILE,
    add_notice,
    notice_state,
    snapshot,
)
from twilio.request_validator import RequestValidator

from breach_notify.crypto import Keyring
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store.db import session
from breach_notify.subscribers import events, optin, registry, texts
from breach_notify.web.server import build

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://hooks.example.org/bn"
LIMIT = 4096


@dataclass
class Hooks:
    base: str
    settings: Settings
    ring: Keyring
    texts: list[str] = field(default_factory=list)

    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        token: str = TOKEN,
        signed_url: str | None = None,
        signed_params: dict[str, str] | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        sig = signature
        if sig is None:
            sig = RequestValidator(token).compute_signature(
                signed_url or PUBLIC + path, signed_params if signed_params is not None else params
            )
        headers = {"X-Twilio-Signature": sig} if sig else {}
        r = httpx.post(self.base + path, data=params, headers=headers, timeout=20)
        self.texts.append(r.text)
        return r

    def sms(self, sender: str, body: str) -> httpx.Response:
        return self.post(
            "/twilio/inbound",
            {
                "From": sender,
                "To": "+15005550006",
                "Body": body,
                "MessageSid": "SM" + "0" * 32,
                "AccountSid": "AC1",
            },
        )

    def status(self, sid: str, status: str, error: str = "") -> httpx.Response:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1"}
        if error:
            params["ErrorCode"] = error
        return self.post("/twilio/status", params)

    def state(self, number: str) -> str | None:
        with session(self.settings) as conn:
            sub = registry.find(conn, self.ring, parse_number(number))
        return None if sub is None else sub.status

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        with session(self.settings) as conn:
            return snapshot(conn)


@pytest.fixture
def hooks(home: Path, keyring: Keyring, caplog: pytest.LogCaptureFixture) -> Iterator[Hooks]:
    caplog.set_level("INFO")
    settings = Settings(home=home, max_body_bytes=LIMIT)
    with session(settings):
        pass  # create and migrate the store before the server starts
    port = free_port()
    server = build(settings, host="127.0.0.1", port=port, public_url=PUBLIC, auth_token=TOKEN)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    h = Hooks(f"http://127.0.0.1:{port}", settings, keyring)
    yield h
    server.should_exit = True
    thread.join(10)
    hits = privacy.scan([home], ALL_NUMBERS, texts=[*h.texts, caplog.text])
    assert hits == [], hits


def _active(h: Hooks, number: str) -> str:
    with session(h.settings) as conn:
        return registry.create(
            conn,
            h.ring,
            parse_number(number),
            status="active",
            language="en",
            now=datetime.now(UTC),
            consent_source="test",
        )


def _pending(h: Hooks, number: str) -> None:
    with session(h.settings) as conn:
        optin.add(conn, h.ring, h.settings, MemoryGateway(), parse_number(number))


STOP_WORDS = [
    "STOP",
    "stopall",
    " Unsubscribe ",
    "cancel!",
    "End.",
    "QUIT",
    "revoke",
    "OptOut",
    "opt-out",
    "please stop texting me",
    "Unsubscribe me",
]


def test_stop_family_then_start(hooks: Hooks) -> None:
    sid = _active(hooks, GB_MOBILE)
    for word in STOP_WORDS:
        r = hooks.sms(GB_MOBILE, word)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        assert "<Message>" not in r.text  # the carrier sends the mandated STOP reply
        assert hooks.state(GB_MOBILE) == "opted_out", word
        resume = "UNSTOP" if word == "QUIT" else "start"
        r = hooks.sms(GB_MOBILE, resume)
        assert hooks.state(GB_MOBILE) == "active", resume
        assert texts.resumed(hooks.settings) in r.text.replace("&#x27;", "'")
    with session(hooks.settings) as conn:
        trail = events.trail(conn, sid)
    assert trail.count(("opted_out", "sms")) == len(STOP_WORDS)
    assert trail.count(("opted_in", "sms")) == len(STOP_WORDS)


def test_yes_confirms_a_pending_subscription(hooks: Hooks) -> None:
    _pending(hooks, GB_MOBILE)
    assert hooks.state(GB_MOBILE) == "pending"
    r = hooks.sms(GB_MOBILE, " yes! ")
    assert r.status_code == 200 and "confirmed" in r.text
    assert hooks.state(GB_MOBILE) == "active"
    # YES from a number that never asked changes nothing and creates nothing.
    before = hooks.snapshot()
    r = hooks.sms(GB_MOBILE_2, "YES")
    assert r.status_code == 200 and "no subscription to confirm" in r.text
    assert hooks.snapshot() == before


def test_start_does_not_activate_someone_who_never_confirmed(hooks: Hooks) -> None:
    _pending(hooks, GB_MOBILE)
    hooks.sms(GB_MOBILE, "STOP")
    assert hooks.state(GB_MOBILE) == "opted_out"
    r = hooks.sms(GB_MOBILE, "START")
    assert r.status_code == 200 and "<Message>" not in r.text
    assert hooks.state(GB_MOBILE) == "opted_out"


@pytest.mark.parametrize("word", ["HELP", "info", " Help? "])
def test_help_and_info_reply_and_change_nothing(hooks: Hooks, word: str) -> None:
    _active(hooks, GB_MOBILE)
    before = hooks.snapshot()
    r = hooks.sms(GB_MOBILE, word)
    assert r.status_code == 200
    assert "Reply STOP to opt out" in r.text
    assert hooks.snapshot() == before
    # HELP from an unknown number gets the same help.
    assert hooks.sms(US_MOBILE, word).text == r.text


def test_twilio_opt_out_type_wins(hooks: Hooks) -> None:
    """Advanced Opt-Out custom keywords arrive with Twilio's verdict in ``OptOutType``."""
    _active(hooks, GB_MOBILE)
    params = {"From": GB_MOBILE, "Body": "ARRET", "OptOutType": "STOP", "MessageSid": "SM9"}
    assert hooks.post("/twilio/inbound", params).status_code == 200
    assert hooks.state(GB_MOBILE) == "opted_out"
    params = {"From": GB_MOBILE, "Body": "REPRENDRE", "OptOutType": "START", "MessageSid": "SM8"}
    assert hooks.post("/twilio/inbound", params).status_code == 200
    assert hooks.state(GB_MOBILE) == "active"


@pytest.mark.slow
def test_busy_store_keeps_stop_and_answers_503_to_the_rest(home: Path, keyring: Keyring) -> None:
    settings = Settings(home=home, lock_timeout_seconds=0.3)
    with session(settings) as conn:
        registry.create(
            conn,
            keyring,
            parse_number(GB_MOBILE),
            status="active",
            language="en",
            now=datetime.now(UTC),
        )
    port = free_port()
    server = build(settings, host="127.0.0.1", port=port, public_url=PUBLIC, auth_token=TOKEN)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(3); c.close()",
            str(settings.db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        while not server.started:
            time.sleep(0.02)
        h = Hooks(f"http://127.0.0.1:{port}", settings, keyring)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = h.sms(GB_MOBILE, "START")  # not consent-critical: Twilio may retry, nothing kept
        assert r.status_code == 503 and r.headers.get("retry-after")
        r = h.sms(GB_MOBILE, "STOP")  # an opt-out is never lost: kept as pseudonyms, 200
        assert r.status_code == 200 and "<Message>" not in r.text
        spooled = list((home / "spool").glob("optout*.jsonl"))
        assert len(spooled) == 1
        holder.wait(30)
        assert h.state(GB_MOBILE) == "active"  # nothing applied yet
        r = h.sms(GB_MOBILE, "HELP")  # the next request that gets the store applies the spool
        assert r.status_code == 200
    finally:
        holder.wait(30)
        server.should_exit = True
        thread.join(10)
    assert h.state(GB_MOBILE) == "opted_out"
    assert not list((home / "spool").glob("optout*.jsonl"))
    assert privacy.scan([home], ALL_NUMBERS, texts=h.texts) == []


def test_other_text_changes_nothing(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    before = hooks.snapshot()
    r = hooks.sms(GB_MOBILE, "thanks, is my number in the leak?")
    assert r.status_code == 200 and "<Message>" not in r.text
    assert hooks.snapshot() == before


def test_forged_and_missing_signatures_are_403_and_change_nothing(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    with session(hooks.settings) as conn:
        sid = registry.find(conn, hooks.ring, parse_number(GB_MOBILE)).id  # type: ignore[union-attr]
        add_notice(conn, "n1", sid, "sent", gateway_id="SM1")
    before = hooks.snapshot()
    stop = {"From": GB_MOBILE, "Body": "STOP", "MessageSid": "SMx"}
    delivered = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    for path, params in (("/twilio/inbound", stop), ("/twilio/status", delivered)):
        assert hooks.post(path, params, signature="").status_code == 403  # missing
        assert hooks.post(path, params, token="wrong-token").status_code == 403  # forged
        assert hooks.post(path, params, signature="AAAA" * 7).status_code == 403  # garbage
        # Signed for another URL (the loopback address rather than the public one).
        assert hooks.post(path, params, signed_url=hooks.base + path).status_code == 403
        # Signed for other parameters (tampered in transit).
        other = {**params, "Body": "HELLO", "MessageStatus": "sent"}
        assert hooks.post(path, params, signed_params=other).status_code == 403
    assert hooks.snapshot() == before
    # The right signature works, with or without the default port in the URL.
    r = hooks.post(
        "/twilio/inbound", stop, signed_url="https://hooks.example.org:443/bn/twilio/inbound"
    )
    assert r.status_code == 200 and hooks.state(GB_MOBILE) == "opted_out"


def test_status_callbacks_replayed_and_out_of_order(hooks: Hooks) -> None:
    sid = _active(hooks, GB_MOBILE)
    with session(hooks.settings) as conn:
        for i, state in enumerate(["sent", "sent", "sent", "in_doubt", "sending"]):
            add_notice(conn, f"n{i}", sid, state, gateway_id=f"SM{i}", breach=f"b{i}")
    # In order, then replayed, then a late 'sent': delivered stays delivered.
    assert hooks.status("SM0", "delivered").status_code == 204
    for late in ("delivered", "sent", "queued", "sending", "failed", "undelivered"):
        assert (
            hooks.status(
                "SM0", late, "30003" if late in ("failed", "undelivered") else ""
            ).status_code
            == 204
        )
    # Out of order: delivered arrives before sent.
    hooks.status("SM1", "delivered")
    hooks.status("SM1", "sent")
    # Undelivered, then a late delivery receipt.
    hooks.status("SM2", "undelivered", "30003")
    hooks.status("SM2", "undelivered", "30003")
    # A callback settles an in-doubt or sending notice.
    hooks.status("SM3", "sent")
    hooks.status("SM4", "failed", "30005")
    # Unknown message id and unknown status: accepted, nothing happens.
    before = hooks.snapshot()
    assert hooks.status("SMnope", "delivered").status_code == 204
    assert hooks.status("SM3", "bogus").status_code == 204
    assert hooks.snapshot() == before
    with session(hooks.settings) as conn:
        got = {f"n{i}": notice_state(conn, f"n{i}") for i in range(5)}
    assert got == {
        "n0": ("delivered", None),
        "n1": ("delivered", None),
        "n2": ("undelivered", "30003"),
        "n3": ("sent", None),
        "n4": ("failed", "30005"),
    }
    hooks.status("SM2", "delivered")
    with session(hooks.settings) as conn:
        assert notice_state(conn, "n2")[0] == "delivered"
        delivered = conn.execute(
            "SELECT id FROM notices WHERE delivered_at IS NOT NULL ORDER BY id"
        ).fetchall()
        assert delivered == [("n0",), ("n1",), ("n2",)]


def test_status_21610_opts_the_recipient_out(hooks: Hooks) -> None:
    sid = _active(hooks, GB_MOBILE)
    with session(hooks.settings) as conn:
        add_notice(conn, "n1", sid, "sent", gateway_id="SM1")
    hooks.status("SM1", "failed", "21610")
    assert hooks.state(GB_MOBILE) == "opted_out"
    with session(hooks.settings) as conn:
        assert events.trail(conn, sid)[-1] == ("opted_out", "gateway")
        assert notice_state(conn, "n1") == ("failed", "21610")


def test_oversized_bodies_are_refused(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    before = hooks.snapshot()
    big = {"From": GB_MOBILE, "Body": "STOP", "Pad": "x" * LIMIT}
    r = hooks.post("/twilio/inbound", big)
    assert r.status_code == 413
    # Without a Content-Length (chunked), the limit still holds.
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/inbound", big)

    def chunks() -> Iterator[bytes]:
        data = httpx.QueryParams(big).__str__().encode()
        for i in range(0, len(data), 512):
            yield data[i : i + 512]

    r = httpx.post(
        hooks.base + "/twilio/inbound",
        content=chunks(),
        headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert hooks.snapshot() == before
    assert hooks.state(GB_MOBILE) == "active"
    # Just under the limit is fine.
    ok = {"From": GB_MOBILE, "Body": "HELP", "Pad": "x" * (LIMIT - 200)}
    assert hooks.post("/twilio/inbound", ok).status_code == 200


def test_store_is_not_held_between_requests(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    assert hooks.sms(GB_MOBILE, "HELP").status_code == 200
    # Another process can take the write lock while the server idles.
    probe = (
        "import duckdb,sys; c = duckdb.connect(sys.argv[1]);"
        " c.execute('CREATE TABLE IF NOT EXISTS probe (x INT)'); c.close()"
    )
    subprocess.run(
        [sys.executable, "-c", probe, str(hooks.settings.db_path)], check=True, timeout=60
    )


@pytest.mark.slow
def test_waits_for_a_store_held_by_another_process(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(2); c.close()",
            str(hooks.settings.db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        r = hooks.sms(GB_MOBILE, "STOP")
        assert r.status_code == 200
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait(30)
    assert hooks.state(GB_MOBILE) == "opted_out"


def test_logs_carry_no_numbers(hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    _active(hooks, GB_MOBILE)
    hooks.sms(GB_MOBILE, f"STOP and do not text {GB_MOBILE_2}")
    hooks.post("/twilio/inbound", {"From": GB_MOBILE, "Body": "x"}, token="forged")
    assert "inbound intent=opt_out known=True changed=True" in caplog.text
    assert "missing or bad signature" in caplog.text
    # (the fixture's scan covers every number in caplog.text and the responses)
