"""The sign-up pages on a real uvicorn server on loopback, in a thread of the test process (so the
``memory://`` gateway's outbox is the test's), with every log line captured for the scan."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette

from breach_notify import redact
from breach_notify.notify.gateways.memory import MemoryGateway
from breach_notify.settings import Settings
from breach_notify.web import pages

from .net import free_port


@dataclass
class Front:
    base: str
    settings: Settings
    gateway: MemoryGateway
    front: pages.Front
    log: io.StringIO

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=20, headers=headers)

    def logs(self) -> str:
        return self.log.getvalue()


@contextmanager
def serve(settings: Settings, gateway: MemoryGateway) -> Iterator[Front]:
    """Serve the pages of ``settings`` (only them) until the block ends."""
    front = pages.Front(settings, gateway=gateway)
    app = Starlette(routes=pages.routes(settings, front=front))
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(redact.RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {}
    for name in ("breach_notify", "uvicorn"):
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.INFO)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the pages server did not start")
        time.sleep(0.02)
    try:
        yield Front(f"http://127.0.0.1:{port}", settings, gateway, front, captured)
    finally:
        server.should_exit = True
        thread.join(10)
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true (background tasks finish after the response)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
