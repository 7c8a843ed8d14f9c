"""Page security: response headers with a strict CSP, a CSRF token bound to a SameSite=Strict
cookie, same-origin checks, and form bodies read under a size limit.

CSRF: the cookie holds a random value; the form token is ``HMAC(secret, cookie value)``, so a
page that cannot read the cookie cannot make the token (signed double submit). The secret is
random per process: a form from before a restart is refused as expired, and shown again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": (
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
    ),
}
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """ASGI middleware: the headers above on every response; ``no-store`` unless cacheable."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        extra = dict(HEADERS)
        if https:
            extra["Strict-Transport-Security"] = HSTS
        self._headers = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._headers if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class TooLarge(Exception):
    """The request body is over the limit."""


class NotAForm(Exception):
    """The request body is not a URL-encoded form."""


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """The first value of each field of a URL-encoded body of at most ``limit`` bytes."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise NotAForm
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    try:
        pairs = parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise NotAForm from None
    form: dict[str, str] = {}
    for name, value in pairs[:50]:
        form.setdefault(name, value)
    return form


class Csrf:
    """Signed double-submit tokens on a ``SameSite=Strict`` cookie."""

    FIELD = "csrf"

    def __init__(self, *, https: bool, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.https = https
        # The __Host- prefix pins the cookie to this host and path, and needs Secure.
        self.cookie = "__Host-bn_csrf" if https else "bn_csrf"

    def _sign(self, value: str) -> str:
        mac = hmac.new(self._secret, b"csrf:" + value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode()

    def cookie_value(self, request: Request) -> str | None:
        value = request.cookies.get(self.cookie, "")
        return value if 20 <= len(value) <= 64 and value.replace("-", "").isalnum() else None

    def session(self, request: Request) -> tuple[str, bool]:
        """The client's cookie value, or a new one (``True``: the response must set it)."""
        current = self.cookie_value(request)
        if current is not None:
            return current, False
        return secrets.token_hex(16), True

    def token(self, cookie_value: str) -> str:
        return self._sign(cookie_value)

    def valid(self, request: Request, form: Mapping[str, str]) -> bool:
        value = self.cookie_value(request)
        sent = form.get(self.FIELD, "")
        return value is not None and hmac.compare_digest(self._sign(value), sent)

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            self.cookie,
            value,
            max_age=None,  # a session cookie
            path="/",
            secure=self.https,
            httponly=True,
            samesite="strict",
        )


def same_origin(request: Request, public_url: str | None) -> bool:
    """False for a POST that says it comes from another site (``Sec-Fetch-Site`` or ``Origin``).

    Browsers send these on form posts; a request without them (curl, old browsers), or with
    ``Origin: null`` (what ``Referrer-Policy: no-referrer`` makes some browsers send), relies on
    the CSRF token alone.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    if public_url:
        parts = urlsplit(public_url)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed
