"""Gateway errors, in two families: transient (retry with backoff) and permanent (give up).

Messages carry the gateway's error code only, never the provider's text (it can quote the number).
"""

from __future__ import annotations

from breach_notify.errors import OperationalError


class GatewayError(OperationalError):
    """Base class. ``code`` is the provider's error code as text, when there is one."""

    transient = False

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message if code is None else f"{message} (code {code})")


class TransientError(GatewayError):
    """Worth retrying later: rate limited, provider 5xx, timeout, connection reset.

    ``maybe_sent`` is true when the request may have reached the provider (a read timeout, a
    connection dropped after sending): the sender then looks the message up before retrying.
    """

    transient = True

    def __init__(self, message: str, code: str | None = None, *, maybe_sent: bool = False) -> None:
        super().__init__(message, code)
        self.maybe_sent = maybe_sent


class PermanentError(GatewayError):
    """Retrying will not help: invalid or unreachable recipient, account problem."""


class RecipientOptedOut(PermanentError):
    """The recipient has opted out at the carrier or provider (Twilio 21610)."""


class InvalidMessage(PermanentError):
    """The message itself is unusable (empty, too many segments); no gateway would take it."""


class AccountError(GatewayError):
    """The gateway refuses every message (credentials, sender, account): stop the run.

    Nothing was sent; the notice stays pending. Neither transient nor about one recipient.
    """


class BadGatewayURL(GatewayError):
    """The gateway URL cannot be used; this is the operator's input, so exit 2."""

    exit_code = 2
