"""Running the web app on uvicorn: one process, one asyncio loop, logging through the redacting
root handler, no access log (request lines carry query strings, which are not authenticated)."""

from __future__ import annotations

import logging

import uvicorn

from breach_notify.settings import Settings
from breach_notify.web.app import create_app


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
    """Serve until interrupted."""
    build(settings, host=host, port=port, public_url=public_url, auth_token=auth_token).run()


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False
