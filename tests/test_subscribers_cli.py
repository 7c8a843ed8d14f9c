"""The ``subscribers`` and ``webhooks`` commands end to end, as subprocesses (CLI.md contract),
with the dry-run gateway; every test ends with the plaintext scan."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import privacy
from support.flows import Run
from support.subscribers import ALL_NUMBERS, GB_FIXED, GB_MOBILE, GB_MOBILE_2, US_MOBILE
from twilio.request_validator import RequestValidator

Cli = Callable[..., Run]


def _codes(home: Path) -> list[str]:
    outbox = home / "outbox" / "dryrun.jsonl"
    lines = outbox.read_text().splitlines() if outbox.exists() else []
    return [re.search(r"\b\d{6}\b", json.loads(line)["body"]).group(0) for line in lines]  # type: ignore[union-attr]


def _scan(home: Path, cli: Cli, extra: list[str] = []) -> None:  # noqa: B006
    texts = [t for r in cli.captured for t in (r.stdout, r.stderr)]  # type: ignore[attr-defined]
    assert privacy.scan([home], ALL_NUMBERS, texts=[*texts, *extra]) == []


def test_add_confirm_list_remove(home: Path, cli: Cli) -> None:
    assert cli("keys", "init").code == 0
    r = cli("subscribers", "add", GB_MOBILE, "--gateway", "dryrun://", "--json")
    assert r.code == 0, r.stderr
    assert r.json["subscriber"] == "+44 74** ***456" and r.json["status"] == "requested"
    [code] = _codes(home)
    outbox = (home / "outbox" / "dryrun.jsonl").read_text()
    assert "+44 74** ***456" in outbox  # the dry-run outbox masks numbers

    wrong = "000000" if code != "000000" else "111111"
    r = cli("subscribers", "confirm", GB_MOBILE, wrong, "--json")
    assert r.code == 2 and "not valid" in r.json["error"]
    r = cli("subscribers", "confirm", "07400 123456", code, "--region", "GB", "--json")
    assert r.code == 0 and r.json["status"] == "active"

    # No enumeration: re-adding an active number answers exactly like adding a new one.
    again = cli("subscribers", "add", GB_MOBILE, "--json")
    fresh = cli("subscribers", "add", GB_MOBILE_2, "--json")
    assert again.code == fresh.code == 0
    assert again.json["status"] == fresh.json["status"] == "requested"
    human_again = cli("subscribers", "add", GB_MOBILE).stdout.replace("+44 74** ***456", "N")
    human_fresh = cli("subscribers", "add", GB_MOBILE_2).stdout.replace("+44 74** ***457", "N")
    assert human_again == human_fresh

    r = cli("subscribers", "list", "--json")
    listed = sorted((s["masked"], s["status"]) for s in r.json["subscribers"])
    assert listed == [("+44 74** ***456", "active"), ("+44 74** ***457", "pending")]
    assert all(set(s) == {"id", "masked", "status", "language"} for s in r.json["subscribers"])
    assert "***456" in cli("subscribers", "list").stdout

    r = cli("subscribers", "remove", GB_MOBILE, "--json")
    assert r.code == 0 and r.json == {"subscriber": "+44 74** ***456", "status": "erased"}
    # Removing an unknown number answers the same way and changes nothing.
    r2 = cli("subscribers", "remove", US_MOBILE, "--json")
    assert r2.code == 0 and r2.json["status"] == "erased"
    tombs = cli("subscribers", "list", "--status", "erased", "--json").json["subscribers"]
    assert [(t["masked"], t["status"]) for t in tombs] == [("***", "erased")]
    assert cli("subscribers", "list", "--status", "gone", "--json").code == 2
    status = cli("status", "--json").json
    assert status["subscribers"] == {"erased": 1, "pending": 1}
    _scan(home, cli)


def test_refusals_name_the_problem(home: Path, cli: Cli) -> None:
    assert cli("keys", "init").code == 0
    r = cli("subscribers", "add", GB_FIXED, "--json")
    assert r.code == 2 and "fixed-line" in r.json["error"]
    r = cli("subscribers", "add", "12345", "--json")
    assert r.code == 2 and "invalid phone number" in r.json["error"]
    r = cli("subscribers", "add", GB_MOBILE, "--language", "not a language", "--json")
    assert r.code == 2 and "language" in r.json["error"]
    r = cli("subscribers", "add", GB_MOBILE, "--gateway", "carrier-pigeon://", "--json")
    assert r.code == 2 and "gateway" in r.json["error"]
    r = cli("subscribers", "add", "07400 123456", "--region", "XX", "--json")
    assert r.code == 2 and "unknown region" in r.json["error"]
    assert cli("status", "--json").json["subscribers"] == {}
    _scan(home, cli)


def test_webhooks_refuses_without_token_or_url(home: Path, cli: Cli) -> None:
    assert cli("keys", "init").code == 0
    env = {k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN"}
    r = cli(
        "webhooks", "--public-url", "https://x.example.org", env={**env, "TWILIO_AUTH_TOKEN": ""}
    )
    assert r.code == 2 and "TWILIO_AUTH_TOKEN" in r.stderr
    r = cli("webhooks", env={"TWILIO_AUTH_TOKEN": "t"})
    assert r.code == 2 and "--public-url" in r.stderr
    r = cli("webhooks", "--public-url", "ftp://x", env={"TWILIO_AUTH_TOKEN": "t"})
    assert r.code == 2


@pytest.mark.slow
def test_web_command_serves_signed_requests(home: Path, cli: Cli) -> None:
    from support.net import free_port

    assert cli("keys", "init").code == 0
    assert cli("subscribers", "add", GB_MOBILE, "--gateway", "dryrun://").code == 0
    port, token, public = free_port(), "tok-" + "9" * 28, "https://hooks.example.org"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breach_notify",
            "--home",
            str(home),
            "web",
            "--port",
            str(port),
            "--public-url",
            public,
        ],
        env={**os.environ, "TWILIO_AUTH_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        params = {"From": GB_MOBILE, "Body": "Yes", "MessageSid": "SM1"}
        sig = RequestValidator(token).compute_signature(public + "/twilio/inbound", params)
        assert httpx.post(base + "/twilio/inbound", data=params).status_code == 403
        r = httpx.post(base + "/twilio/inbound", data=params, headers={"X-Twilio-Signature": sig})
        assert r.status_code == 200 and "they are on now" in r.text
        replies = [r.text]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert cli("subscribers", "list", "--json").json["subscribers"][0]["status"] == "active"
    assert "inbound intent=confirm accepted" in err
    _scan(home, cli, [out, err, *replies])


def test_add_answers_the_same_whatever_the_state_of_the_number(home: Path, cli: Cli) -> None:
    """New, pending, active, opted out and erased numbers get one answer, which claims no state:
    'requested', and a text saying a code was sent if the number is new."""
    assert cli("keys", "init").code == 0
    numbers = {"new": GB_MOBILE, "pending": GB_MOBILE_2, "active": US_MOBILE}
    assert cli("subscribers", "add", GB_MOBILE_2).code == 0
    assert cli("subscribers", "add", US_MOBILE).code == 0
    [_, code] = _codes(home)
    assert cli("subscribers", "confirm", US_MOBILE, code).code == 0
    answers = {}
    for state, number in numbers.items():
        as_json = cli("subscribers", "add", number, "--json")
        human = cli("subscribers", "add", number)
        assert as_json.code == human.code == 0, as_json.stderr
        got = as_json.json
        masked = got.pop("subscriber")
        # (whitespace normalised: the terminal wraps masks of different lengths differently)
        answers[state] = (got, " ".join(human.stdout.replace(masked, "N").split()))
    assert cli("subscribers", "remove", US_MOBILE).code == 0
    erased = cli("subscribers", "add", US_MOBILE, "--json").json
    erased.pop("subscriber")
    first = answers["new"]
    for state, answer in answers.items():
        assert answer == first, (state, answer, first)
    assert first[0]["status"] == "requested" and erased == first[0]
    assert "If this number is new" in first[0]["message"] and "If this number is new" in first[1]
    _scan(home, cli)
