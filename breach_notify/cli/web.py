"""``web`` (alias ``webhooks``): serve the Twilio inbound and status webhooks (signatures
checked), accepting events into the journal and applying them to the store in the background."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

import typer

from breach_notify.cli.common import err, keyring, settings
from breach_notify.errors import BadInput


def web(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    public_url: str = typer.Option(
        None,
        "--public-url",
        help="The base URL Twilio calls (as configured in Twilio), used to check signatures.",
    ),
) -> None:
    """Serve POST /twilio/inbound, /twilio/status and GET /healthz until interrupted."""
    s = settings(ctx)
    url = public_url or s.public_url
    if not url:
        raise BadInput("give --public-url (the URL Twilio calls) so signatures can be checked")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput("--public-url must be an http(s) URL such as https://hooks.example.org")
    token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    if not token:
        raise BadInput("set TWILIO_AUTH_TOKEN in the environment; webhooks are checked with it")
    keyring(ctx)  # fail now, not on the first request, when the keyring is missing
    from breach_notify.events.journal import Writer

    s.ensure_home()
    Writer(s.journal_path).check()  # an unwritable journal is reported before serving
    for name in ("breach_notify", "uvicorn"):
        logging.getLogger(name).setLevel(logging.INFO)
    from breach_notify.web import server

    err.print(f"web on http://{host}:{port} (public URL {parts.scheme}://{parts.netloc})")
    server.serve(s, host=host, port=port, public_url=url, auth_token=token)


def register(app: typer.Typer) -> None:
    app.command("web")(web)
    app.command("webhooks", help="Alias of 'web'.")(web)
