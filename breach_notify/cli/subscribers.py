"""``subscribers add | confirm | import | remove | list``: opt-in, erasure, masked listing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import typer

from breach_notify.cli.common import JsonOption, emit, keyring, settings
from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.notify import outbox
from breach_notify.numbers import E164, mask, parse_number
from breach_notify.settings import Settings
from breach_notify.sms.gateway import Gateway, open_gateway
from breach_notify.store.db import session, transaction
from breach_notify.subscribers import events, importer, optin, registry

subscribers_app = typer.Typer(help="Subscribers and their consent.", no_args_is_help=True)

RegionOption = typer.Option(
    None, "--region", help="Region for numbers given in national form (e.g. GB)."
)
GatewayOption = typer.Option(
    None, "--gateway", help="Gateway URL for the code SMS [default: settings 'gateway']."
)


def _gateway(s: Settings, url: str | None) -> Gateway:
    return open_gateway(url or s.gateway, s)


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    number: str = typer.Argument(..., help="The number, ideally in international form."),
    region: str = RegionOption,
    language: str = typer.Option(None, "--language", help="Language tag, e.g. en."),
    gateway: str = GatewayOption,
    as_json: bool = JsonOption,
) -> None:
    """Add a pending subscriber and text a 6-digit confirmation code."""
    s, ring = settings(ctx), keyring(ctx)
    e164 = parse_number(number, registry.check_region(region))
    registry.require_sms_capable(e164)
    gw = _gateway(s, gateway)
    try:
        with session(s) as conn:
            answer = optin.add(conn, ring, s, gw, e164, language=language)
    finally:
        gw.close()
    emit(as_json, answer.as_dict(), f"{answer.subscriber}: {answer.message}")


@subscribers_app.command("confirm")
def confirm(
    ctx: typer.Context,
    number: str = typer.Argument(...),
    code: str = typer.Argument(..., help="The 6-digit code from the SMS."),
    region: str = RegionOption,
    as_json: bool = JsonOption,
) -> None:
    """Confirm a subscription with the code it was sent (double opt-in)."""
    s, ring = settings(ctx), keyring(ctx)
    e164 = parse_number(number, registry.check_region(region))
    with session(s) as conn:
        status = optin.confirm(conn, ring, e164, code)
    emit(as_json, {"subscriber": str(e164), "status": status}, f"{e164}: confirmed, {status}")


@subscribers_app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV with a 'phone' column, optional 'language'."),
    default_region: str = typer.Option(
        None, "--default-region", help="Region for numbers in national form (e.g. GB)."
    ),
    consent_source: str = typer.Option(
        ..., "--consent-source", help="Where consent was given (kept as evidence)."
    ),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent already confirmed: import as active, send no code."
    ),
    gateway: str = GatewayOption,
    as_json: bool = JsonOption,
) -> None:
    """Import an existing opted-in list; invalid and duplicate rows are counted, not fatal."""
    s, ring = settings(ctx), keyring(ctx)
    registry.check_region(default_region)
    importer.read(file)  # refuse a bad file before opening anything
    gw = None if confirmed else _gateway(s, gateway)
    try:
        with session(s) as conn:
            report = importer.import_file(
                conn,
                ring,
                s,
                file,
                consent_source=consent_source,
                confirmed=confirmed,
                gateway=gw,
                default_region=default_region,
            )
    finally:
        if gw is not None:
            gw.close()
    emit(
        as_json,
        report.as_dict(),
        f"imported {report.imported} as {report.status}, {report.invalid} invalid,"
        f" {report.duplicate} duplicate, {report.suppressed} suppressed (opted out or erased)",
    )


@subscribers_app.command("remove")
def remove(
    ctx: typer.Context,
    number: str = typer.Argument(...),
    region: str = RegionOption,
    as_json: bool = JsonOption,
) -> None:
    """Erase a subscriber: number and pseudonym deleted, unsent notices cancelled."""
    s, ring = settings(ctx), keyring(ctx)
    e164 = parse_number(number, registry.check_region(region))
    with session(s) as conn:
        _erase(conn, ring, e164)
    emit(
        as_json,
        {"subscriber": str(e164), "status": "erased"},
        f"{e164}: erased (if it was subscribed); only a tombstone without the number remains",
    )


def _erase(conn: duckdb.DuckDBPyConnection, ring: Keyring, e164: E164) -> None:
    with transaction(conn):
        sub = registry.find(conn, ring, e164)
        if sub is not None:
            outbox.erase(conn, sub.id, "cli", events.utcnow())


@subscribers_app.command("list")
def list_(
    ctx: typer.Context,
    status: str = typer.Option(
        None, "--status", help="Only this status (erased tombstones only when asked for)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Subscribers with masked numbers only."""
    if status is not None and status not in registry.STATUSES:
        raise BadInput(f"--status must be one of {', '.join(registry.STATUSES)}")
    s, ring = settings(ctx), keyring(ctx)
    with session(s) as conn:
        rows = conn.execute(
            "SELECT id, status, language FROM subscribers"
            " WHERE (? IS NULL AND status <> 'erased') OR status = ? ORDER BY created_at, id",
            [status, status],
        ).fetchall()
        listed = []
        for sid, st, lang in rows:
            number = registry.open_number(conn, ring, str(sid))
            masked = mask(number.value) if number is not None else "***"
            listed.append({"id": sid, "masked": masked, "status": st, "language": lang})
    if as_json:
        emit(True, {"subscribers": listed})
        return
    for item in listed:
        emit(
            False, {}, f"{item['id']}  {item['masked']:<18} {item['status']:<10} {item['language']}"
        )
    if not listed:
        emit(False, {}, "no subscribers")


def register(app: typer.Typer) -> None:
    app.add_typer(subscribers_app, name="subscribers")
