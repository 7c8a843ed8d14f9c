"""Joining by SMS (JOIN → YES) on the subscriber side, the French keywords and the texts of the
front door in English and French."""

from __future__ import annotations

import pytest
from support.subscribers import GB_MOBILE, GB_MOBILE_2, US_MOBILE

from breach_notify.crypto import Keyring
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.subscribers import consent, erasure, events, optin, registry, texts
from breach_notify.subscribers.keywords import JOIN, Intent, classify, join_words


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("JOIN", Intent.JOIN),
        (" join! ", Intent.JOIN),
        ("START", Intent.OPT_IN),
        ("oui", Intent.CONFIRM),
        ("Aide", Intent.HELP),
        ("ARRET", Intent.OPT_OUT),
        ("join and stop", Intent.OPT_OUT),  # a refusal always wins
    ],
)
def test_join_and_french_keywords_are_classified(body: str, intent: Intent) -> None:
    assert classify(body) is intent


def test_configured_join_words_replace_the_default_but_never_shadow_other_keywords() -> None:
    words = join_words("Inscrire, alerts ,STOP, yes")
    assert words == frozenset({"INSCRIRE", "ALERTS"})
    assert classify("inscrire", words) is Intent.JOIN
    assert classify("JOIN", words) is Intent.NONE
    assert classify("stop", words) is Intent.OPT_OUT
    assert join_words("") == JOIN == join_words(None)


def _consent_source(conn, sid: str) -> str | None:  # type: ignore[no-untyped-def]
    row = conn.execute("SELECT consent_source FROM subscribers WHERE id = ?", [sid]).fetchone()
    return None if row is None else row[0]


def test_join_from_an_unknown_number_makes_it_pending_and_yes_activates_it_as_sms_keyword(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(GB_MOBILE)
    with session(settings) as conn:
        answer = optin.join_by_sms(conn, keyring, settings, number, "fr")
        assert answer.changed and answer.reply == texts.join_prompt(settings, "fr")
        assert answer.reply.startswith("Répondez OUI pour confirmer les alertes de Privacy Watch")
        sub = registry.find(conn, keyring, number)
        assert sub is not None and sub.status == "pending" and sub.language == "fr"
        assert optin.confirm_by_reply(conn, sub.id, "sms", events.utcnow())
        assert consent.is_active(conn, sub.id)
        assert _consent_source(conn, sub.id) == "sms-keyword"
        assert [e for e, _ in events.trail(conn, sub.id)] == [
            "created",
            "join_requested",
            "confirmed",
        ]


def test_join_from_an_active_number_changes_nothing_and_says_nothing(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(US_MOBILE)
    with session(settings) as conn:
        sid = registry.create(
            conn, keyring, number, status="active", language="en", now=events.utcnow()
        )
        answer = optin.join_by_sms(conn, keyring, settings, number)
        assert (answer.changed, answer.reply) == (False, None)
        assert events.trail(conn, sid) == []


def test_join_after_an_opt_out_or_an_erasure_needs_a_yes_again(
    settings: Settings, keyring: Keyring
) -> None:
    a, b = parse_number(GB_MOBILE), parse_number(GB_MOBILE_2)
    with session(settings) as conn:
        now = events.utcnow()
        sid_a = registry.create(conn, keyring, a, status="active", language="fr", now=now)
        consent.opt_out(conn, sid_a, "sms")
        answer = optin.join_by_sms(conn, keyring, settings, a, "en")
        assert answer.reply == texts.join_prompt(settings, "fr")  # the subscriber's language
        assert registry.get(conn, sid_a).status == "pending"  # type: ignore[union-attr]
        assert optin.confirm_by_reply(conn, sid_a, "sms", events.utcnow())

        sid_b = registry.create(conn, keyring, b, status="active", language="en", now=now)
        erasure.erase(conn, sid_b, "cli")
        optin.join_by_sms(conn, keyring, settings, b)
        fresh = registry.find(conn, keyring, b)
        assert fresh is not None and fresh.id != sid_b and fresh.status == "pending"


@pytest.mark.parametrize("language", ["en", "fr", "fr-CA", "de"])
def test_every_front_door_text_fits_one_gsm7_segment_with_a_long_org_name(language: str) -> None:
    s = Settings(org_name="O" * 40, advice_url="https://example.org/" + "a" * 40)
    made = [
        texts.confirmation(s, "123456", language),
        texts.stop_code(s, "123456", language),
        texts.join_prompt(s, language),
        texts.confirmed(s, language),
        texts.resumed(s, language),
        texts.help_text(s, language),
        texts.not_confirmable(s, language),
    ]
    assert all(texts.fits_one_segment(t) for t in made)
    french = texts.language_of(language) == "fr"
    assert ("OUI" in made[0]) is french and ("YES" in made[0]) is not french
