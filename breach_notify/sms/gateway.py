"""One small protocol for every way of sending an SMS, and a registry of URL schemes.

A gateway is chosen by URL (``dryrun://``, ``memory://``, ``twilio://?from=…``). Every gateway
validates a message the same way before "sending" it, so tests reject what production would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms import segments
from breach_notify.sms.errors import BadGatewayURL, InvalidMessage


@dataclass(frozen=True)
class Message:
    """An SMS to send. ``notice_id`` lets the gateway tie callbacks and lookups to a notice."""

    to: E164
    body: str = field(repr=False)
    notice_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What the gateway accepted: its message id and the segments billed."""

    gateway_id: str
    segments: int
    status: str = "sent"


@dataclass(frozen=True)
class SentRecord:
    """A message the gateway says it already has for a recipient (used to reconcile crashes).

    ``body`` is the text when the gateway reports it, so a caller can tell its messages apart.
    """

    gateway_id: str
    created_at: datetime
    status: str
    body: str | None = field(default=None, repr=False)


@runtime_checkable
class Gateway(Protocol):
    """``send`` is the whole contract.

    ``lookup(to, since)`` lists the messages to ``to`` created at or after ``since``, taken as
    given (the caller allows for clock skew), or returns None when the gateway cannot tell.
    """

    name: str

    def send(self, message: Message) -> SendResult: ...

    def lookup(self, to: E164, since: datetime) -> list[SentRecord] | None: ...

    def close(self) -> None: ...


@runtime_checkable
class NoticeLookup(Protocol):
    """Optional: a gateway that can say for certain whether it took the message of a notice."""

    def sent_notice(self, notice_id: str) -> SentRecord | None: ...


_CONTROL = frozenset(map(chr, range(32))) - {"\n", "\r"}
MAX_SEGMENTS = 10  # Twilio's limit (1,600 characters); notices themselves are one segment


def validate(message: Message) -> segments.Segments:
    """What every gateway checks before sending; returns the segment count.

    Raises ``InvalidMessage`` (permanent) for an empty text, control characters or more than
    ``MAX_SEGMENTS`` segments. Note: this does not check that the number can receive SMS.
    """
    if not message.body.strip():
        raise InvalidMessage("the message text is empty")
    if not _CONTROL.isdisjoint(message.body):
        raise InvalidMessage("the message text holds control characters")
    counted = segments.count(message.body)
    if counted.segments > MAX_SEGMENTS:
        raise InvalidMessage(
            f"the message needs {counted.segments} segments; at most {MAX_SEGMENTS} are allowed"
        )
    return counted


GatewayFactory = Callable[[str, Settings], Gateway]
_REGISTRY: dict[str, GatewayFactory] = {}


def register(scheme: str) -> Callable[[GatewayFactory], GatewayFactory]:
    """Decorator: register a factory for ``scheme://`` URLs. Duplicates are refused."""

    def wrap(factory: GatewayFactory) -> GatewayFactory:
        if scheme in _REGISTRY:
            raise ValueError(f"gateway scheme {scheme!r} is registered twice")
        _REGISTRY[scheme] = factory
        return factory

    return wrap


def schemes() -> tuple[str, ...]:
    """The registered URL schemes (``dryrun``, ``memory``, ``twilio`` and any added)."""
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def check_url(url: str) -> None:
    """Raise ``BadGatewayURL`` (exit 2) unless ``url``'s scheme is registered; opens nothing."""
    scheme = urlsplit(url).scheme
    if scheme not in schemes():
        known = ", ".join(f"{s}://" for s in schemes())
        raise BadGatewayURL(f"unknown gateway URL scheme {scheme!r}; use one of {known}")


def open_gateway(url: str, settings: Settings) -> Gateway:
    """The gateway for ``url``. Raises ``BadGatewayURL`` (exit 2) for an unknown scheme."""
    check_url(url)
    return _REGISTRY[urlsplit(url).scheme](url, settings)


def _load_builtin() -> None:
    # Importing registers; kept lazy so that the twilio SDK loads only when asked for.
    from breach_notify.sms import gateways  # noqa: F401
