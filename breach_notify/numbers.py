"""Phone numbers as a value type whose text form is always masked.

``E164.value`` is the only way to the plaintext; ``str()``, ``repr()`` and f-strings show the
masked form, so a stray log line cannot leak a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberType

from breach_notify.errors import BadInput

SMS_CAPABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidNumber(BadInput):
    """A value is not a valid phone number. ``reason`` is a short code; the input is never kept."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"invalid phone number ({reason}); give it in international form, "
            "e.g. +<country code><number>, or pass --region"
        )


@dataclass(frozen=True, slots=True)
class E164:
    """A valid number in E.164 form. Note: this does not imply it can receive SMS."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return mask(self.value)

    def __repr__(self) -> str:
        return f"E164({mask(self.value)})"

    @property
    def parsed(self) -> phonenumbers.PhoneNumber:
        return phonenumbers.parse(self.value, None)

    @property
    def can_receive_sms(self) -> bool:
        return phonenumbers.number_type(self.parsed) in SMS_CAPABLE


def verdict(raw: str, region: str | None = None) -> tuple[str | None, str | None]:
    """The reference verdict on one value: ``phonenumbers.parse`` + ``is_valid_number`` + E.164.

    ``(e164, None)`` when valid, else ``(None, reason)`` with a short code (``not_valid``,
    ``invalid_country_code``, ``not_a_number``, ``too_short``, ``too_long``, ``unparseable``).
    Every other check of a number (the ingest's SQL, the readers, the test truth) agrees with it.
    """
    try:
        num = phonenumbers.parse(raw, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        return None, _PARSE_REASONS.get(exc.error_type, "unparseable")
    if not phonenumbers.is_valid_number(num):
        return None, "not_valid"
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164), None


def parse_number(raw: str, region: str | None = None) -> E164:
    """The :func:`verdict` as a value: the valid number, or :class:`InvalidNumber`."""
    e164, reason = verdict(raw, region)
    if e164 is None:
        raise InvalidNumber(reason or "not_valid")
    return E164(e164)


_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not_a_number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}


def mask(e164: str) -> str:
    """``+447700900123`` → ``+44 77** ***123``: calling code, two leading and three last digits."""
    if not e164.startswith("+"):
        return "***"
    try:
        num = phonenumbers.parse(e164, None)
        cc = str(num.country_code)
    except phonenumbers.NumberParseException:
        return "+***"
    nsn = e164[1 + len(cc) :]
    if len(nsn) < 6:
        return f"+{cc} " + "*" * max(len(nsn) - 2, 1) + nsn[-2:]
    body = nsn[:2] + "*" * (len(nsn) - 5) + nsn[-3:]
    return f"+{cc} {body[:4]} {body[4:]}"
