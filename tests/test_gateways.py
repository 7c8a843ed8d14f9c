"""Gateways by URL, shared validation, dry-run output, and Twilio through the real SDK."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from support.fake_twilio import ACCOUNT_SID, FakeTwilio, Fault, env
from support.privacy import scan
from twilio.base.exceptions import TwilioRestException

from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.errors import (
    AccountError,
    BadGatewayURL,
    InvalidMessage,
    PermanentError,
    RecipientOptedOut,
    TransientError,
)
from breach_notify.sms.gateway import Message, NoticeLookup, open_gateway
from breach_notify.sms.gateways import dryrun, memory, twilio

TO = "+33612345678"
BODY = 'Privacy Watch: your number is in the "T" leak. Advice: https://x.org Reply STOP to opt out.'


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("memory://", memory.MemoryGateway),
        ("dryrun://", dryrun.DryRunGateway),
        ("dryrun:///tmp/some/out.jsonl", dryrun.DryRunGateway),
        ("dryrun://relative/out.jsonl", BadGatewayURL),
        ("smtp://x", BadGatewayURL),
        ("twilio://?from=%2B15005550006", twilio.TwilioGateway),
        ("twilio://?messaging_service=MG123", twilio.TwilioGateway),
        ("twilio://?messaging_service=XX123", BadGatewayURL),
        ("twilio://?from=%2B15005550006&messaging_service=MG1", BadGatewayURL),
        ("twilio://", BadGatewayURL),
        ("twilio://AC1:token@api?from=%2B15005550006", BadGatewayURL),
        ("twilio://?from=%2B15005550006&validity=abc", BadGatewayURL),
        ("twilio://?from=%2B15005550006&validity=999999", BadGatewayURL),
        ("twilio://?from=%2B15005550006&timeout=0", BadGatewayURL),
        ("twilio://?from=%2B15005550006&api_base=ftp://x", BadGatewayURL),
        ("twilio://?from=%2B15005550006&colour=red", BadGatewayURL),
    ],
)
def test_open_gateway(
    url: str, expect: type, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for k, v in env().items():
        monkeypatch.setenv(k, v)
    url = url.replace("/tmp/some", str(tmp_path))
    if issubclass(expect, Exception):
        with pytest.raises(expect) as info:
            open_gateway(url, settings)
        assert info.value.exit_code == 2
    else:
        gw = open_gateway(url, settings)
        assert isinstance(gw, expect)
        gw.close()


def test_twilio_needs_credentials_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(BadGatewayURL, match="TWILIO_ACCOUNT_SID"):
        open_gateway("twilio://?from=%2B15005550006", settings)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "dryrun://"])
@pytest.mark.parametrize("body", ["", "   ", "a" * 1531, "bell\x07"])
def test_every_gateway_validates(url: str, body: str, settings: Settings) -> None:
    gw = open_gateway(url, settings)
    with pytest.raises(InvalidMessage):
        gw.send(Message(E164(TO), body))
    gw.close()


def test_twilio_validates_before_any_request(fake: FakeTwilio, settings: Settings) -> None:
    gw = open_gateway(fake.gateway_url(), settings)
    with pytest.raises(InvalidMessage):
        gw.send(Message(E164(TO), ""))
    assert fake.requests["create"] == 0


def test_memory_counts_segments(settings: Settings) -> None:
    gw = memory.MemoryGateway()
    assert gw.send(Message(E164(TO), "a" * 161, "n1")).segments == 2
    assert gw.sent_notice("n1") is not None and gw.sent_notice("n2") is None
    assert len(gw.lookup(E164(TO), datetime.now(UTC) - timedelta(seconds=5))) == 1


# -- dry run ----------------------------------------------------------------------------------


def test_dryrun_writes_masked_jsonl(settings: Settings) -> None:
    gw = open_gateway("dryrun://", settings)
    res = gw.send(Message(E164(TO), BODY, "n1"))
    gw.send(Message(E164("+33698765432"), "ж" * 71, "n2"))
    gw.close()
    path = settings.outbox_dir / "dryrun.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["to"] == "+33 61** **678" and lines[0]["body"] == BODY
    assert lines[0]["segments"] == 1 and lines[0]["encoding"] == "GSM-7"
    assert lines[0]["id"] == res.gateway_id and lines[0]["notice"] == "n1"
    assert lines[1]["segments"] == 2 and lines[1]["encoding"] == "UCS-2"
    assert path.stat().st_mode & 0o077 == 0
    assert scan([settings.home], [TO, "+33698765432"]) == []


def test_dryrun_knows_what_it_took_across_restarts(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    gw = open_gateway(f"dryrun://{out}", settings)
    assert isinstance(gw, NoticeLookup)
    gw.send(Message(E164(TO), BODY, "n1"))
    gw.close()
    with out.open("a") as fh:  # a crash mid-line
        fh.write('{"at": "2026-01-01T00:00:00+00:00", "id": "DRx", "notice": "n2", "to"')
    again = open_gateway(f"dryrun://{out}", settings)
    assert isinstance(again, dryrun.DryRunGateway)
    assert again.sent_notice("n1") is not None
    assert again.sent_notice("n2") is None
    assert again.lookup(E164(TO), datetime.now(UTC)) is None
    again.send(Message(E164(TO), BODY, "n2"))
    again.close()
    third = dryrun.DryRunGateway(out)
    assert third.sent_notice("n2") is not None


# -- Twilio error mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, TransientError),
        (500, 20500, TransientError),
        (503, 20503, TransientError),
        (502, None, TransientError),
        (400, 21211, PermanentError),
        (400, 21614, PermanentError),
        (400, 21408, PermanentError),
        (400, 21617, PermanentError),
        (400, 21610, RecipientOptedOut),
        (401, 20003, AccountError),
        (400, 21606, AccountError),
        (400, 29999, PermanentError),
    ],
)
def test_translate_codes(status: int, code: int | None, kind: type) -> None:
    exc = TwilioRestException(
        status, f"/Messages.json?To={TO}", f"The 'To' number {TO} is bad", code
    )
    mapped = twilio.translate(exc)
    assert type(mapped) is kind
    assert TO not in str(mapped) and TO[1:] not in str(mapped)
    if code is not None:
        assert mapped.code == str(code)


def test_translate_transport_errors() -> None:
    assert twilio.translate(requests.ReadTimeout()).maybe_sent  # type: ignore[attr-defined]
    assert not twilio.translate(requests.ConnectTimeout()).maybe_sent  # type: ignore[attr-defined]


# -- Twilio against the fake server -----------------------------------------------------------


def test_twilio_send_and_lookup(fake: FakeTwilio, settings: Settings) -> None:
    cb = "https://hooks.example.org/twilio/status"
    gw = open_gateway(fake.gateway_url(status_callback=cb, validity="3600"), settings)
    since = datetime.now(UTC)
    res = gw.send(Message(E164(TO), BODY, "n1"))
    assert res.gateway_id.startswith("SM") and res.segments == 1 and res.status == "queued"
    [msg] = fake.ledger
    assert (msg["to"], msg["body"], msg["from"]) == (TO, BODY, "+15005550006")
    assert msg["status_callback"] == cb and msg["validity_period"] == "3600"
    found = gw.lookup(E164(TO), since)
    assert [r.gateway_id for r in found] == [res.gateway_id] and found[0].body == BODY
    assert gw.lookup(E164("+33698765432"), since) == []
    assert gw.lookup(E164(TO), since + timedelta(hours=1)) == []
    gw.close()


def test_twilio_messaging_service_and_api_key(
    fake: FakeTwilio, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    for k, v in env(api_key=True).items():
        monkeypatch.setenv(k, v)
    url = f"twilio://?messaging_service=MG{'a' * 32}&api_base={fake.url}"
    res = open_gateway(url, settings).send(Message(E164(TO), BODY))
    assert res.status == "accepted"
    assert fake.ledger[0]["messaging_service_sid"] == "MG" + "a" * 32


def test_twilio_bad_credentials_stop_the_run(
    fake: FakeTwilio, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong")
    gw = open_gateway(fake.gateway_url(), settings)
    with pytest.raises(AccountError) as info:
        gw.send(Message(E164(TO), BODY))
    assert info.value.code == "20003" and not fake.ledger


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (21211, PermanentError),
        (21614, PermanentError),
        (21408, PermanentError),
        (21610, RecipientOptedOut),
    ],
)
def test_twilio_permanent_errors(
    fake: FakeTwilio, settings: Settings, code: int, kind: type, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_for[TO] = code
    gw = open_gateway(fake.gateway_url(), settings)
    with pytest.raises(kind) as info:
        gw.send(Message(E164(TO), BODY))
    assert info.value.code == str(code)
    assert scan([], [TO], [str(info.value), repr(info.value), caplog.text]) == []
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_twilio_is_never_retried_by_the_sdk(fake: FakeTwilio, settings: Settings) -> None:
    fake.script(Fault(code=20503), Fault(code=20429))
    gw = open_gateway(fake.gateway_url(), settings)
    for code in ("20503", "20429"):
        with pytest.raises(TransientError) as info:
            gw.send(Message(E164(TO), BODY))
        assert info.value.code == code and not info.value.maybe_sent
    assert fake.requests["create"] == 2 and not fake.ledger


def test_twilio_timeout_after_acceptance_is_maybe_sent(
    fake: FakeTwilio, settings: Settings
) -> None:
    fake.script(Fault(delay=1.0, after_create=True))
    gw = open_gateway(fake.gateway_url(timeout="0.3"), settings)
    with pytest.raises(TransientError) as info:
        gw.send(Message(E164(TO), BODY))
    assert info.value.maybe_sent and info.value.code == "timeout"
    assert fake.requests["create"] == 1 and len(fake.ledger) == 1


def test_twilio_refused_connection_is_not_sent(settings: Settings, fake: FakeTwilio) -> None:
    url = fake.gateway_url()
    fake.stop()
    gw = open_gateway(url, settings)
    with pytest.raises(TransientError) as info:
        gw.send(Message(E164(TO), BODY))
    assert not info.value.maybe_sent


def test_twilio_sdk_logs_nothing_with_numbers(
    fake: FakeTwilio, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = open_gateway(fake.gateway_url(), settings)
    gw.send(Message(E164(TO), BODY))
    gw.lookup(E164(TO), datetime.now(UTC) - timedelta(minutes=1))
    assert scan([], [TO], [caplog.text]) == []


def test_fake_server_realism(fake: FakeTwilio) -> None:
    base = f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages"
    r = requests.post(base + ".json", data={"To": TO, "Body": "x"}, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == 20003
    auth = (ACCOUNT_SID, env()["TWILIO_AUTH_TOKEN"])
    r = requests.post(
        base + ".json", data={"To": "12", "From": "+1500", "Body": "x"}, auth=auth, timeout=5
    )
    assert r.status_code == 400 and r.json()["code"] == 21211
    assert set(r.json()) == {"code", "message", "more_info", "status"}
    r = requests.get(base + "/SM" + "0" * 32 + ".json", auth=auth, timeout=5)
    assert r.status_code == 404 and r.json()["code"] == 20404
    for i in range(3):
        requests.post(
            base + ".json", data={"To": TO, "From": "+1500", "Body": f"m{i}"}, auth=auth, timeout=5
        )
    page = requests.get(
        base + ".json", params={"To": TO, "PageSize": 2}, auth=auth, timeout=5
    ).json()
    assert len(page["messages"]) == 2 and page["next_page_uri"]
    assert page["messages"][0]["date_created"].endswith("+0000")
    sid = page["messages"][0]["sid"]
    assert requests.get(f"{base}/{sid}.json", auth=auth, timeout=5).json()["sid"] == sid
