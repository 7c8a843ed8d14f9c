"""JOIN by SMS through signed Twilio webhooks (a real uvicorn server, signatures from
``twilio.request_validator``, the real journal, applier and DuckDB): the journal holds the number
sealed only, JOIN → pending (``sms-keyword``) → YES → active, replies alike whatever the state,
French keywords answered in French, the consent clock and suppression respected, a JOIN whose
seal key is missing kept, and the optional Twilio Lookup line-type check against the fake
Twilio. Each web test ends with the plaintext scan (the ``start`` fixture of test_webhooks)."""

from __future__ import annotations

import html
import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from support import privacy
from support.events import append, pseudonyms
from support.fake_twilio import FakeTwilio
from support.flows import Run
from support.front import wait_for
from support.subscribers import (
    ALL_NUMBERS,
    GB_MOBILE,
    GB_MOBILE_2,
    GB_MOBILE_3,
    US_MOBILE,
    opted_out_an_hour_ago,
)
from support.webhooks import Start

from breach_notify.crypto import Keyring
from breach_notify.events import journal
from breach_notify.notify import applier
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.store import db
from breach_notify.subscribers import consent, erasure, events, registry, suppression, texts
from breach_notify.web import pages

GB_NATIONAL = "07400 123456"  # GB_MOBILE as a British sender might write it


def _text(r: httpx.Response) -> str:
    return html.unescape(r.text)


def _consent_source(settings: Settings, ring: Keyring, number: str) -> tuple[str, str, str | None]:
    with db.session(settings) as conn:
        sub = registry.find(conn, ring, parse_number(number))
        assert sub is not None
        row = conn.execute(
            "SELECT consent_source FROM subscribers WHERE id = ?", [sub.id]
        ).fetchone()
    return sub.status, sub.language, None if row is None else row[0]


def _journal_payloads(settings: Settings) -> list[dict[str, object]]:
    conn = sqlite3.connect(settings.journal_path)
    try:
        return [json.loads(p) for (p,) in conn.execute("SELECT payload FROM events ORDER BY seq")]
    finally:
        conn.close()


def _drain(settings: Settings, **kw: object) -> applier.DrainReport:
    with db.session(settings) as conn:
        return applier.drain(conn, **kw)  # type: ignore[arg-type]


def test_signed_join_then_yes_makes_an_active_sms_keyword_subscriber(
    start: Start,
    cli: Callable[..., Run],
) -> None:
    hooks = start(apply_events=False)  # the journal fills; this test applies it
    r = hooks.sms(GB_MOBILE, " Join! ")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert _text(r) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        "Reply YES to confirm alerts from Privacy Watch. Msg&data rates may apply."
        " Reply STOP to cancel.</Message></Response>"
    )
    # The journal holds the number sealed only: not in any form, anywhere in its files.
    (payload,) = _journal_payloads(hooks.settings)
    assert payload["intent"] == "join" and set(payload["n"]) == {"k", "c"}  # type: ignore[arg-type]
    hits = privacy.scan([hooks.settings.journal_path.parent], [GB_MOBILE], region="GB")
    assert hits == []
    report = _drain(hooks.settings)
    assert (report.applied, report.changed, report.held) == (1, 1, 0)
    status = _consent_source(hooks.settings, hooks.ring, GB_MOBILE)
    assert status == ("pending", "en", "sms-keyword")

    hooks.sms(GB_MOBILE, "YES")
    _drain(hooks.settings)
    assert _consent_source(hooks.settings, hooks.ring, GB_MOBILE) == ("active", "en", "sms-keyword")
    listed = cli("subscribers", "list", "--json")
    assert listed.code == 0, listed.stderr
    (sub,) = listed.json["subscribers"]
    assert sub["status"] == "active" and sub["language"] == "en"
    with db.session(hooks.settings) as conn:
        trail = events.trail(conn, sub["id"])
    assert trail == [("created", "sms"), ("join_requested", "sms-keyword"), ("confirmed", "sms")]
    outputs = [listed.stdout, listed.stderr]
    assert privacy.scan([hooks.settings.home], ALL_NUMBERS, texts=outputs, region="GB") == []


def test_a_replayed_join_after_stop_does_not_resubscribe(start: Start) -> None:
    """Twilio signatures carry no nonce: a captured JOIN posted again must change nothing."""
    hooks = start()
    post_join = hooks.captured_sms(GB_MOBILE, "JOIN")

    first = post_join()
    assert hooks.state(GB_MOBILE) == "pending"
    hooks.sms(GB_MOBILE, "YES")
    assert hooks.state(GB_MOBILE) == "active"
    hooks.sms(GB_MOBILE, "STOP")
    assert hooks.state(GB_MOBILE) == "opted_out"
    replay = post_join()  # byte for byte
    assert replay.status_code == 200 and replay.content == first.content
    assert hooks.state(GB_MOBILE) == "opted_out"
    assert journal.backlog(hooks.settings.journal_path).pending == 0


def test_a_french_join_gets_the_french_prompt_and_a_french_subscriber(
    start: Start,
) -> None:
    hooks = start()
    r = hooks.sms(GB_MOBILE, "Inscrire")
    assert texts.join_prompt(hooks.settings, "fr") in _text(r)
    assert "Répondez OUI pour confirmer les alertes de Privacy Watch" in _text(r)
    assert hooks.state(GB_MOBILE) == "pending"
    assert _consent_source(hooks.settings, hooks.ring, GB_MOBILE)[1:] == ("fr", "sms-keyword")
    yes = hooks.sms(GB_MOBILE, "oui")
    assert texts.opt_in_ack(hooks.settings, "fr") in _text(yes)
    assert hooks.state(GB_MOBILE) == "active"
    # The English word gets the English prompt; configured words replace the defaults.
    assert texts.join_prompt(hooks.settings, "en") in _text(hooks.sms(GB_MOBILE_2, "JOIN"))


def test_configured_join_words_are_honoured(start: Start) -> None:
    hooks = start(join_keywords="ALERTS", join_keywords_fr="ALERTES")
    assert texts.join_prompt(hooks.settings, "fr") in _text(hooks.sms(GB_MOBILE, "alertes"))
    assert texts.join_prompt(hooks.settings, "en") in _text(hooks.sms(GB_MOBILE_2, "alerts"))
    assert "<Message>" not in hooks.sms(GB_MOBILE_3, "JOIN").text  # no longer a JOIN word
    assert hooks.state(GB_MOBILE) == hooks.state(GB_MOBILE_2) == "pending"
    assert hooks.state(GB_MOBILE_3) is None


def test_join_yes_and_start_replies_are_byte_identical_whatever_the_state(
    start: Start,
) -> None:
    hooks = start()
    hooks.sms(GB_MOBILE, "JOIN")  # pending
    hooks.sms(GB_MOBILE_2, "JOIN")
    hooks.sms(GB_MOBILE_2, "YES")  # active
    hooks.sms(GB_MOBILE_3, "JOIN")
    hooks.sms(GB_MOBILE_3, "YES")
    hooks.sms(GB_MOBILE_3, "STOP")  # opted out
    assert [hooks.state(n) for n in (GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, US_MOBILE)] == [
        "pending",
        "active",
        "opted_out",
        None,
    ]
    for word in ("YES", "JOIN", "START", "OUI"):
        answers = {
            hooks.sms(n, word).content for n in (US_MOBILE, GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3)
        }
        assert len(answers) == 1, word


def test_yes_from_an_unknown_number_creates_nothing(start: Start) -> None:
    hooks = start()
    before = hooks.snapshot()
    r = hooks.sms(US_MOBILE, "YES")
    assert texts.opt_in_ack(hooks.settings) in _text(r)
    assert hooks.snapshot() == before
    assert hooks.state(US_MOBILE) is None


def test_start_from_an_unknown_number_makes_it_pending_like_join(
    start: Start,
) -> None:
    hooks = start()
    params = {"From": GB_MOBILE, "Body": "REJOINDRE", "OptOutType": "START", "MessageSid": "SMj1"}
    r = hooks.post("/twilio/inbound", params)
    assert texts.join_prompt(hooks.settings, "en") in _text(r)
    assert hooks.state(GB_MOBILE) == "pending"
    hooks.sms(GB_MOBILE, "YES")
    assert hooks.state(GB_MOBILE) == "active"
    assert _consent_source(hooks.settings, hooks.ring, GB_MOBILE) == ("active", "en", "sms-keyword")


# -- the applier, without the web ---------------------------------------------------------------


def _join_entry(ring: Keyring, number: str, sid: str, language: str = "en") -> journal.Entry:
    sealed = ring.sealer().seal(number, row_id=sid)
    return journal.inbound_entry(
        sid,
        "join",
        pseudonyms(ring, number),
        sealed=(sealed.key_id, sealed.blob),
        language=language,
    )


def test_a_join_whose_seal_key_is_missing_stays_pending_until_the_key_is_back(
    settings: Settings, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """Not lost silently: held in the journal (the backlog, and its alarm, show it), logged
    with the key id only, and applied once a keyring holding the key is found."""
    old = Keyring.load(settings.keyring_path)  # a copy from before the rotation: s1 only
    keyring.rotate("seal")
    append(settings, _join_entry(keyring, GB_MOBILE, "SMk1"))  # sealed under s2
    caplog.set_level(logging.INFO)
    for _ in range(2):
        report = _drain(settings, keyring=old)
        assert (report.applied, report.changed, report.held) == (0, 0, 1)
    assert journal.backlog(settings.journal_path).pending == 1
    assert "seal key s2 not in the keyring" in caplog.text
    report = _drain(settings)  # the data dir's keyring, loaded lazily by the applier
    assert (report.applied, report.changed, report.held) == (1, 1, 0)
    assert journal.backlog(settings.journal_path).pending == 0
    with db.session(settings) as conn:
        sub = registry.find(conn, keyring, parse_number(GB_MOBILE))
        assert sub is not None and sub.status == "pending"
    assert privacy.scan([settings.home], ALL_NUMBERS, texts=[caplog.text]) == []


def test_a_tampered_sealed_number_is_dropped_not_applied(
    settings: Settings, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _join_entry(keyring, GB_MOBILE, "SMt1")
    moved = journal.inbound_entry(
        "SMt2", "join", entry.payload["p"], sealed=(entry.payload["n"]["k"], b"x" * 40)
    )
    append(settings, moved)
    report = _drain(settings)
    assert (report.applied, report.changed, report.held) == (1, 0, 0)
    assert "does not open" in caplog.text


def test_a_join_older_than_a_later_stop_changes_nothing(
    settings: Settings, keyring: Keyring
) -> None:
    """The consent clock: the JOIN waited in the journal while a later STOP reached the store."""
    with db.session(settings) as conn:
        sid = opted_out_an_hour_ago(conn, keyring, GB_MOBILE)
    append(settings, _join_entry(keyring, GB_MOBILE, "SMold"))
    with db.session(settings) as conn:
        consent.opt_out(conn, sid, "gateway:21610")  # now: after the JOIN was accepted
    assert _drain(settings).changed == 0
    with db.session(settings) as conn:
        assert registry.get(conn, sid).status == "opted_out"  # type: ignore[union-attr]
        assert ("join_requested", "sms-keyword") not in events.trail(conn, sid)


def test_a_join_then_stop_in_one_batch_ends_opted_out(settings: Settings, keyring: Keyring) -> None:
    stop = journal.inbound_entry(
        "SMs1", "opt_out", _join_entry(keyring, GB_MOBILE, "SMx").payload["p"]
    )
    append(settings, _join_entry(keyring, GB_MOBILE, "SMj1"), stop)
    _drain(settings)
    with db.session(settings) as conn:
        sub = registry.find(conn, keyring, parse_number(GB_MOBILE))
        assert sub is not None and sub.status == "opted_out"


def test_join_then_yes_is_the_double_opt_in_that_lifts_a_suppression(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(GB_MOBILE)
    with db.session(settings) as conn:
        sid = registry.create(
            conn, keyring, number, status="active", language="en", now=datetime.now(UTC)
        )
        erasure.erase(conn, sid, "cli")
        assert suppression.is_suppressed(conn, keyring, number)
    append(settings, _join_entry(keyring, GB_MOBILE, "SMe1"))
    _drain(settings)
    with db.session(settings) as conn:
        sub = registry.find(conn, keyring, number)
        assert sub is not None and sub.status == "pending"
        assert suppression.is_suppressed(conn, keyring, number)  # a JOIN alone lifts nothing
    yes = journal.inbound_entry(
        "SMe2", "confirm", _join_entry(keyring, GB_MOBILE, "x").payload["p"]
    )
    append(settings, yes)
    _drain(settings)
    with db.session(settings) as conn:
        assert registry.get(conn, sub.id).status == "active"  # type: ignore[union-attr]
        assert not suppression.is_suppressed(conn, keyring, number)


# -- Twilio Lookup (line type), off by default ---------------------------------------------------


def test_lookup_refuses_a_landline_join_silently_after_the_answer(
    start: Start,
    fake: FakeTwilio,
) -> None:
    fake.line_types[GB_MOBILE_2] = "landline"
    hooks = start(gateway=fake.gateway_url(), lookup_line_type=True)
    mobile = hooks.sms(GB_MOBILE, "JOIN")
    landline = hooks.sms(GB_MOBILE_2, "JOIN")
    assert mobile.content == landline.content  # the same answer: nothing to learn
    wait_for(lambda: sum(fake.looked_up.values()) == 2)
    assert hooks.state(GB_MOBILE) == "pending"
    assert hooks.state(GB_MOBILE_2) is None  # no subscriber, no SMS
    assert fake.ledger == []
    kinds = [p.get("mobile") for p in _journal_payloads(hooks.settings) if "of" in p]
    assert sorted(kinds) == [False, True]  # type: ignore[type-var]


def test_lookup_is_off_by_default(start: Start, fake: FakeTwilio) -> None:
    hooks = start(gateway=fake.gateway_url())
    hooks.sms(GB_MOBILE, "JOIN")
    assert hooks.state(GB_MOBILE) == "pending"
    assert fake.requests["lookup"] == 0


def test_lookup_on_sign_up_sends_no_code_to_a_landline(
    settings: Settings, keyring: Keyring, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake.line_types[GB_MOBILE_2] = "landline"
    s = settings.model_copy(update={"gateway": fake.gateway_url(), "lookup_line_type": True})
    front = pages.Front(s)
    front.signup_later(parse_number(GB_MOBILE), "en", "v1-en")
    front.signup_later(parse_number(GB_MOBILE_2), "en", "v1-en")
    assert fake.looked_up == {GB_MOBILE: 1, GB_MOBILE_2: 1}
    assert [m["to"] for m in fake.ledger] == [GB_MOBILE]  # the code went to the mobile only
    with db.session(s) as conn:
        assert registry.find(conn, keyring, parse_number(GB_MOBILE_2)) is None
    assert "line type check: refused (landline)" in caplog.text
    assert privacy.scan([settings.home], ALL_NUMBERS, texts=[caplog.text]) == []
