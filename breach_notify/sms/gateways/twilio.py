"""``twilio://?from=+1…`` or ``?messaging_service=MG…``: SMS through the real Twilio SDK.

Options (query string): ``api_base`` (send the SDK to another base URL, e.g. a test server on
loopback), ``status_callback`` (URL), ``validity`` (seconds), ``timeout`` (seconds, default 10).
Credentials come from the environment only: ``TWILIO_ACCOUNT_SID`` + ``TWILIO_AUTH_TOKEN``, or
``TWILIO_API_KEY`` + ``TWILIO_API_SECRET`` with ``TWILIO_ACCOUNT_SID``.

The SDK never retries a POST (no retrying adapter is mounted), every request has a timeout, the
SDK's request logging is discarded and urllib3's redacted (query strings hold ``To``), and every
error is translated by :func:`translate` without keeping the SDK's text (it can quote the number).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.util.retry import Retry

from breach_notify.numbers import E164
from breach_notify.redact import RedactingFilter
from breach_notify.settings import Settings
from breach_notify.sms.errors import (
    AccountError,
    BadGatewayURL,
    GatewayError,
    PermanentError,
    RecipientOptedOut,
    TransientError,
)
from breach_notify.sms.gateway import Message, SendResult, SentRecord, validate

DEFAULT_TIMEOUT = 10.0

# Twilio error codes (https://www.twilio.com/docs/api/errors), one table.
OPTED_OUT = frozenset({21610})
TRANSIENT = frozenset({20429, 20500, 20503, 30001, 30002})
ACCOUNT = frozenset(
    {
        20003,
        20005,
        20008,
        20404,
        21212,
        21601,
        21603,
        21606,
        21608,
        21611,
        21659,
        21701,
        21703,
        21704,
        21705,
    }
)
PERMANENT = frozenset(
    {
        21211,
        21214,
        21217,
        21219,
        21401,
        21407,
        21408,
        21421,
        21602,
        21604,
        21612,
        21614,
        21617,
        21620,
        21635,
        30003,
        30004,
        30005,
        30006,
        30007,
        30008,
    }
)

_sdk_log = logging.getLogger("breach_notify.sms.twilio.sdk")
_sdk_log.addHandler(logging.NullHandler())
_sdk_log.propagate = False
_sdk_log.setLevel(logging.CRITICAL)
# urllib3 logs request lines at DEBUG, query string (``To=…``) included: redact at the source.
_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, RedactingFilter) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(RedactingFilter())


def translate(exc: BaseException) -> GatewayError:
    """The one place SDK and transport errors become ours. Only codes survive, never text."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(exc.status or 0)
        code = int(exc.code) if isinstance(exc.code, int) or str(exc.code).isdigit() else None
        tag = str(code if code is not None else status)
        if code in OPTED_OUT:
            return RecipientOptedOut("the recipient has opted out with the carrier", tag)
        if code in TRANSIENT or status == 429 or status >= 500:
            return TransientError(f"Twilio is unavailable or rate limiting (HTTP {status})", tag)
        if code in ACCOUNT or status in (401, 403):
            return AccountError(
                f"Twilio refused the account or sender (HTTP {status}); check TWILIO_* "
                "credentials and the gateway URL's from / messaging_service",
                tag,
            )
        if code in PERMANENT or 400 <= status < 500:
            return PermanentError(f"Twilio refused the message (HTTP {status})", tag)
        return TransientError(f"unexpected Twilio response (HTTP {status})", tag)
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError("Twilio did not accept the connection in time", "timeout")
    if isinstance(exc, requests.Timeout):
        return TransientError("Twilio did not answer in time", "timeout", maybe_sent=True)
    if isinstance(exc, requests.ConnectionError):
        sent = not _refused(exc)
        return TransientError("the connection to Twilio failed", "connection", maybe_sent=sent)
    if isinstance(exc, requests.RequestException | TwilioException | ValueError):
        return TransientError(
            f"Twilio request failed ({type(exc).__name__})", "request", maybe_sent=True
        )
    return TransientError(f"Twilio request failed ({type(exc).__name__})", None, maybe_sent=True)


def _refused(exc: BaseException) -> bool:
    """True when the connection was never made (nothing can have been sent)."""
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("NewConnectionError", "ConnectionRefusedError", "NameResolutionError"):
            return True
        args = getattr(seen, "args", ())
        nxt = seen.__cause__ or seen.__context__
        if nxt is None and args and isinstance(args[0], BaseException):
            nxt = args[0]
        if nxt is None and args and hasattr(args[0], "reason"):
            nxt = getattr(args[0], "reason", None)
        seen = nxt if isinstance(nxt, BaseException) else None
    return False


class BaseURLHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's client with the base URL rewritten, a fixed timeout and no retries at all."""

    def __init__(self, api_base: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_sdk_log, max_retries=0)
        self.api_base = urlsplit(api_base) if api_base else None
        no_retry = HTTPAdapter(
            max_retries=Retry(
                total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False
            )
        )
        assert self.session is not None
        self.session.mount("https://", no_retry)
        self.session.mount("http://", no_retry)
        self.session.trust_env = False  # no proxy or .netrc credentials from the environment

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.api_base is not None:
            parts = urlsplit(url)
            base_path = self.api_base.path.rstrip("/")
            url = urlunsplit(
                (
                    self.api_base.scheme,
                    self.api_base.netloc,
                    base_path + parts.path,
                    parts.query,
                    "",
                )
            )
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            allow_redirects=allow_redirects,
        )


class TwilioGateway:
    """Sends with ``client.messages.create``; looks up with ``client.messages.list``; asks
    Lookup v2 for a number's line type (``line_type``)."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        username: str,
        password: str,
        sender: str | None = None,
        messaging_service: str | None = None,
        api_base: str | None = None,
        status_callback: str | None = None,
        validity: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if (sender is None) == (messaging_service is None):
            raise BadGatewayURL("give exactly one of from=+… or messaging_service=MG…")
        self.sender = sender
        self.messaging_service = messaging_service
        self.status_callback = status_callback
        self.validity = validity
        self._http = BaseURLHttpClient(api_base, timeout)
        self._client = Client(
            username=username,
            password=password,
            account_sid=account_sid,
            http_client=self._http,
            environment={},
        )

    def __repr__(self) -> str:
        return f"TwilioGateway(from={self.sender!r}, messaging_service={self.messaging_service!r})"

    def send(self, message: Message) -> SendResult:
        counted = validate(message)
        kwargs: dict[str, Any] = {"to": message.to.value, "body": message.body}
        if self.sender is not None:
            kwargs["from_"] = self.sender
        else:
            kwargs["messaging_service_sid"] = self.messaging_service
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        if self.validity:
            kwargs["validity_period"] = self.validity
        try:
            msg = self._client.messages.create(**kwargs)
        except Exception as exc:
            raise translate(exc) from None
        segments = int(msg.num_segments) if str(msg.num_segments or "").isdigit() else 0
        return SendResult(str(msg.sid), segments or counted.segments, str(msg.status or "sent"))

    def lookup(self, to: E164, since: datetime) -> list[SentRecord]:
        """Messages to ``to`` sent since ``since`` (``To`` and ``DateSent>`` filters)."""
        after = since.astimezone(UTC).replace(microsecond=0)
        try:
            found = self._client.messages.list(to=to.value, date_sent_after=after, limit=200)
        except Exception as exc:
            raise translate(exc) from None
        records = []
        for m in found:
            created = m.date_created or m.date_sent or since
            records.append(SentRecord(str(m.sid), created, str(m.status), m.body))
        return records

    def line_type(self, number: E164) -> str | None:
        """Twilio Lookup v2's ``line_type_intelligence.type`` of ``number`` (``mobile``,
        ``landline``, ``nonFixedVoip``, …), or None when Lookup has no answer."""
        try:
            found = self._client.lookups.v2.phone_numbers(number.value).fetch(
                fields="line_type_intelligence"
            )
        except Exception as exc:
            raise translate(exc) from None
        info = found.line_type_intelligence
        kind = info.get("type") if isinstance(info, dict) else None
        return str(kind) if kind else None

    def close(self) -> None:
        if self._http.session is not None:
            self._http.session.close()


def open_url(url: str, settings: Settings) -> TwilioGateway:
    """The gateway for a ``twilio://`` URL (registered in ``gateways/__init__``)."""
    parts = urlsplit(url)
    if parts.username or parts.password or "@" in parts.netloc:
        raise BadGatewayURL("credentials never go in the gateway URL; set TWILIO_* variables")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"from", "messaging_service", "api_base", "status_callback", "validity", "timeout"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise BadGatewayURL(f"unknown twilio:// option(s) {unknown}; known: {sorted(known)}")
    sid = os.environ.get("TWILIO_ACCOUNT_SID", "")
    token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    key, secret = os.environ.get("TWILIO_API_KEY", ""), os.environ.get("TWILIO_API_SECRET", "")
    if not sid or not ((key and secret) or token):
        raise BadGatewayURL(
            "Twilio credentials are missing: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET) in the environment"
        )
    service = query.get("messaging_service")
    if service is not None and not service.startswith("MG"):
        raise BadGatewayURL("messaging_service must be a Messaging Service SID (MG…)")
    try:
        validity = int(query["validity"]) if query.get("validity") else None
        timeout = float(query["timeout"]) if query.get("timeout") else DEFAULT_TIMEOUT
    except ValueError:
        raise BadGatewayURL("validity and timeout must be numbers of seconds") from None
    if validity is not None and not 1 <= validity <= 36_000:
        raise BadGatewayURL("validity must be between 1 and 36000 seconds")
    if timeout <= 0:
        raise BadGatewayURL("timeout must be positive")
    api_base = query.get("api_base")
    if api_base is not None and urlsplit(api_base).scheme not in ("http", "https"):
        raise BadGatewayURL("api_base must be an http(s) URL, e.g. http://127.0.0.1:8080")
    return TwilioGateway(
        account_sid=sid,
        username=key if key and secret else sid,
        password=secret if key and secret else token,
        sender=query.get("from"),
        messaging_service=service,
        api_base=api_base,
        status_callback=query.get("status_callback"),
        validity=validity,
        timeout=timeout,
    )
