"""Rules for the free text an operator gives: breach titles, breach ids, consent sources.

Such text is stored and shown as it is, so it must not hold a phone number (it would sit in
plaintext in the store and in every report) and must stay short and printable.

Phone numbers are found with ``phonenumbers.PhoneNumberMatcher`` at ``Leniency.VALID``: a match
must be a valid number of its region, so years, dates, counts and versions ("2021-03-04",
"533 million", "v2.3.1") pass. The text is scanned

- with region None, which finds every number written in international form (``+44 7911 123456``,
  ``+33 6 12 34 56 78``);
- in national form for ``NATIONAL_REGIONS`` (``07911 123456``, ``(202) 555-0123``,
  ``0612345678``): each region scanned costs a pass, and every other region's national form is
  not recognised (an Indian ``98765 43210``, say), a documented limit;
- once more with a '+' before every digit run, so an international number missing its '+'
  (``447911123456``, ``4915123456789``) is found too.

Length is checked first: the matcher is slow on long digit-heavy text.
"""

from __future__ import annotations

import re
import unicodedata

from phonenumbers import Leniency, PhoneNumberMatcher

from breach_notify.errors import BadInput

MAX_TITLE = 200
MAX_CONSENT_SOURCE = 200
NATIONAL_REGIONS = ("GB", "US", "FR", "DE")

_JOINERS = frozenset("\u200c\u200d")
_DIGIT_RUN_START = re.compile(r"(?<![+\d])(?=\d)")


def contains_phone_number(text: str) -> bool:
    """Whether ``text`` holds something ``phonenumbers`` takes for a valid number (see above)."""
    for region in (None, *NATIONAL_REGIONS):
        if _matches(text, region):
            return True
    return _matches(_DIGIT_RUN_START.sub("+", text), None)


def check_title(title: str | None, where: str = "--title") -> None:
    """Refuse (exit 2) a title that is too long, has control characters or a phone number."""
    if title is None:
        return
    if len(title) > MAX_TITLE:
        raise BadInput(f"{where}: a breach title is at most {MAX_TITLE} characters; shorten it")
    _check_printable(title, where, "a breach title")
    if contains_phone_number(title):
        raise BadInput(
            f"{where}: the breach title contains a phone number; remove it "
            "(titles are stored and shown as they are)"
        )


def check_breach_id(breach_id: str, where: str = "the breach id") -> None:
    """Refuse (exit 2) a breach id that contains a phone number."""
    if contains_phone_number(breach_id):
        raise BadInput(
            f"{where} contains a phone number; choose another id (ids are stored and shown)"
        )


def check_consent_source(text: str, where: str = "--consent-source") -> None:
    """Refuse (exit 2) consent evidence that is too long, unprintable or holds a phone number."""
    if len(text) > MAX_CONSENT_SOURCE:
        raise BadInput(
            f"{where} is at most {MAX_CONSENT_SOURCE} characters; give a short reference "
            "to where the consent is recorded"
        )
    _check_printable(text, where, "the consent source")
    if contains_phone_number(text):
        raise BadInput(
            f"{where} contains a phone number; describe where the consent is recorded "
            "without quoting a number"
        )


def _matches(text: str, region: str | None) -> bool:
    return any(True for _ in PhoneNumberMatcher(text, region, leniency=Leniency.VALID))


def _check_printable(text: str, where: str, what: str) -> None:
    """Control and format characters (terminal escapes, bidi overrides, zero-width spaces that
    would split a number) are refused; the joiners some scripts need are allowed."""
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in _JOINERS for c in text):
        raise BadInput(f"{where}: {what} has control characters; use plain printable text")
