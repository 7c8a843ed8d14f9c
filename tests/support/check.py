"""The whole web app (pages, /check, the self-check API) on a real uvicorn server on loopback,
with every request body it received and every log line it wrote kept for the tests' checks."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from breach_notify import redact

from .net import free_port


class Recorder:
    """ASGI wrapper keeping every request as the app received it: ``bodies`` (path, body) and
    ``requests`` (method, path with its query string, body)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[tuple[str, bytes]] = []
        self.requests: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        kept = False

        def keep() -> None:
            nonlocal kept
            if not kept:
                kept = True
                body = b"".join(chunks)
                query = scope.get("query_string", b"").decode("latin-1")
                target = scope["path"] + (f"?{query}" if query else "")
                self.bodies.append((scope["path"], body))
                self.requests.append((scope["method"], target, body))

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    keep()
            return message

        try:
            await self.app(scope, recording, send)
        finally:
            keep()  # a request whose body the app never read (a GET) is kept too

    def posted(self, path: str) -> list[bytes]:
        return [b for method, p, b in self.requests if method == "POST" and p.split("?")[0] == path]


@contextmanager
def serve(app: Any, log: io.StringIO | None = None) -> Iterator[str]:
    """Serve ``app`` on loopback until the block ends; its log lines (through the redacting
    filter, as in production) go to ``log`` when given."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, server_header=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    handler: logging.Handler | None = None
    levels: dict[str, int] = {}
    if log is not None:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        handler.addFilter(redact.RedactingFilter())
        logging.getLogger().addHandler(handler)
        for name in ("breach_notify", "uvicorn"):
            levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.INFO)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
