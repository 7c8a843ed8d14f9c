"""A fake Twilio Messages API on 127.0.0.1, served from a thread, for the real ``twilio`` SDK.

Create (``POST …/Messages.json``), fetch (``GET …/Messages/SM….json``) and list (``GET
…/Messages.json`` with ``To``, ``From``, ``DateSent``, ``DateSent>``, ``DateSent<``, paging) of
``/2010-04-01/Accounts/{AccountSid}``, HTTP Basic auth (account SID + auth token, or API key +
secret), JSON bodies and error bodies shaped like Twilio's (``code``, ``message``, ``more_info``,
``status``), and Lookup v2's ``GET /v2/PhoneNumbers/{number}?Fields=line_type_intelligence``
(``line_types`` names a number's type; ``mobile`` otherwise; ``lookup_fails`` answers 503).
Faults are injected with :meth:`FakeTwilio.script` (429 / 5xx / slow responses, in
order) and per recipient (``fail_for``); ``list_lag`` hides new messages from the list for a
while, as Twilio's list lags behind its creates; ``ledger`` holds every message created.

Plaintext numbers live in this process's memory only: nothing is logged or written.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"
API_KEY = "SK" + "e" * 32
API_SECRET = "fake-api-secret-0123456789abcdef"

_ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def env(api_key: bool = False) -> dict[str, str]:
    """The environment a sender needs to talk to this fake."""
    if api_key:
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_API_KEY": API_KEY,
            "TWILIO_API_SECRET": API_SECRET,
        }
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def _segments(body: str) -> int:
    # Independent of breach_notify.sms.segments on purpose (a cross-check, roughly Twilio's).
    if all(c in _GSM for c in body):
        units = len(body) + sum(c in "^{}\\[~]|€" for c in body)
        return 1 if units <= 160 else -(-units // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _rfc2822(dt: datetime | None) -> str | None:
    return format_datetime(dt) if dt is not None else None


def _parse_when(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Fault:
    """One scripted response for the next create: an error ``code`` and/or a ``delay``.

    With ``after_create`` the message is created first and the response is delayed (or the
    connection dropped with ``drop``): the client cannot know it was accepted.
    """

    code: int | None = None
    delay: float = 0.0
    after_create: bool = False
    drop: bool = False


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    ledger: list[dict[str, Any]] = field(default_factory=list)
    fail_for: dict[str, int] = field(default_factory=dict)  # E.164 → Twilio error code
    delay: float = 0.0  # every create takes this long
    on_create: Callable[[dict[str, Any]], None] | None = None
    requests: Counter[str] = field(default_factory=Counter)
    list_lag: float = 0.0  # seconds before a new message shows in the list (Twilio's lags)
    line_types: dict[str, str] = field(default_factory=dict)  # E.164 → Lookup line type
    lookup_fails: bool = False
    looked_up: Counter[str] = field(default_factory=Counter)  # E.164 → Lookup queries

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ------------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def gateway_url(self, **options: str) -> str:
        """A ``twilio://`` URL pointing the SDK at this fake."""
        query = {"from": "+15005550006", "api_base": self.url, "timeout": "5", **options}
        return "twilio://?" + urlencode(query)

    def script(self, *faults: Fault) -> None:
        """Responses for the next creates, in order (then normal service resumes)."""
        with self._lock:
            self._faults.extend(faults)

    def recipients(self) -> Counter[str]:
        with self._lock:
            return Counter(m["to"] for m in self.ledger)

    # -- behaviour ----------------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
            return _error(21211, to=to)
        if not sender and not service:
            return _error(21603)
        if not body:
            return _error(21602)
        if len(body) > 1600:
            return _error(21617)
        code = self.fail_for.get(to)
        if code is not None:
            return _error(code, to=to)
        now = datetime.now(UTC)
        sid = "SM" + uuid.uuid4().hex
        msg = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": now,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "sent",
            "to": to,
            "status_callback": form.get("StatusCallback"),
            "validity_period": form.get("ValidityPeriod"),
        }
        with self._lock:
            self.ledger.append(msg)
        if self.on_create is not None:
            self.on_create(msg)
        out = self._resource(msg)
        out["status"] = "accepted" if service else "queued"
        return 201, out

    def _resource(self, msg: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in msg.items() if k not in ("status_callback", "validity_period")}
        for key in ("date_created", "date_sent", "date_updated"):
            out[key] = _rfc2822(msg[key])
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{msg['sid']}"
        out["uri"] = base + ".json"
        out["subresource_uris"] = {
            "media": base + "/Media.json",
            "feedback": base + "/Feedback.json",
        }
        return out

    def _list(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            found = list(self.ledger)
        if self.list_lag:
            visible = datetime.now(UTC).timestamp() - self.list_lag
            found = [m for m in found if m["date_created"].timestamp() <= visible]
        if "To" in query:
            found = [m for m in found if m["to"] == query["To"]]
        if "From" in query:
            found = [m for m in found if m["from"] == query["From"]]
        try:
            if "DateSent>" in query:
                after = _parse_when(query["DateSent>"])
                found = [m for m in found if m["date_sent"] and m["date_sent"] >= after]
            if "DateSent<" in query:
                before = _parse_when(query["DateSent<"])
                found = [m for m in found if m["date_sent"] and m["date_sent"] <= before]
            if "DateSent" in query:
                day = _parse_when(query["DateSent"]).date()
                found = [m for m in found if m["date_sent"] and m["date_sent"].date() == day]
            size = max(1, min(1000, int(query.get("PageSize", "50"))))
            page = max(0, int(query.get("Page", "0")))
        except ValueError:
            return 400, {"code": 20001, "message": "Invalid filter", "more_info": "", "status": 400}
        found.sort(key=lambda m: m["date_created"], reverse=True)
        chunk = found[page * size : (page + 1) * size]

        def uri(p: int) -> str:
            q = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}
            q.update({"PageSize": str(size), "Page": str(p)})
            return f"{path}?{urlencode(q)}"

        more = (page + 1) * size < len(found)
        return 200, {
            "messages": [self._resource(m) for m in chunk],
            "end": page * size + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) + f"&PageToken=PA{page + 1}" if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1) if page else None,
            "start": page * size,
            "uri": uri(page),
        }

    def _lookup(self, number: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.lookup_fails:
            return _error(20503)
        with self._lock:
            self.looked_up[number] += 1
        fields = {f.strip() for f in query.get("Fields", "").split(",")}
        line = None
        if "line_type_intelligence" in fields:
            line = {
                "carrier_name": "Fake Carrier",
                "error_code": None,
                "mobile_country_code": None,
                "mobile_network_code": None,
                "type": self.line_types.get(number, "mobile"),
            }
        return 200, {
            "calling_country_code": None,
            "country_code": None,
            "phone_number": number,
            "national_format": None,
            "valid": True,
            "validation_errors": [],
            "caller_name": None,
            "sim_swap": None,
            "call_forwarding": None,
            "line_status": None,
            "line_type_intelligence": line,
            "identity_match": None,
            "reassigned_number": None,
            "sms_pumping_risk": None,
            "phone_number_quality_score": None,
            "pre_fill": None,
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
        }

    def _fetch(self, sid: str, path: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            for m in self.ledger:
                if m["sid"] == sid:
                    return 200, self._resource(m)
        return _error(20404, path=path)

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) in {
            (self.account_sid, self.auth_token),
            (self.api_key, self.api_secret),
        }


def _error(code: int, **fmt: str) -> tuple[int, dict[str, Any]]:
    status, message = _ERRORS[code]
    return status, {
        "code": code,
        "message": message.format(**{"to": "", "path": "", **fmt}),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-request (the point of some tests); tracebacks could quote data


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle + delayed ACK cost 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines carry To= in the query string: never print them

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client has gone (killed, timed out)

    def _route(self) -> tuple[str, str | None] | None:
        path = urlsplit(self.path).path
        prefix = f"/2010-04-01/Accounts/{self.server_fake.account_sid}/Messages"
        if path == prefix + ".json":
            return path, None
        if path.startswith(prefix + "/") and path.endswith(".json"):
            return path, path[len(prefix) + 1 : -5]
        return None

    def _check(self) -> tuple[str, str | None] | None:
        fake = self.server_fake
        if not fake._authorised(self.headers.get("Authorization")):
            self._reply(*_error(20003))
            return None
        route = self._route()
        if route is None:
            self._reply(*_error(20404, path=urlsplit(self.path).path))
            return None
        return route

    def do_GET(self) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        if parts.path.startswith("/v2/PhoneNumbers/"):
            if not fake._authorised(self.headers.get("Authorization")):
                self._reply(*_error(20003))
                return
            number = unquote(parts.path[len("/v2/PhoneNumbers/") :])
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            fake.requests["lookup"] += 1
            self._reply(*fake._lookup(number, query))
            return
        route = self._check()
        if route is None:
            return
        path, sid = route
        if sid is None:
            fake.requests["list"] += 1
            query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
            self._reply(*fake._list(path, query))
        else:
            fake.requests["fetch"] += 1
            self._reply(*fake._fetch(sid, path))

    def do_POST(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        route = self._check()
        if route is None:
            return
        if route[1] is not None:
            self._reply(*_error(20404, path=route[0]))
            return
        fake.requests["create"] += 1
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        fault = fake._next_fault()
        if fault is not None and not fault.after_create:
            time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                return
            if fault.code is not None:
                self._reply(*_error(fault.code))
                return
        if fake.delay:
            time.sleep(fake.delay)
        status, payload = fake._create(form)
        if fault is not None and fault.after_create:
            time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                return
        self._reply(status, payload)
