"""Double opt-in: ``add`` stores a pending subscriber and texts a code; ``confirm`` checks it.

No enumeration: ``add`` gives the same answer whether the number was unknown, pending, active
or opted out, and whether or not a code went out (rate limit). Note: an active subscriber gets
no SMS on a repeated add.

``join_by_sms`` is the SMS way in: JOIN (or START) from an unknown number makes it pending and
answers with a prompt; the YES that follows (``confirm_by_reply``) activates it with consent
source ``sms-keyword``. A confirmation by the person (code or YES) lifts a suppression entry.
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
from breach_notify.subscribers import codes, consent, events, registry, suppression, texts

SMS_KEYWORD = "sms-keyword"


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
    language: str = "en"


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
    consent_id: str | None = None,
) -> Pending | None:
    """Create or reuse the subscriber and issue a code when appropriate. Call in a transaction.

    ``consent_id`` names the consent text the person accepted (the sign-up page's versioned
    checkbox); it is recorded as the source of a ``consent_given`` event.
    """
    sub = registry.find(conn, ring, number)
    if sub is None:
        sid = registry.create(conn, ring, number, status="pending", language=language, now=now)
        events.record(conn, sid, "created", source, now)
    elif sub.status == "active":
        return None
    else:
        sid = sub.id
        if sub.language != language:
            conn.execute("UPDATE subscribers SET language = ? WHERE id = ?", [language, sid])
    if consent_id is not None:
        events.record(conn, sid, "consent_given", f"{source}:{consent_id}", now)
    code = codes.issue(conn, ring, sid, now)
    if code is None:
        events.record(conn, sid, "code_rate_limited", source, now)
        return None
    events.record(conn, sid, "code_issued", source, now)
    return Pending(sid, number, code, language)


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
        text = texts.confirmation(settings, pending.code, pending.language)
        gateway.send(Message(pending.number, text))
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
    consent_source: str = consent.DOUBLE_OPT_IN,
) -> str:
    """Activate the subscriber when ``code`` is right: ``"active"``, else ``BadCode``.

    The person proved the number is theirs, so a suppression entry for it is lifted.
    """
    now = now or events.utcnow()
    with transaction(conn):
        sub = registry.find(conn, ring, number)
        ok = False
        if sub is not None and sub.status in ("pending", "opted_out"):
            ok = codes.verify(conn, ring, sub.id, code, now)
            if ok:
                consent.activate(conn, sub.id, source, now, consent_source=consent_source)
                suppression.lift(conn, sub.id)
            else:
                events.record(conn, sub.id, "confirm_failed", source, now)
    if not ok:
        raise BadCode()
    return "active"


def confirm_by_reply(
    conn: duckdb.DuckDBPyConnection, subscriber_id: str, source: str, now: datetime
) -> bool:
    """A YES from the number itself: pending, or opted out with a live code, becomes active.

    A subscriber that came in by JOIN keeps ``sms-keyword`` as its consent source.
    """
    sub = registry.get(conn, subscriber_id)
    if sub is None:
        return False
    if sub.status == "pending" or (
        sub.status == "opted_out" and codes.has_live(conn, subscriber_id, now)
    ):
        row = conn.execute(
            "SELECT consent_source FROM subscribers WHERE id = ?", [subscriber_id]
        ).fetchone()
        how = SMS_KEYWORD if row and row[0] == SMS_KEYWORD else consent.DOUBLE_OPT_IN
        changed = consent.activate(conn, subscriber_id, source, now, consent_source=how)
        if changed:
            suppression.lift(conn, subscriber_id)
        return changed
    if sub.status == "opted_out" and sub.confirmed:
        return consent.resume(conn, subscriber_id, source, now)
    return False


@dataclass(frozen=True)
class JoinAnswer:
    """What a JOIN did (for logs: no number) and the reply to send back, if any."""

    changed: bool
    reply: str | None


def join_by_sms(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    settings: Settings,
    number: E164,
    language: str | None = None,
    *,
    source: str = "sms",
    now: datetime | None = None,
) -> JoinAnswer:
    """JOIN (or START) from ``number`` itself, already authenticated by the webhook.

    Unknown (or erased) → a new pending subscriber with consent source ``sms-keyword``; pending
    or opted out → pending again. Each gets the YES prompt in ``language`` (the subscriber's own
    for a known one). An active subscriber is left alone and gets no reply. The JOIN advances
    the consent clock; the caller checks ``consent.superseded`` first for a late one. A
    suppression entry stays until the YES (the double opt-in) lifts it. Note: works inside the
    caller's transaction when there is one.
    """
    now = now or events.utcnow()
    lang = texts.language_of(language or settings.default_language)
    with transaction(conn):
        sub = registry.find(conn, ring, number)
        if sub is not None and sub.status == "active":
            return JoinAnswer(False, None)
        if sub is None:
            sid = registry.create(
                conn,
                ring,
                number,
                status="pending",
                language=lang,
                now=now,
                consent_source=SMS_KEYWORD,
            )
            events.record(conn, sid, "created", source, now)
        else:
            sid, lang = sub.id, texts.language_of(sub.language)
            conn.execute(
                "UPDATE subscribers SET status = 'pending', consent_source = ?, updated_at = ?"
                " WHERE id = ?",
                [SMS_KEYWORD, now, sid],
            )
        events.record(conn, sid, "join_requested", SMS_KEYWORD, now)
        consent.decided(conn, sid, now)  # a STOP accepted before this JOIN is older
    return JoinAnswer(True, texts.join_prompt(settings, lang))
