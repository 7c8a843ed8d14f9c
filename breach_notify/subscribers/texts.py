"""The few SMS texts of the consent flow, in English and French; each must fit one GSM-7 segment
(checked when built). A language other than those falls back to English.
"""

from __future__ import annotations

from breach_notify.errors import BadInput
from breach_notify.settings import Settings
from breach_notify.sms import segments

LANGUAGES = ("en", "fr")


def language_of(tag: str | None) -> str:
    """``fr-CA`` → ``fr``; anything without texts of its own → ``en``."""
    head = (tag or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return head if head in LANGUAGES else "en"


def fits_one_segment(text: str) -> bool:
    """True when ``text`` travels as one GSM-7 segment (≤ 160 septets)."""
    counted = segments.count(text)
    return counted.encoding == segments.GSM7 and counted.segments == 1


def _org(settings: Settings) -> str:
    return segments.replace_lookalikes(settings.org_name)[:30]


def _checked(text: str) -> str:
    if not fits_one_segment(text):
        raise BadInput("a consent SMS would not fit one GSM-7 segment; shorten org_name")
    return text


def _pick(language: str | None, en: str, fr: str) -> str:
    return _checked(fr if language_of(language) == "fr" else en)


def confirmation(settings: Settings, code: str, language: str | None = "en") -> str:
    org = _org(settings)
    return _pick(
        language,
        f"{org}: your code is {code}. Reply YES to confirm leak alerts by SMS."
        " Valid 15 min. Not you? Ignore this. STOP to opt out.",
        f"{org}: votre code est {code}. Répondez OUI pour confirmer les alertes de fuite."
        " Valable 15 min. Pas vous ? Ignorez. STOP pour refuser.",
    )


def stop_code(settings: Settings, code: str, language: str | None = "en") -> str:
    """The code of the web "Stop alerts" page."""
    org = _org(settings)
    return _pick(
        language,
        f"{org}: your code to stop leak alerts is {code}. Valid 15 min. Not you? Ignore this.",
        f"{org}: votre code pour ne plus recevoir les alertes de fuite est {code}."
        " Valable 15 min. Pas vous ? Ignorez ce SMS.",
    )


def join_prompt(settings: Settings, language: str | None = "en") -> str:
    """The answer to JOIN from a number that is not subscribed: YES confirms."""
    org = _org(settings)
    return _pick(
        language,
        f"Reply YES to confirm alerts from {org}. Msg&data rates may apply. Reply STOP to cancel.",
        f"Répondez OUI pour confirmer les alertes de {org}. Des frais de SMS peuvent"
        " s'appliquer. Répondez STOP pour annuler.",
    )


def confirmed(settings: Settings, language: str | None = "en") -> str:
    org = _org(settings)
    return _pick(
        language,
        f"{org}: confirmed. We text you only if your number appears in a data leak."
        " Reply HELP for help, STOP to opt out.",
        f"{org}: c'est confirmé. Nous écrivons seulement si votre numéro figure dans une fuite"
        " de données. AIDE: aide, STOP: refuser.",
    )


def resumed(settings: Settings, language: str | None = "en") -> str:
    org = _org(settings)
    return _pick(
        language,
        f"{org}: leak alerts are on again. Reply STOP to opt out.",
        f"{org}: les alertes de fuite sont de nouveau actives. STOP pour refuser.",
    )


def opt_in_ack(settings: Settings, language: str | None = "en") -> str:
    """The answer to YES / START at once, whatever the number's state (it reveals none)."""
    org = _org(settings)
    return _pick(
        language,
        f"{org}: if this number asked for leak alerts, they are on now. Reply STOP to opt out.",
        f"{org}: si ce numéro a demandé les alertes de fuite, elles sont actives. STOP pour"
        " refuser.",
    )


def help_text(settings: Settings, language: str | None = "en") -> str:
    url = settings.advice_url if len(settings.advice_url) <= 60 else ""
    org = _org(settings)
    return _pick(
        language,
        f"{org} leak alerts. Reply STOP to opt out, START to resume. {url}".rstrip(),
        f"{org}, alertes de fuite. STOP pour refuser, START pour reprendre. {url}".rstrip(),
    )


def not_confirmable(settings: Settings, language: str | None = "en") -> str:
    org = _org(settings)
    return _pick(
        language,
        f"{org}: no subscription to confirm from this number.",
        f"{org}: aucun abonnement à confirmer pour ce numéro.",
    )
