"""Running the webhook app on uvicorn, logging through the redacting root handler."""

from __future__ import annotations

import uvicorn

from breach_notify.settings import Settings
from breach_notify.web.app import create_app


def build(
    settings: Settings, *, host: str, port: int, public_url: str, auth_token: str
) -> uvicorn.Server:
    """A configured server; ``.run()`` blocks, ``.should_exit = True`` stops it."""
    app = create_app(settings, public_url=public_url, auth_token=auth_token)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # propagate to the root handler, which carries the redacting filter
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        limit_concurrency=64,
    )
    return uvicorn.Server(config)


def serve(settings: Settings, *, host: str, port: int, public_url: str, auth_token: str) -> None:
    """Serve until interrupted."""
    build(settings, host=host, port=port, public_url=public_url, auth_token=auth_token).run()
