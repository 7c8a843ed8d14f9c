"""The Starlette app behind ``breach-notify webhooks``.

Every request: body read up to ``settings.max_body_bytes`` (413 beyond), ``X-Twilio-Signature``
checked against ``public_url`` + path with the auth token (403 and nothing changed otherwise),
then the store opened, used and closed (DuckDB has one writer; nothing is held between
requests). Logs carry the outcome only, never a number or a message text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qsl

import duckdb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
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

from breach_notify.crypto import Keyring
from breach_notify.errors import BreachNotifyError, OperationalError
from breach_notify.notify import outbox
from breach_notify.numbers import InvalidNumber, parse_number
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.subscribers import consent, inbound, spool
from breach_notify.subscribers.keywords import Intent
from breach_notify.web import check, pages

log = logging.getLogger("breach_notify.webhooks")
T = TypeVar("T")
STORE_WAIT_SECONDS = 10.0  # Twilio gives up on a webhook after 15 s


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, *, public_url: str, auth_token: str) -> Starlette:
    """The app. ``public_url`` is the base URL configured in Twilio (scheme, host, any path
    prefix); the signed URL is that base + the request's path (+ query). Note: a reverse proxy
    that serves the app under a prefix must strip it before forwarding.
    """
    if not auth_token:
        raise ValueError("an auth token is required")
    base = public_url.rstrip("/")
    validator = RequestValidator(auth_token)
    store_settings = settings.model_copy(
        update={"lock_timeout_seconds": min(settings.lock_timeout_seconds, STORE_WAIT_SECONDS)}
    )
    store_lock = threading.Lock()
    limit = settings.max_body_bytes

    def with_store(work: Callable[[duckdb.DuckDBPyConnection, Keyring], T]) -> T:
        with store_lock:
            ring = Keyring.load(store_settings.keyring_path)
            with session(store_settings) as conn:
                spool.apply(conn, store_settings)  # opt-outs kept while the store was busy
                return work(conn, ring)

    async def authenticated(request: Request) -> ImmutableMultiDict[str, str] | Response:
        try:
            body = await _read_body(request, limit)
        except _TooLarge:
            log.warning("%s refused: body over %d bytes", request.url.path, limit)
            return PlainTextResponse("request body too large", status_code=413)
        try:
            params = ImmutableMultiDict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            )
        except (UnicodeDecodeError, ValueError):
            return PlainTextResponse("bad request body", status_code=400)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if not signature or not validator.validate(url, params, signature, algorithm):
            log.warning("%s refused: missing or bad signature", request.url.path)
            return PlainTextResponse("forbidden", status_code=403)
        return params

    async def run(work: Callable[[duckdb.DuckDBPyConnection, Keyring], T]) -> T | Response:
        try:
            return await run_in_threadpool(with_store, work)
        except OperationalError:
            log.warning("store busy; answered 503")
            return PlainTextResponse("busy, retry", status_code=503, headers={"Retry-After": "5"})
        except BreachNotifyError as exc:
            log.error("request failed: %s", type(exc).__name__)
            return PlainTextResponse("server error", status_code=500)
        except Exception as exc:  # its text may quote a value: never log it
            log.error("request failed: %s (message withheld)", type(exc).__name__)
            return PlainTextResponse("server error", status_code=500)

    async def inbound_sms(request: Request) -> Response:
        params = await authenticated(request)
        if isinstance(params, Response):
            return params
        sender, body = params.get("From", ""), params.get("Body", "")
        opt_out_type = params.get("OptOutType")

        def work(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> inbound.Outcome:
            return inbound.handle(conn, ring, settings, sender, body, opt_out_type=opt_out_type)

        outcome = await run(work)
        if isinstance(outcome, Response):
            if (
                outcome.status_code == 503
                and inbound.intent_of(body, opt_out_type) is Intent.OPT_OUT
            ):
                # A STOP must not be lost to a long ingest: keep it (pseudonyms only) for later.
                await run_in_threadpool(_spool_opt_out, sender)
                log.info("inbound intent=opt_out spooled (store busy)")
                return Response(str(MessagingResponse()), media_type="application/xml")
            return outcome
        log.info(
            "inbound intent=%s known=%s changed=%s",
            outcome.intent.value,
            outcome.known,
            outcome.changed,
        )
        twiml = MessagingResponse()
        if outcome.reply:
            twiml.message(outcome.reply)
        return Response(str(twiml), media_type="application/xml")

    async def status_callback(request: Request) -> Response:
        params = await authenticated(request)
        if isinstance(params, Response):
            return params
        gateway_id = params.get("MessageSid") or params.get("SmsSid") or ""
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        error_code = params.get("ErrorCode") or None

        def work(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> bool:
            changed = outbox.record_delivery(conn, gateway_id, status, error_code)
            if error_code == outbox.OPTED_OUT_CODE:
                subscriber_id = outbox.subscriber_of(conn, gateway_id)
                if subscriber_id is not None:
                    consent.opt_out(conn, subscriber_id, "gateway")
            return changed

        changed = await run(work)
        if isinstance(changed, Response):
            return changed
        log.info("status %s changed=%s", status[:20] or "-", changed)
        return Response(status_code=204)

    def _spool_opt_out(sender: str) -> None:
        try:
            number = parse_number(sender)
        except InvalidNumber:
            return
        ring = Keyring.load(store_settings.keyring_path)
        spool.append_opt_out(store_settings, ring, number, datetime.now(UTC))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    front = pages.Front(settings)
    return Starlette(
        routes=[
            Route("/twilio/inbound", inbound_sms, methods=["POST"]),
            Route("/twilio/status", status_callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *check.routes(settings, front),
            *pages.routes(settings, front=front),
        ]
    )


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
