"""``status``: one screen of counts — breaches, subscribers by status, notices by state, and the
web's event backlog (entries accepted but not yet applied), with an alarm when it is stuck."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from breach_notify.cli.common import JsonOption, cells, emit, err, out, settings
from breach_notify.errors import OperationalError
from breach_notify.events import journal
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.store.status import snapshot


def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """What the store holds, as counts only, and how far behind the web's events are."""
    from breach_notify.web.abuse import budget_status

    cfg = settings(ctx)
    with session(cfg) as conn:
        snap = snapshot(conn)
        snap["signup_sms"] = budget_status(conn, cfg)
    snap["events"], snap["alarms"] = events(cfg)
    if as_json:
        emit(True, snap)
        return
    _print(snap)


def events(cfg: Settings) -> tuple[dict[str, Any] | None, list[str]]:
    """The journal's backlog (no PII: a count and an age) and the alarms it raises."""
    try:
        backlog = journal.backlog(cfg.journal_path)
    except OperationalError as exc:
        return None, [str(exc)]
    alarms = []
    if backlog.pending and backlog.oldest_seconds > cfg.events_alarm_seconds:
        alarms.append(
            f"{backlog.pending} web event(s) accepted but not applied, the oldest for "
            f"{backlog.oldest_seconds:.0f} s (alarm at {cfg.events_alarm_seconds:.0f} s): is "
            "'breach-notify web' running, and is the store held by a long job?"
        )
    return backlog.as_dict(), alarms


def _print(snap: dict[str, Any]) -> None:
    table = Table(title="Breaches")
    for col in ("breach", "title", "distinct", "k", "prefix bits"):
        table.add_column(col)
    for b in snap["breaches"]:
        table.add_row(
            *cells(b["breach"], b["title"], b["distinct_numbers"], b["k"], b["prefix_bits"])
        )
    out.print(table)
    out.print(
        "Subscribers: " + (", ".join(f"{k} {v}" for k, v in snap["subscribers"].items()) or "none")
    )
    out.print("Notices: " + (", ".join(f"{k} {v}" for k, v in snap["notices"].items()) or "none"))
    budget = snap.get("signup_sms")
    if budget:
        out.print(
            f"Sign-up SMS today: {budget['spent']} of {budget['budget']}"
            f" ({budget['remaining']} left, UTC day)"
        )
    ev = snap["events"]
    if ev is not None:
        out.print(f"Web events: {ev['pending']} pending, oldest {ev['oldest_seconds']:.0f} s")
    for alarm in snap["alarms"]:
        err.print(f"[bold red]alarm:[/] {escape(alarm)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
