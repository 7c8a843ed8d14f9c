"""The Starlette app behind ``breach-notify web``: Twilio's inbound and status webhooks.

Accept, then apply. Every request: body read up to ``settings.max_body_bytes`` (413 beyond),
decoded (400 when it is not a form), ``X-Twilio-Signature`` checked against ``public_url`` +
path with the auth token (403 and nothing kept otherwise). An event that changes something (a
STOP, START or YES; a delivery status) is then written to the event journal — pseudonyms and
gateway ids only — and the answer waits until it is on disk (group commit, see
``events.journal``); a journal that cannot be written answers 503 and keeps nothing. The
journal's applier (``notify.worker``, a thread of this process) moves events into the store
when it can take it; nothing per request opens DuckDB or reads the keyring file.

Replies never depend on a number's state: HELP gets the help text, YES an acknowledgement
worded for every case, JOIN words and START the JOIN prompt ("Reply YES to confirm …"), STOP
nothing (the carrier replies); in French for the French keywords (OUI, AIDE, the French JOIN
words). A JOIN or START is journaled with the sender's number sealed under the active seal key,
the MessageSid as associated data (DESIGN §9): the applier makes an unknown number pending. With
``lookup_line_type`` and a Twilio gateway, the line type is asked after the answer and its
verdict journaled too. Logs carry the path, the outcome and the intent; never a number, a
message text, a query string or a signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from breach_notify.events import journal
from breach_notify.events.journal import Entry, JournalUnavailable
from breach_notify.notify import outbox
from breach_notify.notify.worker import Worker
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms import linetype
from breach_notify.subscribers import inbound, texts
from breach_notify.subscribers.keywords import Intent
from breach_notify.web import check, pages
from breach_notify.web.keys import Keys

log = logging.getLogger("breach_notify.webhooks")
_GATEWAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_XML = "application/xml"


class _TooLarge(Exception):
    pass


def create_app(
    settings: Settings, *, public_url: str, auth_token: str, apply_events: bool = True
) -> Starlette:
    """The app. ``public_url`` is the base URL configured in Twilio (scheme, host, any path
    prefix); the signed URL is that base + the request's path (+ query). Note: a reverse proxy
    that serves the app under a prefix must strip it before forwarding.

    With ``apply_events=False`` no applier thread runs (the journal fills; someone else drains).
    """
    if not auth_token:
        raise ValueError("an auth token is required")
    base = public_url.rstrip("/")
    validator = RequestValidator(auth_token)
    limit = settings.max_body_bytes
    keys = Keys(settings.keyring_path)  # loaded once; reloaded when the file is replaced
    worker = Worker(settings)
    writer = journal.Writer(
        settings.journal_path, max_bytes=settings.journal_max_bytes, on_commit=worker.wake
    )
    front = pages.Front(settings)
    words = inbound.Words.from_settings(settings)
    replies = {
        (intent, lang): _twiml(inbound.reply(settings, intent, lang))
        for intent in Intent
        for lang in texts.LANGUAGES
    }

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer.start()
        if apply_events:
            worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(writer.close)
            if apply_events:
                await asyncio.to_thread(worker.stop)

    async def authenticated(request: Request) -> ImmutableMultiDict[str, str] | Response:
        path = request.url.path
        try:
            body = await _read_body(request, limit)
        except _TooLarge:
            log.warning("%s refused: body over %d bytes", path, limit)
            return PlainTextResponse("request body too large", status_code=413)
        try:
            params = ImmutableMultiDict(_form(body))
        except (UnicodeDecodeError, ValueError):
            log.warning("%s refused: malformed body", path)
            return PlainTextResponse("bad request body", status_code=400)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        query = request.url.query
        url = base + path + (f"?{query}" if query else "")
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if not signature or not validator.validate(url, params, signature, algorithm):
            log.warning("%s refused: missing or bad signature", path)
            return PlainTextResponse("forbidden", status_code=403)
        return params

    async def keep(entry: Entry) -> Response | None:
        """Journal ``entry``; None once durable, else the 503 to answer."""
        try:
            await writer.append(entry)
        except JournalUnavailable:
            return PlainTextResponse("busy, retry", status_code=503, headers={"Retry-After": "5"})
        return None

    async def inbound_sms(request: Request) -> Response:
        params = await authenticated(request)
        if isinstance(params, Response):
            return params
        intent, lang = words.read(params.get("Body", ""), params.get("OptOutType"))
        after: BackgroundTask | None = None
        if intent in inbound.CHANGES_CONSENT:
            message_id = params.get("MessageSid") or params.get("SmsSid") or ""
            if not _GATEWAY_ID.fullmatch(message_id):
                log.warning("/twilio/inbound refused: no usable MessageSid")
                return PlainTextResponse("MessageSid missing or malformed", status_code=400)
            number = keys.number(params.get("From", ""))
            if number is not None:
                joining = intent in inbound.JOINS
                check = joining and linetype.enabled(settings, front.gateway)
                entry = journal.inbound_entry(
                    message_id,
                    intent.value,
                    keys.pseudonyms_of(number),
                    sealed=keys.seal(number, message_id) if joining else None,
                    language=lang if joining else None,
                    lookup=check,
                )
                failed = await keep(entry)
                if failed is not None:
                    log.warning("inbound intent=%s answered 503: journal unavailable", intent.value)
                    return failed
                if check:
                    after = BackgroundTask(line_type_verdict, number, message_id)
        log.info("inbound intent=%s accepted", intent.value)
        return Response(replies[(intent, lang)], media_type=_XML, background=after)

    def line_type_verdict(number: E164, message_id: str) -> None:
        """After the answer: Twilio Lookup on a JOIN's sender, its verdict into the journal."""
        mobile = linetype.allows(settings, front.gateway, number)
        try:
            writer.submit(journal.lookup_entry(message_id, mobile)).result(timeout=30)
        except Exception as exc:  # the JOIN then applies after applier.LOOKUP_WAIT
            log.warning("line type verdict not journaled (%s)", type(exc).__name__)

    async def status_callback(request: Request) -> Response:
        params = await authenticated(request)
        if isinstance(params, Response):
            return params
        message_id = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
        if not _GATEWAY_ID.fullmatch(message_id) or status not in outbox.PROVIDER_STATES:
            log.info("status callback ignored: unknown status or message id")
            return Response(status_code=204)
        raw_code = (params.get("ErrorCode") or "").strip()
        code = raw_code if raw_code.isdigit() and len(raw_code) <= 8 else None  # digits only
        recipient = keys.recipient_pseudonyms(params.get("To", ""))
        failed = await keep(journal.status_entry(message_id, status, code, recipient))
        if failed is not None:
            log.warning("status callback answered 503: journal unavailable")
            return failed
        log.debug("status %s accepted", status)
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        try:
            backlog = await asyncio.to_thread(journal.backlog, settings.journal_path)
        except JournalUnavailable:
            return _json({"status": "error", "events": None}, 503)
        alarm = backlog.oldest_seconds > settings.events_alarm_seconds
        return _json({"status": "alarm" if alarm else "ok", "events": backlog.as_dict()}, 200)

    return Starlette(
        routes=[
            Route("/twilio/inbound", inbound_sms, methods=["POST"]),
            Route("/twilio/status", status_callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *check.routes(settings, front),
            *pages.routes(settings, front=front),
        ],
        lifespan=lifespan,
    )


def _twiml(text: str | None) -> bytes:
    reply = MessagingResponse()
    if text:
        reply.message(text)
    return str(reply).encode()


def _json(payload: object, status: int) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


def _form(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
