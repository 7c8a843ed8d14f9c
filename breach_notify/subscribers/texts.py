"""The few SMS texts of the consent flow. Each must fit one GSM-7 segment (checked at build)."""

from __future__ import annotations

import importlib

from breach_notify.settings import Settings

SEGMENT_CHARS = 160


def fits_one_segment(text: str) -> bool:
    """One GSM-7 segment: ``notify.segments`` when present, else plain ASCII of ≤ 160 chars."""
    plain = text.isascii() and len(text) <= SEGMENT_CHARS and not set(text) & set("^{}[~]|\\")
    try:
        segments = importlib.import_module("breach_notify.notify.segments")
    except ImportError:
        return plain
    count = getattr(segments, "count", None)
    if not callable(count):
        return plain
    try:
        result = count(text)
    except Exception:  # an unexpected API shape: the plain rule still holds
        return plain
    n = getattr(result, "segments", result)
    return plain if not isinstance(n, int) else n == 1


def _org(settings: Settings) -> str:
    return settings.org_name[:30]


def _checked(text: str) -> str:
    if not fits_one_segment(text):
        raise ValueError("consent text does not fit one GSM-7 segment; shorten org_name")
    return text


def confirmation(settings: Settings, code: str) -> str:
    return _checked(
        f"{_org(settings)}: your code is {code}. Reply YES to confirm leak alerts by SMS."
        " Valid 15 min. Not you? Ignore this. STOP to opt out."
    )


def confirmed(settings: Settings) -> str:
    return _checked(
        f"{_org(settings)}: confirmed. We text you only if your number appears in a data leak."
        " Reply HELP for help, STOP to opt out."
    )


def resumed(settings: Settings) -> str:
    return _checked(f"{_org(settings)}: leak alerts are on again. Reply STOP to opt out.")


def help_text(settings: Settings) -> str:
    url = settings.advice_url if len(settings.advice_url) <= 60 else ""
    return _checked(
        f"{_org(settings)} leak alerts. Reply STOP to opt out, START to resume. {url}".rstrip()
    )


def not_confirmable(settings: Settings) -> str:
    return _checked(f"{_org(settings)}: no subscription to confirm from this number.")
