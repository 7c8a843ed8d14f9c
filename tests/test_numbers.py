"""numbers.py and redact.py: masking, the reference verdict, redaction on log handlers."""

from __future__ import annotations

import logging

import pytest

from breach_notify.numbers import E164, InvalidNumber, mask, parse_number
from breach_notify.redact import RedactingFilter, install, redact


def test_mask_matches_the_documented_shape() -> None:
    assert mask("+447700900123") == "+44 77** ***123"
    assert mask("+33612345678") == "+33 61** **678"
    assert mask("garbage") == "***"


def test_e164_never_shows_plaintext() -> None:
    e = E164("+447700900123")
    assert "900123" not in str(e) and "900123" not in repr(e) and "900123" not in f"{e}"
    assert e.value == "+447700900123"


def test_parse_number_reference_and_errors() -> None:
    assert parse_number("07400 123456", "GB").value == "+447400123456"
    assert parse_number("+1 (201) 555-0123").value == "+12015550123"
    with pytest.raises(InvalidNumber, match="not_valid"):
        parse_number("+447700900123")  # Ofcom's drama range is not a valid number
    with pytest.raises(InvalidNumber) as exc:
        parse_number("+44 7700 12", None)
    assert "7700" not in str(exc.value) and exc.value.exit_code == 2
    with pytest.raises(InvalidNumber, match="invalid_country_code"):
        parse_number("7700900123", None)


def test_sms_capability() -> None:
    assert parse_number("+447400123456").can_receive_sms
    assert not parse_number("+441212345678").can_receive_sms  # Birmingham fixed line


def test_redact_text_and_log_records(caplog: pytest.LogCaptureFixture) -> None:
    assert redact("to +44 7700 900123 now") == "to [redacted] now"
    assert redact("sent 12 of 40") == "sent 12 of 40"
    logger = logging.getLogger("bn-test")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    record = logger.makeRecord(
        "bn-test", logging.INFO, __file__, 1, "number %s", ("07700900123",), None
    )
    handler.filter(record)
    assert "07700900123" not in record.getMessage()
    try:
        raise ValueError("value +447700900123 rejected")
    except ValueError:
        import sys

        rec = logger.makeRecord("bn-test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    handler.filter(rec)
    assert rec.exc_info is None and "447700900123" not in rec.getMessage()


def test_install_puts_the_filter_on_every_handler_once() -> None:
    logger = logging.getLogger("breach_notify.test.redaction")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install()
        install()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    "text",
    [
        "GET /x?n=44+7911+123456 HTTP/1.1",
        "GET /x?n=%2B44%207911%20123456",
        "n=+44_7911_123456&b=1",
        "tel:+44(0)7911-123456",
    ],
)
def test_redaction_catches_numbers_split_by_plus_and_url_encoding(text: str) -> None:
    masked = redact(text)
    assert "[redacted]" in masked
    assert not any(run in masked for run in ("7911", "123456", "%207911"))
