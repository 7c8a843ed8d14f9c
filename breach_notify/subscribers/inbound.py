"""Inbound SMS keywords: what a message asks for, the reply, and applying it to a subscriber.

The web answers at once with a reply that does not depend on any subscriber's state (so it says
nothing about whether a number is known) and journals the intent; the applier calls
:func:`apply` later, with the time the message was accepted.

JOIN words and START (our reading or Twilio's ``OptOutType``) are the :data:`JOINS`: the web
cannot tell a known number from an unknown one, so both are answered with the JOIN prompt and
journaled with the sender's sealed number. The applier resumes a known subscriber on START as
before, and makes an unknown number (any JOIN) pending through ``optin.join_by_sms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from breach_notify.settings import Settings
from breach_notify.subscribers import consent, optin, registry, texts
from breach_notify.subscribers.keywords import (
    CONFIRM,
    FRENCH,
    HELP,
    JOIN,
    OPT_IN,
    OPT_OUT,
    Intent,
    classify,
    join_words,
    keyword,
)

SOURCE = "sms"
_TWILIO_TYPES = {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}
CHANGES_CONSENT = frozenset({Intent.OPT_OUT, Intent.OPT_IN, Intent.CONFIRM, Intent.JOIN})
JOINS = frozenset({Intent.JOIN, Intent.OPT_IN})  # journaled with the sealed number


def intent_of(body: str, opt_out_type: str | None = None, join: frozenset[str] = JOIN) -> Intent:
    """What a message asks for; Twilio's ``OptOutType`` verdict (Advanced Opt-Out: STOP, START,
    HELP) wins over our reading of the text, so custom keywords set there work too."""
    return _TWILIO_TYPES.get((opt_out_type or "").strip().upper()) or classify(body, join)


@dataclass(frozen=True)
class Words:
    """The inbound words as configured: JOIN words in English and French, and which language a
    message's keyword is in (French twins → ``fr``, other keywords → ``en``, anything else →
    the default language)."""

    join_en: frozenset[str]
    join_fr: frozenset[str]
    default_language: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Words:
        en = join_words(settings.join_keywords)
        fr = join_words(settings.join_keywords_fr, frozenset()) - en
        return cls(en, fr, texts.language_of(settings.default_language))

    @property
    def join(self) -> frozenset[str]:
        return self.join_en | self.join_fr

    def read(self, body: str, opt_out_type: str | None = None) -> tuple[Intent, str]:
        """The intent of a message and the language to answer it in."""
        word = keyword(body)
        if word in FRENCH or word in self.join_fr:
            language = "fr"
        elif word in OPT_OUT | OPT_IN | CONFIRM | HELP | self.join_en:
            language = "en"
        else:
            language = self.default_language
        return intent_of(body, opt_out_type, self.join), language


def reply(settings: Settings, intent: Intent, language: str = "en") -> str | None:
    """The TwiML reply text, the same for every number whatever its state."""
    if intent is Intent.HELP:
        return texts.help_text(settings, language)
    if intent in JOINS:
        return texts.join_prompt(settings, language)
    if intent is Intent.CONFIRM:
        return texts.opt_in_ack(settings, language)
    # STOP: the carrier / Twilio send the mandated reply themselves; a second one would be noise.
    return None


def apply(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, intent: Intent, at: datetime
) -> bool:
    """Apply ``intent`` (accepted at ``at``) to a subscriber; True when the status changed.

    A decision older than the subscriber's latest (a START journaled before a STOP that was
    applied first, say) changes nothing.
    """
    if intent not in CHANGES_CONSENT or intent is Intent.JOIN:
        return False  # a JOIN goes through optin.join_by_sms (it needs the number)
    if consent.superseded(conn, subscriber_id, at):
        return False
    if intent is Intent.OPT_OUT:
        sub = registry.get(conn, subscriber_id)
        consent.opt_out(conn, subscriber_id, SOURCE, at)
        return sub is not None and sub.status in ("pending", "active")
    if intent is Intent.CONFIRM:
        return optin.confirm_by_reply(conn, subscriber_id, SOURCE, at)
    return consent.resume(conn, subscriber_id, SOURCE, at)
