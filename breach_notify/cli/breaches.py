"""``ingest``, ``breaches list`` and ``breaches show``: counts only, small cells suppressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from breach_notify.cli.common import JsonOption, cells, emit, keyring, out, settings
from breach_notify.cli.progress import byte_bar
from breach_notify.store.db import session

breaches_app = typer.Typer(
    help="What is known about ingested breaches (counts only).", no_args_is_help=True
)


def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Dump files or directories of dump files."),
    breach: str = typer.Option(..., "--breach", help="Breach id, e.g. fb-2021-fr."),
    title: str = typer.Option(None, "--title", help="Human title [default: the id]."),
    fmt: str = typer.Option("facebook-2021", "--format", help="facebook-2021 | csv."),
    phone_column: str = typer.Option(None, "--phone-column", help="CSV column with the number."),
    default_region: str = typer.Option(
        None, "--default-region", help="Region for national numbers (CSV), e.g. GB."
    ),
    k: int = typer.Option(None, "--k", help="k-anonymity: minimum bucket size [default: 50]."),
    self_check: bool = typer.Option(
        False,
        "--self-check",
        help="Also store the OPRF tags of the private self-check; files already ingested are "
        "read again for their tags (needs the raw files: numbers are not stored).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Normalise, pseudonymise, deduplicate and bucket dump files (all-or-nothing)."""
    from breach_notify.ingest import IngestOptions
    from breach_notify.ingest import ingest as run

    options = IngestOptions(
        breach_id=breach,
        fmt=fmt,
        title=title,
        phone_column=phone_column,
        default_region=default_region,
        k=k,
        self_check=self_check,
    )
    report = run(settings(ctx), keyring(ctx), list(paths), options, progress=byte_bar)
    d = report.as_dict()
    human = (
        f"{d['breach']}: {d['rows_read']} rows read, {d['rows_invalid']} invalid, "
        f"{d['rows_duplicate']} duplicate; {d['new_numbers']} new numbers, "
        f"{d['distinct_numbers']} distinct in the breach; buckets of {d['prefix_bits']} bits "
        f"(k={d['k']}, smallest {d['min_bucket']}); {d['files_skipped']} file(s) already known; "
        f"{d['seconds']} s"
    )
    if d.get("self_check"):
        human += "; " + _self_check_line(d["self_check"])
    emit(as_json, d, human)


def _self_check_line(sc: dict[str, Any]) -> str:
    """The self-check's part of the ingest summary: what is served, what a re-tag still needs."""
    parts = []
    if sc.get("retagged_files"):
        parts.append(f"{sc['retagged_files']} known file(s) read again for their tags")
    if sc.get("serving", True):
        parts.append(
            f"{sc['tags']} tags served under OPRF key {sc['key_id']}, buckets of "
            f"{sc['bucket_bits']} bits (largest {sc['max_bucket']})"
        )
    else:
        parts.append("not checkable yet")
    pending = sc.get("pending")
    if pending:
        kept = f"{sc['key_id']} keeps serving" if sc.get("serving", True) else "nothing served"
        parts.append(
            f"tagged {pending['files_tagged']} of {pending['files']} files of this breach under "
            f"{pending['key_id']}; give the others to finish ({kept} until then; re-tagging "
            "needs the raw files: numbers are not stored)"
        )
    if sc.get("tags_outside_breach"):
        parts.append(
            f"{sc['tags_outside_breach']} number(s) read again were not in the breach and were "
            "left out (was a file changed?)"
        )
    return "self-check: " + "; ".join(parts)


@breaches_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every breach with its counts."""
    from breach_notify.ingest import list_breaches

    with session(settings(ctx)) as conn:
        rows = list_breaches(conn)
    if as_json:
        emit(True, {"breaches": rows})
        return
    table = Table(title="Breaches")
    for col in ("breach", "title", "rows", "invalid", "distinct", "k", "prefix bits", "files"):
        table.add_column(col)
    for b in rows:
        table.add_row(
            *cells(
                b["breach"],
                b["title"],
                b["rows_read"],
                b["rows_invalid"],
                b["distinct_numbers"],
                b["k"],
                b["prefix_bits"],
                b["files"],
            )
        )
    out.print(table)


@breaches_app.command("show")
def show(
    ctx: typer.Context,
    breach: str = typer.Argument(..., help="Breach id."),
    as_json: bool = JsonOption,
) -> None:
    """One breach: counts, buckets and the kinds of field exposed (cells below k suppressed)."""
    from breach_notify.ingest import breach_summary

    with session(settings(ctx)) as conn:
        summary = breach_summary(conn, breach)
    if as_json:
        emit(True, summary)
        return
    _print(summary)


def _print(s: dict[str, Any]) -> None:
    out.print(
        Text.assemble(
            (str(s["breach"]), "bold"), f" {s['title']} ({s['format']}, key {s['key_id']})"
        )
    )
    out.print(
        f"rows read {s['rows_read']}, invalid {s['rows_invalid']}, duplicate "
        f"{s['rows_duplicate']}, distinct numbers {s['distinct_numbers']}"
    )
    out.print(f"buckets: {s['prefix_bits']} prefix bits, k={s['k']}, smallest {s['min_bucket']}")
    if s["invalid_by_reason"]:
        out.print("invalid: " + ", ".join(f"{r} {n}" for r, n in s["invalid_by_reason"].items()))
    exposed = ", ".join(f"{kind} {n}" for kind, n in s["exposed"].items()) or "none"
    out.print(f"exposed: {exposed}")
    if s["exposed_suppressed"]:
        out.print(f"fewer than k={s['k']}: " + ", ".join(s["exposed_suppressed"]))


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and the ``breaches`` group to the app."""
    app.command("ingest")(ingest)
    app.add_typer(breaches_app, name="breaches")
