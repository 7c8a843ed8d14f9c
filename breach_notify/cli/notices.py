"""``match`` and ``send``: from breach pseudonyms to pending notices, and the outbox to SMS."""

from __future__ import annotations

import typer

from breach_notify.cli.common import JsonOption, emit, keyring, settings
from breach_notify.errors import BadInput
from breach_notify.store.db import session


def match_cmd(
    ctx: typer.Context,
    breach: str = typer.Option(None, "--breach", help="Only this breach (default: all)."),
    as_json: bool = JsonOption,
) -> None:
    """Create pending notices for active subscribers found in breaches."""
    from breach_notify.notify.match import match

    cfg = settings(ctx)
    ring = keyring(ctx)
    with session(cfg) as conn:
        report = match(conn, breach, keyring=ring)
    data = report.as_dict()
    emit(as_json, data, f"{data['matched']} matched, {data['new_notices']} new notices")


def send_cmd(
    ctx: typer.Context,
    gateway: str = typer.Option(..., "--gateway", help="dryrun://, memory:// or twilio://?from=…"),
    rate: float = typer.Option(None, "--rate", help="Segments per second (default: unlimited)."),
    max_messages: int = typer.Option(None, "--max", help="Send at most N notices in this run."),
    ignore_quiet_hours: bool = typer.Option(
        False, "--ignore-quiet-hours", help="Send even outside the recipients' local window."
    ),
    resend_in_doubt: bool = typer.Option(
        False, "--resend-in-doubt", help="Resend notices a crash left in doubt (may duplicate)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Work the outbox: reconcile interrupted sends, then send pending notices."""
    from breach_notify.notify.sender import send
    from breach_notify.sms.gateway import open_gateway

    if rate is not None and rate <= 0:
        raise BadInput("--rate must be a positive number of segments per second")
    if max_messages is not None and max_messages < 0:
        raise BadInput("--max must be zero or more")
    cfg = settings(ctx)
    ring = keyring(ctx)
    gw = open_gateway(gateway, cfg)
    try:
        report = send(
            cfg,
            ring,
            gw,
            rate=rate,
            max_messages=max_messages,
            ignore_quiet_hours=ignore_quiet_hours,
            resend_in_doubt=resend_in_doubt,
        )
    finally:
        gw.close()
    data = report.as_dict()
    human = ", ".join(f"{k} {data[k]}" for k in _FIELDS)
    if report.undecryptable:  # the sender has logged the error, naming the key ids
        human += f", undecryptable {report.undecryptable}"
    doubt = report.left.get("in_doubt", 0)
    if doubt:
        human += (
            f"\n{doubt} notice(s) in doubt (a crash between request and record, and the gateway "
            "cannot tell): check the gateway's logs, then rerun with --resend-in-doubt to resend"
        )
    emit(as_json, data, human)
    if report.undecryptable:
        raise typer.Exit(1)


_FIELDS = ("sent", "failed", "deferred", "suppressed", "in_doubt")


def register(app: typer.Typer) -> None:
    """Add ``match`` and ``send``."""
    app.command("match")(match_cmd)
    app.command("send")(send_cmd)
