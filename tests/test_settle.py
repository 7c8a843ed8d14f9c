"""A status callback settles a notice whose create timed out while Twilio's list lagged: the
real sender and SDK against the fake Twilio, the real ``web`` process taking the callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import privacy
from support.events import wait_applied
from support.fake_twilio import AUTH_TOKEN, FakeTwilio, Fault
from support.sender import build
from support.web import PUBLIC, Web

from breach_notify.crypto import Keyring
from breach_notify.notify.sender import send
from breach_notify.settings import Settings
from breach_notify.sms.gateway import open_gateway
from breach_notify.store import db


@pytest.fixture
def web(home: Path, keyring: Keyring) -> Iterator[Web]:
    with db.session(Settings(home=home)):
        pass
    w = Web(home, token=AUTH_TOKEN).start()  # Twilio signs callbacks with the account's token
    yield w
    w.stop()


def test_callback_settles_a_create_that_timed_out_while_the_list_lagged(
    settings: Settings, keyring: Keyring, fake: FakeTwilio, web: Web
) -> None:
    world = build(settings, keyring, n=8)  # three notices to send
    fake.list_lag = 120.0  # the lookup after the timeout finds nothing: "surely not sent"
    client = httpx.Client(timeout=10)

    def callback(msg: dict[str, Any]) -> None:
        """Twilio calls back as soon as the message is queued, before the API answers."""
        assert msg["status_callback"] == PUBLIC + "/twilio/status"
        r = web.status(client, msg["sid"], "sent", to=msg["to"])
        assert r.status_code == 204

    fake.on_create = callback
    fake.script(Fault(after_create=True, delay=2.5))  # the first create outlives the timeout
    url = fake.gateway_url(status_callback=PUBLIC + "/twilio/status", timeout="1")
    gateway = open_gateway(url, settings)
    report = send(settings, keyring, gateway, ignore_quiet_hours=True).as_dict()
    client.close()

    assert fake.recipients() == {n: 1 for n in world.expected}  # nobody got it twice
    wait_applied(settings)
    with db.session(settings) as conn:
        rows = conn.execute(
            "SELECT state, gateway_id FROM notices WHERE state NOT IN ('suppressed')"
        ).fetchall()
    assert sorted(state for state, _ in rows) == ["sent"] * len(world.expected)
    assert {gid for _, gid in rows} == {m["sid"] for m in fake.ledger}
    assert report["in_doubt"] == 0 and report["left"] == {}
    assert privacy.scan([settings.home], world.numbers, texts=[web.log]) == []
