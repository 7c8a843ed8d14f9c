"""Handling one inbound SMS (already authenticated by the webhook): change state, pick a reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.numbers import InvalidNumber, parse_number
from breach_notify.settings import Settings
from breach_notify.store.db import transaction
from breach_notify.subscribers import consent, events, optin, registry, texts
from breach_notify.subscribers.keywords import Intent, classify

SOURCE = "sms"
_TWILIO_TYPES = {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}


@dataclass(frozen=True)
class Outcome:
    """What happened, for logs (no number, no text) and the TwiML reply."""

    intent: Intent
    known: bool
    changed: bool
    reply: str | None


def handle(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    settings: Settings,
    sender: str,
    body: str,
    now: datetime | None = None,
    opt_out_type: str | None = None,
) -> Outcome:
    """Apply the message from ``sender`` (raw ``From``) with text ``body``.

    ``opt_out_type`` is Twilio's own verdict (``OptOutType``: STOP, START, HELP) when Advanced
    Opt-Out is on; it wins over our reading of the text, so custom keywords set there work too.
    """
    now = now or events.utcnow()
    intent = intent_of(body, opt_out_type)
    try:
        number = parse_number(sender)
    except InvalidNumber:
        number = None
    with transaction(conn):
        sub = registry.find(conn, ring, number) if number is not None else None
        changed = False
        if sub is not None:
            if intent is Intent.OPT_OUT:
                changed = sub.status in ("pending", "active")
                consent.opt_out(conn, sub.id, SOURCE, now)
            elif intent is Intent.CONFIRM:
                changed = optin.confirm_by_reply(conn, sub.id, SOURCE, now)
            elif intent is Intent.OPT_IN:
                changed = consent.resume(conn, sub.id, SOURCE, now)
        active = sub is not None and consent.is_active(conn, sub.id)
    return Outcome(intent, sub is not None, changed, _reply(settings, intent, active))


def intent_of(body: str, opt_out_type: str | None = None) -> Intent:
    """What a message asks for; Twilio's ``OptOutType`` verdict wins over our reading."""
    return _TWILIO_TYPES.get((opt_out_type or "").strip().upper()) or classify(body)


def _reply(settings: Settings, intent: Intent, active: bool) -> str | None:
    # STOP: the carrier / Twilio send the mandated reply themselves; a second one would be noise.
    if intent is Intent.HELP:
        return texts.help_text(settings)
    if intent is Intent.CONFIRM:
        return texts.confirmed(settings) if active else texts.not_confirmable(settings)
    if intent is Intent.OPT_IN and active:
        return texts.resumed(settings)
    return None
