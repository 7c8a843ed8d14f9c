"""The subscriber's front door: landing page, sign-up, confirmation, stop alerts.

``routes(settings)`` returns the routes to add to the web app (each wrapped in the security
headers middleware). Every answer about a number is the same whatever its state, and so is the
work done before answering: the store is opened and the SMS sent after the response, in a
Starlette background task. The number a flow is about stays in process memory only (keyed by
an HMAC of the form cookie) between the form and the code; logs carry outcomes, never a number,
an address or a code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import duckdb
import jinja2
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from breach_notify.crypto import Keyring
from breach_notify.errors import OperationalError
from breach_notify.numbers import E164, InvalidNumber, parse_number
from breach_notify.settings import Settings
from breach_notify.sms import linetype
from breach_notify.sms.errors import GatewayError
from breach_notify.sms.gateway import Gateway, Message, open_gateway
from breach_notify.store.db import session, transaction
from breach_notify.subscribers import codes, events, leave, optin, texts
from breach_notify.web import abuse, i18n
from breach_notify.web.security import (
    Csrf,
    NotAForm,
    SecurityHeaders,
    TooLarge,
    read_form,
    same_origin,
)

log = logging.getLogger("breach_notify.web.pages")
T = TypeVar("T")
FLOW_TTL = 20 * 60
STOP_SOURCE = "web:stop"
PACKAGE = "breach_notify.web"


class Store:
    """Store work from many requests, done in batches: one thread opens the store, runs every
    piece of work queued meanwhile (each in its own transaction where it asks for one), and
    closes it. DuckDB has one writer and opening it costs more than the work of a sign-up, so
    under load many sign-ups share one opening; nothing is held between batches."""

    MAX_BATCH = 200

    def __init__(self, settings: Settings, wait_seconds: float = 10.0) -> None:
        self.settings = settings.model_copy(
            update={"lock_timeout_seconds": min(settings.lock_timeout_seconds, wait_seconds)}
        )
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], Future[Any]]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, work: Callable[[duckdb.DuckDBPyConnection, Keyring], T]) -> T:
        """Run ``work(conn, ring)`` in the next batch and return its result (or raise)."""
        done: Future[T] = Future()
        self._queue.put((work, done))
        with self._start:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="pages-store", daemon=True)
                self._worker.start()
        return done.result()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                ring = Keyring.load(self.settings.keyring_path)
                with session(self.settings) as conn:
                    for work, done in batch:
                        try:
                            done.set_result(work(conn, ring))
                        except BaseException as exc:  # handed to the caller, who decides
                            done.set_exception(exc)
            except BaseException as exc:  # the store could not be opened: every caller knows
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)


@dataclass(frozen=True)
class Flow:
    """A sign-up or stop in progress: kept in memory between the form and the code."""

    kind: str  # "signup" | "stop"
    number: E164 | None  # None: a number that cannot get a code (same answer all the same)
    language: str
    consent: str
    expires: float


class Flows:
    """Flows by browser (HMAC of the form cookie); expire after 20 minutes."""

    def __init__(self, limit: int = 50_000) -> None:
        self._key = secrets.token_bytes(32)
        self._flows: dict[str, Flow] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def _id(self, cookie: str) -> str:
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def put(self, cookie: str, flow: Flow) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._flows) >= self._limit:
                self._flows = {k: f for k, f in self._flows.items() if f.expires > now}
                while len(self._flows) >= self._limit:
                    self._flows.pop(next(iter(self._flows)))
            self._flows[self._id(cookie)] = flow

    def get(self, cookie: str | None, kind: str) -> Flow | None:
        if cookie is None:
            return None
        with self._lock:
            flow = self._flows.get(self._id(cookie))
        if flow is None or flow.kind != kind or flow.expires <= time.monotonic():
            return None
        return flow

    def drop(self, cookie: str) -> None:
        with self._lock:
            self._flows.pop(self._id(cookie), None)


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Front:
    """The state behind the pages: limits, proof of work, budget, flows, store and gateway."""

    def __init__(
        self,
        settings: Settings,
        *,
        gateway: Gateway | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.https = (settings.public_url or "").startswith("https://")
        self.store = store or Store(settings)
        self.gateway = gateway or open_gateway(settings.gateway, settings)
        self.csrf = Csrf(https=self.https)
        self.limits = abuse.RateLimits(settings)
        self.pow = abuse.ProofOfWork(settings.pow_cost) if settings.pow_enabled else None
        self.budget = abuse.SmsBudget(settings.signup_sms_daily_budget, self._budget_seed)
        self.flows = Flows()
        self.allowed = settings.allowed_country_codes
        self.env = _templates()
        self.limit = min(settings.max_body_bytes, 16_384)
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Background tasks (store work, SMS) not finished yet."""
        return self._busy

    def later(self, work: Callable[..., None], *args: Any) -> BackgroundTask:
        """``work(*args)`` after the response. The connection is closed with the response, so
        a next request on it cannot be delayed by this work (timing would tell state)."""
        with self._busy_lock:
            self._busy += 1

        def run() -> None:
            try:
                work(*args)
            finally:
                with self._busy_lock:
                    self._busy -= 1

        return BackgroundTask(run)

    def _budget_seed(self) -> int:
        return self.store.run(lambda conn, ring: abuse.budget_spent(conn))

    # -- rendering ---------------------------------------------------------------------------

    def _lang(self, request: Request, form: dict[str, str] | None = None) -> str:
        asked = (form or {}).get("ui") or request.query_params.get("lang")
        return i18n.negotiate(request.headers.get("accept-language"), asked)

    def render(
        self,
        request: Request,
        template: str,
        lang: str,
        *,
        status: int = 200,
        background: BackgroundTask | None = None,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        cookie, new = self.csrf.session(request)
        root = request.scope.get("root_path", "")
        path = request.url.path.removeprefix(root) or "/"

        def href(path: str, **query: str) -> str:
            query = {"lang": lang, **query}
            return f"{root}{path}?{urlencode(query)}"

        body = self.env.get_template(template).render(
            lang=lang,
            t=lambda key, **v: i18n.message(lang, key, **v),
            org=self.settings.org_name,
            contact=self.settings.org_contact_url,
            csrf=self.csrf.token(cookie),
            href=href,
            static=f"{root}/static",
            pow=self.pow is not None,
            other_lang="fr" if lang == "en" else "en",
            path=path,
            switch_path=path if path in ("/", "/signup", "/stop", "/check") else "/",
            **context,
        )
        response = HTMLResponse(body, status_code=status, background=background, headers=headers)
        if new:
            self.csrf.set_cookie(response, cookie)
        return response

    def signup_form(
        self,
        request: Request,
        lang: str,
        *,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        values = values or {}
        return self._number_form(
            request,
            "signup.html",
            lang,
            status,
            errors,
            values,
            sms_language=values.get("language") or lang,
            languages=i18n.language_names(),
            consent_text=i18n.consent_text(lang, self.settings.org_name),
            consented=values.get("consent") == "yes",
        )

    def stop_form(
        self,
        request: Request,
        lang: str,
        *,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        return self._number_form(request, "stop.html", lang, status, errors, values or {})

    def _number_form(
        self,
        request: Request,
        template: str,
        lang: str,
        status: int,
        errors: dict[str, str] | None,
        values: dict[str, str],
        **extra: Any,
    ) -> Response:
        """A form asking for a number: country (from ``Accept-Language``, never the IP) and
        number, with what the person typed kept."""
        country = values.get("country")
        if country is None:
            country = i18n.default_country(request.headers.get("accept-language"), self.allowed)
        return self.render(
            request,
            template,
            lang,
            status=status,
            errors=errors or {},
            countries=i18n.countries(lang, self.allowed),
            country=country,
            number=values.get("number", ""),
            **extra,
        )

    def notice(self, request: Request, lang: str, kind: str, status: int, **extra: Any) -> Response:
        """A page that only says something (expired, too many attempts, budget, …)."""
        return self.render(request, "notice.html", lang, status=status, kind=kind, **extra)

    # -- checks shared by the forms ------------------------------------------------------------

    def client_address(self, request: Request) -> str:
        if self.settings.web_trust_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last
        return request.client.host if request.client else "-"

    async def posted(self, request: Request) -> dict[str, str] | Response:
        """The form of a POST that passed the size, origin and CSRF checks, or the refusal."""
        lang = self._lang(request)
        try:
            form = await read_form(request, self.limit)
        except TooLarge:
            log.info("%s refused: body too large", request.url.path)
            return self.notice(request, lang, "too_large", 413)
        except NotAForm:
            return self.notice(request, lang, "expired", 400)
        if not same_origin(request, self.settings.public_url) or not self.csrf.valid(request, form):
            log.info("%s refused: CSRF", request.url.path)
            return self.notice(request, self._lang(request, form), "expired", 403)
        return form

    async def proof(self, request: Request, form: dict[str, str], lang: str) -> Response | None:
        """Proof of work and the client limits: None when the form may go on. The verification
        (one PBKDF2 of ``pow_cost`` iterations) runs off the event loop."""
        payload = form.get("altcha", "")
        with_pow = self.pow is None or bool(payload)
        if not self.limits.client(self.client_address(request), with_pow=with_pow):
            log.info("%s refused: client limit (pow=%s)", request.url.path, with_pow)
            kind = "busy" if with_pow else "nojs_busy"
            return self.notice(request, lang, kind, 429, headers={"Retry-After": "600"})
        if (
            payload
            and self.pow is not None
            and not await run_in_threadpool(self.pow.verify, payload)
        ):
            log.info("%s refused: proof of work invalid", request.url.path)
            return self._pow_failed(request, form, lang)
        return None

    def _pow_failed(self, request: Request, form: dict[str, str], lang: str) -> Response:
        errors = {"altcha": i18n.message(lang, "err_pow")}
        if request.url.path.endswith("/stop"):
            return self.stop_form(request, lang, status=400, errors=errors, values=form)
        return self.signup_form(request, lang, status=400, errors=errors, values=form)

    def parse(
        self, form: dict[str, str], lang: str, errors: dict[str, str]
    ) -> tuple[E164 | None, str]:
        """The number from country + number fields; errors for what the person can fix."""
        country = form.get("country", "").strip().upper()
        raw = form.get("number", "").strip()[:40]
        if not country or len(country) != 2:
            errors["country"] = i18n.message(lang, "err_country")
        elif self.allowed and country not in self.allowed:
            errors["country"] = i18n.message(lang, "err_country_not_served")
        if not raw:
            errors["number"] = i18n.message(lang, "err_number")
        if errors:
            return None, country
        try:
            return parse_number(raw, country), country
        except InvalidNumber:
            errors["number"] = i18n.message(lang, "err_number_invalid")
            return None, country

    # -- sending after the response --------------------------------------------------------------

    def _deliver(self, pending: optin.Pending, text: str, source: str) -> bool:
        try:
            self.gateway.send(Message(pending.number, text))
        except GatewayError as exc:
            log.warning("code not sent: %s", type(exc).__name__)

            def failed(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> None:
                with transaction(conn):
                    codes.withdraw_latest(conn, pending.subscriber_id)
                    events.record(conn, pending.subscriber_id, "code_send_failed", source)

            self.store.run(failed)
            return False
        self.store.run(
            lambda conn, ring: events.record(conn, pending.subscriber_id, "code_sent", source)
        )
        return True

    def signup_later(self, number: E164 | None, language: str, consent: str) -> None:
        """The store work and the SMS of a sign-up, after the answer went out."""
        sent = False
        try:
            if number is None or not linetype.allows(self.settings, self.gateway, number):
                return

            def work(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> optin.Pending | None:
                with transaction(conn):
                    return optin.request(
                        conn,
                        ring,
                        number,
                        language=language,
                        source=abuse.SIGNUP_SOURCE,
                        now=events.utcnow(),
                        consent_id=consent,
                    )

            pending = self.store.run(work)
            if pending is not None:
                text = texts.confirmation(self.settings, pending.code, pending.language)
                sent = self._deliver(pending, text, abuse.SIGNUP_SOURCE)
            log.info("sign-up done (code sent=%s)", sent)
        except Exception as exc:  # its text may quote a value: never log it
            log.error("sign-up failed after answering: %s (message withheld)", type(exc).__name__)
        finally:
            if not sent:
                self.budget.refund()

    def stop_later(self, number: E164 | None) -> None:
        try:
            if number is None:
                return
            pending = self.store.run(
                lambda conn, ring: leave.request_stop(
                    conn, ring, number, source=STOP_SOURCE, now=events.utcnow()
                )
            )
            sent = False
            if pending is not None:
                text = texts.stop_code(self.settings, pending.code, pending.language)
                sent = self._deliver(pending, text, STOP_SOURCE)
            log.info("stop request done (code sent=%s)", sent)
        except Exception as exc:
            log.error(
                "stop request failed after answering: %s (message withheld)", type(exc).__name__
            )

    # -- endpoints -----------------------------------------------------------------------------

    async def landing(self, request: Request) -> Response:
        return self.render(request, "landing.html", self._lang(request))

    async def signup_page(self, request: Request) -> Response:
        return self.signup_form(request, self._lang(request))

    async def challenge(self, request: Request) -> Response:
        if self.pow is None:
            return JSONResponse({"error": "proof of work is off"}, status_code=404)
        return JSONResponse(self.pow.challenge(), headers={"Cache-Control": "no-store"})

    async def _proven_form(self, request: Request) -> tuple[dict[str, str], str] | Response:
        """The posted form and its language, once CSRF, size and proof of work have passed."""
        form = await self.posted(request)
        if isinstance(form, Response):
            return form
        lang = self._lang(request, form)
        refused = await self.proof(request, form, lang)
        return refused if refused is not None else (form, lang)

    def _code_asked(
        self, request: Request, lang: str, flow: Flow, task: BackgroundTask
    ) -> Response:
        """Remember the flow under the CSRF cookie; answer the code page (the SMS, if any, goes
        out in ``task`` after the response, on a closed connection)."""
        self.flows.put(self.csrf.cookie_value(request) or "", flow)
        log.info("%s answered", "sign-up" if flow.kind == "signup" else flow.kind)
        return self.render(
            request,
            "code.html",
            lang,
            kind=flow.kind,
            errors={},
            background=task,
            headers={"Connection": "close"},
        )

    async def signup(self, request: Request) -> Response:
        proven = await self._proven_form(request)
        if isinstance(proven, Response):
            return proven
        form, lang = proven
        errors: dict[str, str] = {}
        number, _ = self.parse(form, lang, errors)
        if form.get("consent") != "yes":
            errors["consent"] = i18n.message(lang, "err_consent")
        if errors:
            return self.signup_form(request, lang, status=400, errors=errors, values=form)
        assert number is not None
        if self.budget.stale():  # once a day the count is read from the store
            await run_in_threadpool(self.budget.remaining)
        if not self.budget.reserve():
            log.info("sign-up refused: daily SMS budget spent")
            retry = str(self.budget.seconds_to_reset())
            return self.notice(request, lang, "budget", 503, headers={"Retry-After": retry})
        sms_language = texts.language_of(form.get("language") or lang)
        consent = i18n.consent_id(lang)
        # The same steps for every number; which of them can get a code is decided later.
        allowed = self.limits.number(number.value)
        target = number if number.can_receive_sms and allowed else None
        flow = Flow("signup", target, sms_language, consent, time.monotonic() + FLOW_TTL)
        task = self.later(self.signup_later, target, sms_language, consent)
        return self._code_asked(request, lang, flow, task)

    async def confirm_page(self, request: Request) -> Response:
        lang = self._lang(request)
        flow = self.flows.get(self.csrf.cookie_value(request), "signup")
        if flow is None:
            return self.notice(request, lang, "expired", 200)
        return self.render(request, "code.html", lang, kind="signup", errors={})

    async def confirm(self, request: Request) -> Response:
        return await self._code(request, "signup")

    async def stop_page(self, request: Request) -> Response:
        return self.stop_form(request, self._lang(request))

    async def stop(self, request: Request) -> Response:
        proven = await self._proven_form(request)
        if isinstance(proven, Response):
            return proven
        form, lang = proven
        errors: dict[str, str] = {}
        number, _ = self.parse(form, lang, errors)
        if errors:
            return self.stop_form(request, lang, status=400, errors=errors, values=form)
        assert number is not None
        target = number if self.limits.number(number.value) else None
        flow = Flow("stop", target, lang, "", time.monotonic() + FLOW_TTL)
        return self._code_asked(request, lang, flow, self.later(self.stop_later, target))

    async def stop_confirm(self, request: Request) -> Response:
        return await self._code(request, "stop")

    async def _code(self, request: Request, kind: str) -> Response:
        form = await self.posted(request)
        if isinstance(form, Response):
            return form
        lang = self._lang(request, form)
        cookie = self.csrf.cookie_value(request) or ""
        flow = self.flows.get(cookie, kind)
        if flow is None:
            return self.notice(request, lang, "expired", 400)
        if not self.limits.allow("confirm", self.client_address(request)):
            log.info("code refused: client limit")
            return self.notice(request, lang, "busy", 429, headers={"Retry-After": "600"})
        code = "".join(ch for ch in form.get("code", "") if not ch.isspace())
        if len(code) != codes.LENGTH or not code.isdigit():
            errors = {"code": i18n.message(lang, "err_code")}
            return self.render(request, "code.html", lang, status=400, kind=kind, errors=errors)
        number = flow.number

        def work(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> bool:
            if number is None:
                return False
            now = events.utcnow()
            if kind == "stop":
                return leave.confirm_stop(conn, ring, number, code, source=STOP_SOURCE, now=now)
            try:
                optin.confirm(
                    conn,
                    ring,
                    number,
                    code,
                    source=abuse.SIGNUP_SOURCE,
                    now=now,
                    consent_source=f"web-double-opt-in:{flow.consent}",
                )
            except optin.BadCode:
                return False
            return True

        try:
            ok = await run_in_threadpool(self.store.run, work)
        except OperationalError:
            log.warning("store busy; answered 503")
            return self.notice(request, lang, "busy", 503, headers={"Retry-After": "5"})
        log.info("%s code checked: ok=%s", kind, ok)
        if not ok:
            errors = {"code": i18n.message(lang, "err_code_invalid")}
            return self.render(request, "code.html", lang, status=400, kind=kind, errors=errors)
        self.flows.drop(cookie)
        return self.render(request, "done.html", lang, kind=kind)


def routes(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    store: Store | None = None,
    front: Front | None = None,
) -> list[BaseRoute]:
    """The pages' routes, to add to the web app. ``gateway`` defaults to ``settings.gateway``."""
    f = front or Front(settings, gateway=gateway, store=store)
    guard = [Middleware(SecurityHeaders, https=f.https)]

    def page(path: str, endpoint: Callable[[Request], Any], method: str = "GET") -> Route:
        return Route(path, endpoint, methods=[method], middleware=guard)

    return [
        page("/", f.landing),
        page("/signup", f.signup_page),
        page("/signup", f.signup, "POST"),
        page("/confirm", f.confirm_page),
        page("/confirm", f.confirm, "POST"),
        page("/stop", f.stop_page),
        page("/stop", f.stop, "POST"),
        page("/stop/confirm", f.stop_confirm, "POST"),
        page("/altcha/challenge", f.challenge),
        Mount(
            "/static",
            app=StaticFiles(packages=[(PACKAGE, "static")]),
            name="static",
            middleware=guard,
        ),
    ]


def app(settings: Settings, *, gateway: Gateway | None = None) -> Any:
    """The pages alone, as their own Starlette app (tests, benchmarks, a pages-only deployment)."""
    from starlette.applications import Starlette

    return Starlette(routes=routes(settings, gateway=gateway))
