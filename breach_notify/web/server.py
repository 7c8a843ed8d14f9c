"""Running the web app on uvicorn: one process, one asyncio loop, logging through the redacting
root handler, no access log (request lines carry query strings, which are not authenticated).

Exactly one process per data dir: rate limits, the self-check's limits and the sign-up SMS
budget's running count live in this process's memory (DESIGN §9), and the journal has one
writer. ``uvicorn.Server`` never forks workers (``WEB_CONCURRENCY`` is ignored: workers=1), and
:func:`serve` holds an exclusive lock on ``HOME/web.lock`` while it serves, so a second
``breach-notify web`` on the same data dir is refused before it serves."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from breach_notify.errors import BadInput
from breach_notify.settings import Settings
from breach_notify.web.app import create_app

LOCK_NAME = "web.lock"


def build(
    settings: Settings,
    *,
    host: str,
    port: int,
    public_url: str,
    auth_token: str,
    apply_events: bool = True,
) -> uvicorn.Server:
    """A configured server; ``.run()`` blocks, ``.should_exit = True`` stops it."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _DropAll) for f in access.filters):
        access.addFilter(_DropAll())  # whatever handlers someone attaches, no request lines
    app = create_app(
        settings, public_url=public_url, auth_token=auth_token, apply_events=apply_events
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,  # one process: the journal has one writer, the store one applier
        loop="asyncio",
        log_config=None,  # propagate to the root handler, which carries the redacting filter
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        limit_concurrency=settings.web_max_connections,
        backlog=2048,
    )
    return uvicorn.Server(config)


def serve(settings: Settings, *, host: str, port: int, public_url: str, auth_token: str) -> None:
    """Serve until interrupted (refused when another web process serves this data dir)."""
    with single_process(settings):
        build(settings, host=host, port=port, public_url=public_url, auth_token=auth_token).run()


@contextmanager
def single_process(settings: Settings) -> Iterator[None]:
    """Hold ``HOME/web.lock`` (an exclusive ``flock``, released when the process ends, even
    killed); ``BadInput`` when another process holds it."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(settings.home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(
                f"another web process already serves this data dir ({settings.home / LOCK_NAME}):"
                " run one web process per data dir (its rate limits and SMS budget count are per"
                " process; see docs/DESIGN.md §9 for several replicas)"
            ) from None
        yield
    finally:
        os.close(fd)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False
