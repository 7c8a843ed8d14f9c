"""The few SMS texts of the consent flow; each must fit one GSM-7 segment (checked when built)."""

from __future__ import annotations

from breach_notify.errors import BadInput
from breach_notify.notify import segments
from breach_notify.settings import Settings


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


def opt_in_ack(settings: Settings) -> str:
    """The answer to YES / START at once, whatever the number's state (it reveals none)."""
    return _checked(
        f"{_org(settings)}: if this number asked for leak alerts, they are on now."
        " Reply STOP to opt out."
    )


def help_text(settings: Settings) -> str:
    url = settings.advice_url if len(settings.advice_url) <= 60 else ""
    return _checked(
        f"{_org(settings)} leak alerts. Reply STOP to opt out, START to resume. {url}".rstrip()
    )


def not_confirmable(settings: Settings) -> str:
    return _checked(f"{_org(settings)}: no subscription to confirm from this number.")
