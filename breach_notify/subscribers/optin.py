"""Double opt-in: ``add`` stores a pending subscriber and texts a code; ``confirm`` checks it.

No enumeration: ``add`` gives the same answer whether the number was unknown, pending, active
or opted out, and whether or not a code went out (rate limit). Note: an active subscriber gets
no SMS on a repeated add.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.errors import GatewayError
from breach_notify.sms.gateway import Gateway, Message
from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, consent, events, registry, texts


@dataclass(frozen=True)
class AddAnswer:
    """What a caller may show: identical for every prior state of the number (new, pending,
    active, opted out, erased, rate-limited), so it says that a request was received, not what
    became of it."""

    subscriber: str  # the masked number
    status: str = "requested"
    message: str = (
        "request received. If this number is new (or not yet confirmed), a confirmation code "
        "was sent to it (at most one a minute, three a day); confirm with 'subscribers confirm' "
        "or a YES reply."
    )

    def as_dict(self) -> dict[str, str]:
        return {"subscriber": self.subscriber, "status": self.status, "message": self.message}


@dataclass(frozen=True)
class Pending:
    """A code to send after the transaction commits (internal; never shown)."""

    subscriber_id: str
    number: E164
    code: str


class BadCode(BadInput):
    """The code is wrong, expired, used up, or there is nothing to confirm (not said which)."""

    def __init__(self) -> None:
        super().__init__(
            "that code is not valid (wrong, expired or too many tries); request a new one with"
            " 'breach-notify subscribers add NUMBER'"
        )


def request(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    number: E164,
    *,
    language: str,
    source: str,
    now: datetime,
) -> Pending | None:
    """Create or reuse the subscriber and issue a code when appropriate. Call in a transaction."""
    sub = registry.find(conn, ring, number)
    if sub is None:
        sid = registry.create(conn, ring, number, status="pending", language=language, now=now)
        events.record(conn, sid, "created", source, now)
    elif sub.status == "active":
        return None
    else:
        sid = sub.id
    code = codes.issue(conn, ring, sid, now)
    if code is None:
        events.record(conn, sid, "code_rate_limited", source, now)
        return None
    events.record(conn, sid, "code_issued", source, now)
    return Pending(sid, number, code)


def deliver(
    conn: duckdb.DuckDBPyConnection,
    settings: Settings,
    gateway: Gateway,
    pending: Pending,
    source: str,
    now: datetime,
) -> GatewayError | None:
    """Text a code. On failure the code is withdrawn (so it does not count against the limits)
    and the gateway's error returned (its text carries an error code only, never the number)."""
    try:
        gateway.send(Message(pending.number, texts.confirmation(settings, pending.code)))
    except GatewayError as exc:
        codes.withdraw_latest(conn, pending.subscriber_id)
        events.record(conn, pending.subscriber_id, "code_send_failed", source, now)
        return exc
    events.record(conn, pending.subscriber_id, "code_sent", source, now)
    return None


def add(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    settings: Settings,
    gateway: Gateway,
    number: E164,
    *,
    language: str | None = None,
    source: str = "cli",
    now: datetime | None = None,
) -> AddAnswer:
    """Subscribe ``number`` pending confirmation. Raises ``BadInput`` for non-SMS numbers only.

    Note: the gateway is called after the commit; a gateway failure is an ``OperationalError``
    from the gateway's own error class, which says nothing about the number's prior state.
    """
    registry.require_sms_capable(number)
    lang = registry.check_language(language or settings.default_language)
    now = now or events.utcnow()
    with transaction(conn):
        pending = request(conn, ring, number, language=lang, source=source, now=now)
    if pending is not None:
        failure = deliver(conn, settings, gateway, pending, source, now)
        if failure is not None:
            raise failure
    return AddAnswer(str(number))


def confirm(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    number: E164,
    code: str,
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> str:
    """Activate the subscriber when ``code`` is right: ``"active"``, else ``BadCode``."""
    now = now or events.utcnow()
    with transaction(conn):
        sub = registry.find(conn, ring, number)
        ok = False
        if sub is not None and sub.status in ("pending", "opted_out"):
            ok = codes.verify(conn, ring, sub.id, code, now)
            if ok:
                consent.activate(conn, sub.id, source, now)
            else:
                events.record(conn, sub.id, "confirm_failed", source, now)
    if not ok:
        raise BadCode()
    return "active"


def confirm_by_reply(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime
) -> bool:
    """A YES from the number itself: pending, or opted out with a live code, becomes active."""
    sub = registry.get(conn, subscriber_id)
    if sub is None:
        return False
    if sub.status == "pending" or (
        sub.status == "opted_out" and codes.has_live(conn, subscriber_id, now)
    ):
        return consent.activate(conn, subscriber_id, source, now)
    if sub.status == "opted_out" and sub.confirmed:
        return consent.resume(conn, subscriber_id, source, now)
    return False
