"""The run report: counts only, breakdown cells below k suppressed.

One summary dict feeds the Markdown artifact, the terminal table and ``--json``. Totals are shown
as they are; a breakdown cell (kinds of field exposed, notices by state) smaller than k is shown
as ``<k`` (``None`` in JSON).
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
from rich.console import Group
from rich.table import Table
from rich.text import Text

from breach_notify.store.status import snapshot


def suppress(cells: dict[str, int], k: int) -> dict[str, int | None]:
    """``cells`` with every count below ``k`` (and above zero) replaced by None."""
    return {key: (n if n == 0 or n >= k else None) for key, n in cells.items()}


def summarize(
    conn: duckdb.DuckDBPyConnection, stages: dict[str, Any], notice_k: int
) -> dict[str, Any]:
    """The report of one run: per breach, what this run ingested and what the store holds."""
    snap = snapshot(conn)
    ingested = {r["breach"]: r for r in stages.get("ingest", {}).get("breaches", [])}
    breaches = []
    for b in snap["breaches"]:
        row = conn.execute(
            "SELECT rows_read, rows_invalid, rows_duplicate, k FROM breaches WHERE id = ?",
            [b["breach"]],
        ).fetchone()
        rows_read, rows_invalid, rows_duplicate, k = row if row else (0, 0, 0, b["k"])
        run = ingested.get(b["breach"], {})
        breaches.append(
            {
                "breach": b["breach"],
                "title": b["title"],
                "rows": rows_read,
                "invalid": rows_invalid,
                "duplicate": rows_duplicate,
                "distinct": b["distinct_numbers"],
                "new": run.get("new_numbers", 0),
                "k": k,
                "exposed": _exposed(conn, b["breach"], k),
            }
        )
    notices = {str(s): int(n) for s, n in snap["notices"].items()}
    return {
        "breaches": breaches,
        "notices": suppress(notices, notice_k),
        "notices_total": sum(notices.values()),
        "notice_k": notice_k,
        "subscribers_total": sum(int(n) for n in snap["subscribers"].values()),
    }


def _exposed(conn: duckdb.DuckDBPyConnection, breach_id: str, k: int) -> dict[str, int | None]:
    """Kinds of field exposed → count; kinds seen fewer than k times → None (shown ``<k``)."""
    try:
        from breach_notify.store.breaches import breach_summary
    except ImportError:
        return {}
    summary = breach_summary(conn, breach_id)
    cells: dict[str, int] = {
        str(kind): int(n) for kind, n in summary.get("exposed", {}).items() if isinstance(n, int)
    }
    out = suppress(cells, k)
    for kind in summary.get("exposed_suppressed", []):
        out[str(kind)] = None
    return out


def _cell(n: int | None, k: int) -> str:
    return f"<{k}" if n is None else str(n)


def markdown(summary: dict[str, Any], stages: dict[str, Any]) -> str:
    """The Markdown artifact."""
    lines = ["# breach-notify run", "", "## Breaches", ""]
    if summary["breaches"]:
        lines += [
            "| breach | title | rows | invalid | duplicate | distinct | new this run | k |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for b in summary["breaches"]:
            lines.append(
                f"| {_md(b['breach'])} | {_md(b['title'])} | {b['rows']} | {b['invalid']} "
                f"| {b['duplicate']} | {b['distinct']} | {b['new']} | {b['k']} |"
            )
        lines.append("")
        for b in summary["breaches"]:
            if b["exposed"]:
                cells = ", ".join(f"{kind} {_cell(n, b['k'])}" for kind, n in b["exposed"].items())
                lines.append(f"- **{_md(b['breach'])}** exposed: {cells}")
        lines.append("")
    else:
        lines += ["No breaches yet.", ""]
    k = summary["notice_k"]
    lines += ["## Notices", ""]
    cells = ", ".join(f"{state} {_cell(n, k)}" for state, n in summary["notices"].items())
    lines += [f"Total {summary['notices_total']}" + (f": {cells}" if cells else ""), ""]
    lines += ["## This run", "", "| stage | counts |", "|---|---|"]
    for stage, counts in stages.items():
        lines.append(f"| {stage} | {_flat(counts)} |")
    lines += ["", f"Cells below k are shown as `<k` (notices: k = {k}). No number appears here."]
    return "\n".join(lines) + "\n"


def _md(value: object) -> str:
    """``value`` on one line as literal Markdown text: the characters that make emphasis, code,
    links, images, HTML or a table cell break are backslash-escaped (CommonMark), others kept,
    so ``fb-2021.fr`` reads as it is."""
    return _MD_SPECIAL.sub(r"\\\g<0>", " ".join(str(value).split()))


_MD_SPECIAL = re.compile(r"[\\`*_\[\]()<>!|{}#~]")


def _flat(counts: Any) -> str:
    if isinstance(counts, dict):
        parts = []
        for key, value in counts.items():
            if key == "breaches":
                value = len(value)
            if isinstance(value, int | float | str) or value is None:
                parts.append(f"{key} {value}")
        return ", ".join(parts)
    return str(counts)


def table(summary: dict[str, Any], stages: dict[str, Any]) -> Group:
    """The same report as rich renderables for the terminal."""
    breaches = Table(title="Breaches (counts only)")
    for col in ("breach", "rows", "invalid", "distinct", "new", "k", "exposed"):
        breaches.add_column(col, justify="left" if col in ("breach", "exposed") else "right")
    for b in summary["breaches"]:
        exposed = ", ".join(f"{kind} {_cell(n, b['k'])}" for kind, n in b["exposed"].items())
        breaches.add_row(
            *(
                Text(str(v))
                for v in (b["breach"], b["rows"], b["invalid"], b["distinct"], b["new"], b["k"])
            ),
            Text(exposed),
        )
    run = Table(title="This run")
    run.add_column("stage")
    run.add_column("counts")
    for stage, counts in stages.items():
        run.add_row(Text(stage), Text(_flat(counts)))
    k = summary["notice_k"]
    notices = ", ".join(f"{s} {_cell(n, k)}" for s, n in summary["notices"].items()) or "none"
    return Group(breaches, run, Text(f"Notices: {summary['notices_total']} ({notices})"))
