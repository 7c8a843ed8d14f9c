"""The Twilio webhooks against a real uvicorn server on loopback, signatures computed with
``twilio.request_validator.RequestValidator``. Requests are journaled and applied in the
background: ``Hooks.state`` and ``Hooks.snapshot`` wait until the journal is applied. Every test
ends with the plaintext scan."""

from __future__ import annotations

import html
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from support.events import wait_applied
from support.subscribers import (
    GB_MOBILE,
    GB_MOBILE_2,
    GB_MOBILE_3,
    US_MOBILE,
    add_notice,
    notice_state,
)
from support.webhooks import LIMIT, PUBLIC, TOKEN, Hooks, Start, message_sid
from twilio.request_validator import RequestValidator

from breach_notify.crypto import Keyring
from breach_notify.notify import applier
from breach_notify.numbers import parse_number
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.store.db import session
from breach_notify.subscribers import events, optin, registry, texts


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
        # START also answers an unknown number (which it makes pending): the JOIN prompt.
        assert texts.join_prompt(hooks.settings) in html.unescape(r.text)
    with session(hooks.settings) as conn:
        trail = events.trail(conn, sid)
    assert trail.count(("opted_out", "sms")) == len(STOP_WORDS)
    assert trail.count(("opted_in", "sms")) == len(STOP_WORDS)


def test_yes_confirms_a_pending_subscription(hooks: Hooks) -> None:
    _pending(hooks, GB_MOBILE)
    assert hooks.state(GB_MOBILE) == "pending"
    r = hooks.sms(GB_MOBILE, " yes! ")
    assert r.status_code == 200 and "they are on now" in r.text
    assert hooks.state(GB_MOBILE) == "active"
    # YES from a number that never asked: the same answer; nothing changes, nothing is created.
    before = hooks.snapshot()
    r2 = hooks.sms(GB_MOBILE_2, "YES")
    assert r2.status_code == 200 and r2.text == r.text
    assert hooks.snapshot() == before


def test_start_does_not_activate_someone_who_never_confirmed(hooks: Hooks) -> None:
    _pending(hooks, GB_MOBILE)
    hooks.sms(GB_MOBILE, "STOP")
    assert hooks.state(GB_MOBILE) == "opted_out"
    r = hooks.sms(GB_MOBILE, "START")
    assert r.status_code == 200  # the usual acknowledgement: it reveals no state
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
    wait_applied(hooks.settings)
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
    wait_applied(hooks.settings)
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
    assert hooks.sms(GB_MOBILE, "STOP").status_code == 200
    assert hooks.state(GB_MOBILE) == "opted_out"  # applied: the applier has let go of it
    # Another process can take the write lock while the server idles.
    probe = (
        "import duckdb,sys; c = duckdb.connect(sys.argv[1]);"
        " c.execute('CREATE TABLE IF NOT EXISTS probe (x INT)'); c.close()"
    )
    subprocess.run(
        [sys.executable, "-c", probe, str(hooks.settings.db_path)], check=True, timeout=60
    )


def test_logs_carry_no_numbers(hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    _active(hooks, GB_MOBILE)
    hooks.sms(GB_MOBILE, f"STOP and do not text {GB_MOBILE_2}")
    hooks.post("/twilio/inbound", {"From": GB_MOBILE, "Body": "x"}, token="forged")
    assert "inbound intent=opt_out accepted" in caplog.text
    assert "missing or bad signature" in caplog.text
    # (the fixture's scan covers every number in caplog.text and the responses)


def test_replayed_start_after_stop_is_ignored(hooks: Hooks) -> None:
    """Twilio signatures carry no nonce: a captured START posted again must not re-subscribe."""
    _active(hooks, GB_MOBILE)
    assert hooks.sms(GB_MOBILE, "STOP").status_code == 200
    post_start = hooks.captured_sms(GB_MOBILE, "START")

    assert post_start().status_code == 200
    assert hooks.state(GB_MOBILE) == "active"
    assert hooks.sms(GB_MOBILE, "STOP").status_code == 200
    assert hooks.state(GB_MOBILE) == "opted_out"
    replay = post_start()  # byte for byte
    assert replay.status_code == 200  # acknowledged like any message: nothing to learn from it
    assert hooks.state(GB_MOBILE) == "opted_out"


def test_replies_do_not_depend_on_the_numbers_state(hooks: Hooks) -> None:
    _active(hooks, GB_MOBILE)
    _pending(hooks, GB_MOBILE_2)
    _active(hooks, GB_MOBILE_3)
    hooks.sms(GB_MOBILE_3, "STOP")
    for word in ("YES", "START", "HELP", "STOP", "hello"):
        answers = {
            hooks.sms(n, word).text for n in (GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, US_MOBILE)
        }
        assert len(answers) == 1, word


def test_unwritable_journal_answers_503_and_keeps_nothing(hooks: Hooks) -> None:
    sid = _active(hooks, GB_MOBILE)
    with session(hooks.settings) as conn:
        add_notice(conn, "n1", sid, "sent", gateway_id="SM1")
    blocker = hooks.settings.journal_path.parent
    blocker.write_text("")  # the journal's folder cannot be created: every write fails
    before = hooks.snapshot()
    for r in (hooks.sms(GB_MOBILE, "STOP"), hooks.status("SM1", "delivered")):
        assert r.status_code == 503 and r.headers.get("retry-after")
    assert hooks.sms(GB_MOBILE, "HELP").status_code == 200  # needs no journal
    assert hooks.snapshot() == before and blocker.read_text() == ""
    blocker.unlink()  # room again: the next request is kept
    assert hooks.sms(GB_MOBILE, "STOP").status_code == 200
    assert hooks.state(GB_MOBILE) == "opted_out"


def test_full_journal_answers_503_with_nothing_half_written(start: Start) -> None:
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    h = start(apply_events=False, journal_max_bytes=48 * 1024)

    def post(i: int) -> tuple[str, int]:
        sid = f"SM{i:032x}"
        return sid, h.status(sid, "delivered").status_code

    with ThreadPoolExecutor(16) as pool:
        codes = dict(pool.map(post, range(600)))
    assert set(codes.values()) == {204, 503}
    with sqlite3.connect(h.settings.journal_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}
    assert kept == {f"st:{sid}:delivered" for sid, code in codes.items() if code == 204}
    with session(h.settings) as conn:  # once applied, the entries make room for new ones
        assert applier.drain(conn).applied == len(kept)
    assert h.status("SMafter", "delivered").status_code == 204


def test_malformed_body_is_400_before_the_journal(hooks: Hooks) -> None:
    r = httpx.post(
        hooks.base + "/twilio/status",
        content=b"MessageSid=SM1&MessageStatus=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert hooks.pending() == 0


def test_healthz_reports_the_backlog(start: Start) -> None:
    h = start(apply_events=False, events_alarm_seconds=0.5)
    _active(h, GB_MOBILE)
    first = httpx.get(h.base + "/healthz").json()
    assert first == {"status": "ok", "events": {"pending": 0, "oldest_seconds": 0.0}}
    h.sms(GB_MOBILE, "STOP")
    h.status("SM1", "sent")
    time.sleep(0.6)
    later = httpx.get(h.base + "/healthz").json()
    assert later["status"] == "alarm" and later["events"]["pending"] == 2
    assert later["events"]["oldest_seconds"] >= 0.5


def test_logs_carry_no_query_strings_or_signatures(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    _active(hooks, GB_MOBILE)
    path = "/twilio/inbound?n=44+7911+123456"
    params = {"From": GB_MOBILE, "Body": "HELP", "MessageSid": message_sid()}
    forged = hooks.post(path, params, token="forged", signed_url=PUBLIC + path)
    signed = hooks.post(path, params, signed_url=PUBLIC + path)
    assert (forged.status_code, signed.status_code) == (403, 200)
    good = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
    bad = RequestValidator("forged").compute_signature(PUBLIC + path, params)
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith("httpx")  # the client's
    )
    for secret in ("7911", "n=44", good, bad, "X-Twilio-Signature"):
        assert secret not in logged


def test_keyring_is_loaded_once_and_reloaded_after_rotation(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breach_notify.web import keys

    loads: list[object] = []
    real = Keyring.load
    monkeypatch.setattr(keys.Keyring, "load", lambda path: loads.append(path) or real(path))
    _active(hooks, GB_MOBILE)
    for _ in range(5):
        assert hooks.sms(GB_MOBILE, "HELP").status_code == 200
        assert hooks.sms(GB_MOBILE, "YES").status_code == 200
    time.sleep(keys.CHECK_SECONDS + 0.1)
    assert hooks.sms(GB_MOBILE, "YES").status_code == 200
    assert loads == []  # the file was looked at (stat), not read
    hooks.ring.rotate("pseudonym")  # a new file renamed into place
    _active(hooks, GB_MOBILE_2)  # known only under the new key
    time.sleep(keys.CHECK_SECONDS + 0.1)
    assert hooks.sms(GB_MOBILE_2, "STOP").status_code == 200
    assert hooks.state(GB_MOBILE_2) == "opted_out"
    assert len(loads) == 1
