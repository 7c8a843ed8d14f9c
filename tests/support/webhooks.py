"""The Twilio webhooks served by a real uvicorn on loopback, and a client that signs its
requests with ``twilio.request_validator.RequestValidator`` (no tests here; the ``start`` and
``hooks`` fixtures in conftest use it)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from breach_notify.crypto import Keyring
from breach_notify.events import journal
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.subscribers import registry
from breach_notify.web.server import build
from support import privacy
from support.events import wait_applied
from support.net import free_port
from support.subscribers import ALL_NUMBERS, snapshot

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://hooks.example.org/bn"
LIMIT = 4096
_sids = itertools.count(1)


def message_sid() -> str:
    """A fresh Twilio-shaped message id (each inbound message has its own)."""
    return f"SM{next(_sids):032x}"


@dataclass
class Hooks:
    base: str
    settings: Settings
    ring: Keyring
    texts: list[str] = field(default_factory=list)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=20), repr=False)

    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        token: str = TOKEN,
        signed_url: str | None = None,
        signed_params: dict[str, str] | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        sig = signature
        if sig is None:
            sig = RequestValidator(token).compute_signature(
                signed_url or PUBLIC + path, signed_params if signed_params is not None else params
            )
        headers = {"X-Twilio-Signature": sig} if sig else {}
        r = self.client.post(self.base + path, data=params, headers=headers)
        self.texts.append(r.text)
        return r

    def sms(self, sender: str, body: str, sid: str | None = None) -> httpx.Response:
        return self.post(
            "/twilio/inbound",
            {
                "From": sender,
                "To": "+15005550006",
                "Body": body,
                "MessageSid": sid or message_sid(),
                "AccountSid": "AC1",
            },
        )

    def captured_sms(self, sender: str, body: str) -> Callable[[], httpx.Response]:
        """A signed inbound message as an attacker would capture it: each call posts the very
        same bytes (same MessageSid, same signature) again."""
        params = {"From": sender, "Body": body, "MessageSid": message_sid(), "AccountSid": "AC1"}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/inbound", params)
        raw = str(httpx.QueryParams(params)).encode()
        headers = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }

        def post() -> httpx.Response:
            r = self.client.post(self.base + "/twilio/inbound", content=raw, headers=headers)
            self.texts.append(r.text)
            return r

        return post

    def status(self, sid: str, status: str, error: str = "") -> httpx.Response:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1"}
        if error:
            params["ErrorCode"] = error
        return self.post("/twilio/status", params)

    def state(self, number: str) -> str | None:
        wait_applied(self.settings)
        with session(self.settings) as conn:
            sub = registry.find(conn, self.ring, parse_number(number))
        return None if sub is None else sub.status

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        wait_applied(self.settings)
        with session(self.settings) as conn:
            return snapshot(conn)

    def pending(self) -> int:
        return journal.backlog(self.settings.journal_path).pending


Start = Callable[..., Hooks]


@contextmanager
def serving(home: Path, keyring: Keyring, log_text: Callable[[], str]) -> Iterator[Start]:
    """``start(apply_events=True, **settings)`` runs a server; all stop and are scanned after."""
    running: list[tuple[object, threading.Thread, Hooks]] = []

    def run(apply_events: bool = True, **overrides: object) -> Hooks:
        settings = Settings(home=home, max_body_bytes=LIMIT, **overrides)  # type: ignore[arg-type]
        with session(settings):
            pass  # create and migrate the store before the server starts
        port = free_port()
        server = build(
            settings,
            host="127.0.0.1",
            port=port,
            public_url=PUBLIC,
            auth_token=TOKEN,
            apply_events=apply_events,
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        h = Hooks(f"http://127.0.0.1:{port}", settings, keyring)
        running.append((server, thread, h))
        return h

    yield run
    texts = [log_text()]
    for server, thread, h in running:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(15)
        h.client.close()
        texts += h.texts
    hits = privacy.scan([home], ALL_NUMBERS, texts=texts)
    assert hits == [], hits
