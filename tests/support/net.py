"""Loopback networking for tests that start servers."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from breach_notify import redact


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any, log: io.StringIO | None = None, **config: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on loopback in a thread until the block ends; yields
    its base URL. Log lines (through the redacting filter, as in production, at INFO for
    breach_notify and uvicorn) go to ``log`` when given. ``config``: more ``uvicorn.Config``."""
    port = free_port()
    options: dict[str, Any] = {"log_config": None, "server_header": False, "lifespan": "off"}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options | config))
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
