"""A logging filter that masks anything shaped like a phone number, on every handler."""

from __future__ import annotations

import logging
import re

# Between two digits: whitespace, ``( ) . - / + _`` or their URL-encoded forms (``%20``, ``%2B``
# …), so a number in a query string (``?n=44+7911+123456``, ``%2B44%207911…``) is caught too.
_SEP = r"(?:[\s().\-/+_]|%2[0BbDdEeFf]|%28|%29)"
# Seven or more digits, optionally led by '+' (or ``%2B``) and split by up to two separators.
_NUMBERISH = re.compile(rf"(?:\+|%2[Bb])?\d(?:{_SEP}{{0,2}}\d){{6,}}")


def redact(text: str) -> str:
    """Replace every digit run of seven or more (separators allowed) with ``[redacted]``."""
    return _NUMBERISH.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (args merged) and drops exception text that may quote values."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not leak its args either
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_info = None
            record.exc_text = None
            record.msg = f"{record.msg} [{type(exc).__name__}: message withheld]"
        return True


def install() -> None:
    """Put the filter on every handler of every logger that exists now, the root's included.

    The one installer: the CLI calls it once logging is set up, the flows at the start of each
    flow (Prefect may have configured logging in that process before us). Cheap, and safe to
    call repeatedly: a handler gets the filter once.
    """
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
