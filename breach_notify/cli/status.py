"""``status``: one screen of counts — breaches, subscribers by status, notices by state."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from breach_notify.cli.common import JsonOption, cells, emit, out, settings
from breach_notify.store.db import session
from breach_notify.store.status import snapshot


def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """What the store holds, as counts only."""
    from breach_notify.web.abuse import budget_status

    s = settings(ctx)
    with session(s) as conn:
        snap = snapshot(conn)
        snap["signup_sms"] = budget_status(conn, s)
    if as_json:
        emit(True, snap)
        return
    _print(snap)


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


def register(app: typer.Typer) -> None:
    app.command("status")(status)
