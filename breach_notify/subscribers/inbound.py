"""Inbound SMS keywords: what a message asks for, the reply, and applying it to a subscriber.

The web answers at once with a reply that does not depend on any subscriber's state (so it says
nothing about whether a number is known) and journals the intent; the applier calls
:func:`apply` later, with the time the message was accepted.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from breach_notify.settings import Settings
from breach_notify.subscribers import consent, optin, registry, texts
from breach_notify.subscribers.keywords import Intent, classify

SOURCE = "sms"
_TWILIO_TYPES = {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}
CHANGES_CONSENT = frozenset({Intent.OPT_OUT, Intent.OPT_IN, Intent.CONFIRM})


def intent_of(body: str, opt_out_type: str | None = None) -> Intent:
    """What a message asks for; Twilio's ``OptOutType`` verdict (Advanced Opt-Out: STOP, START,
    HELP) wins over our reading of the text, so custom keywords set there work too."""
    return _TWILIO_TYPES.get((opt_out_type or "").strip().upper()) or classify(body)


def reply(settings: Settings, intent: Intent) -> str | None:
    """The TwiML reply text, the same for every number whatever its state."""
    if intent is Intent.HELP:
        return texts.help_text(settings)
    if intent in (Intent.OPT_IN, Intent.CONFIRM):
        return texts.opt_in_ack(settings)
    # STOP: the carrier / Twilio send the mandated reply themselves; a second one would be noise.
    return None


def apply(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, intent: Intent, at: datetime
) -> bool:
    """Apply ``intent`` (accepted at ``at``) to a subscriber; True when the status changed.

    A decision older than the subscriber's latest (a START journaled before a STOP that was
    applied first, say) changes nothing.
    """
    if intent not in CHANGES_CONSENT or consent.superseded(conn, subscriber_id, at):
        return False
    if intent is Intent.OPT_OUT:
        sub = registry.get(conn, subscriber_id)
        consent.opt_out(conn, subscriber_id, SOURCE, at)
        return sub is not None and sub.status in ("pending", "active")
    if intent is Intent.CONFIRM:
        return optin.confirm_by_reply(conn, subscriber_id, SOURCE, at)
    return consent.resume(conn, subscriber_id, SOURCE, at)
