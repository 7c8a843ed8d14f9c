"""Serve the sign-up pages alone in their own process (``python front_server.py PORT``), with
settings from ``BREACH_NOTIFY_*``: for measurements that must not share the test's interpreter
(timing). Logs go to stderr through the redacting filter. ``GET /_test/busy`` (this test server
only) says how many background tasks are still running, so a measurement can wait for quiet."""

from __future__ import annotations

import logging
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from breach_notify import redact
from breach_notify.settings import Settings
from breach_notify.web import pages


def main(port: int) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    redact.install()
    settings = Settings()
    front = pages.Front(settings)

    async def busy(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(front.busy))

    app = Starlette(routes=[Route("/_test/busy", busy), *pages.routes(settings, front=front)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
