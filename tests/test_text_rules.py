"""Free text an operator gives (titles, breach ids, consent sources): no phone number, short,
printable. Years, dates and counts must not be taken for numbers."""

from __future__ import annotations

import pytest

from breach_notify.errors import BadInput
from breach_notify.text_rules import (
    MAX_TITLE,
    check_breach_id,
    check_consent_source,
    check_title,
    contains_phone_number,
)


@pytest.mark.parametrize(
    "text",
    [
        "+44 7911 123456",
        "Leak of +44 7911 123456 (sample)",
        "+447911123456",
        "+44-7911-123456",
        "447911123456",  # international without '+'
        "fb-2021-447911123456",
        "07911 123456",  # national forms: GB, US, FR, DE
        "0044 7911 123456",
        "(202) 555-0123",
        "+1 (202) 555-0123",
        "0612345678",
        "+33 6 12 34 56 78",
        "01512 3456789",
        "4915123456789",
        "+91 98765 43210",
        "contact +55 11 91234-5678 for details",
    ],
)
def test_phone_numbers_in_common_forms_are_found(text: str) -> None:
    assert contains_phone_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "Facebook 2021, Czech Republic",
        "fb-2021-fr",
        "Breach 2021-03-04",
        "Dump 20210304",
        "533 million users 2021",
        "LinkedIn 2012 (117M)",
        "v2.3.1 export 2023",
        "CSV export 17/03/2022 part 3 of 12",
        "2024-01-15T10:30:00Z",
        "webform 2023 consent (ticket 884213)",
        "30000000 rows",
        "[/x] [link=https://example.org]x[/link]",
    ],
)
def test_years_dates_and_counts_are_not_taken_for_phone_numbers(text: str) -> None:
    assert not contains_phone_number(text)


def test_refusals_name_the_field_and_never_the_number() -> None:
    cases = [
        (lambda: check_title("Leak +44 7911 123456"), "--title"),
        (lambda: check_title("x" * (MAX_TITLE + 1)), "at most 200"),
        (lambda: check_title("red \x1b[31m title"), "control characters"),
        (lambda: check_title("evil \u202eeltit"), "control characters"),
        (lambda: check_breach_id("fb-447911123456"), "breach id"),
        (lambda: check_consent_source("call +44 7911 123456"), "--consent-source"),
        (lambda: check_consent_source("x" * 201), "at most 200"),
    ]
    for call, named in cases:
        with pytest.raises(BadInput) as info:
            call()
        message = str(info.value)
        assert named in message
        assert "7911" not in message and "123456" not in message
    check_title("Facebook 2021 — Česká republika")
    check_title("x" * MAX_TITLE)
    check_title("فیس\u200cبوک")  # the zero-width non-joiner some scripts need is allowed
    check_title(None)
