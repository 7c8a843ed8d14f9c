"""``subscribers import``: an NGO's existing list (CSV with a ``phone`` column, optional
``language``). Invalid and duplicate rows are counted, never fatal; a file that cannot be read as
such a CSV is refused before anything changes. Numbers that opted out or were erased (the
suppression list) are skipped and counted as ``suppressed``: an old list cannot bring them back.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from breach_notify import redact, text_rules
from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.numbers import E164, InvalidNumber, parse_number
from breach_notify.settings import Settings
from breach_notify.sms.gateway import Gateway
from breach_notify.store.db import transaction
from breach_notify.subscribers import codes, consent, events, optin, registry, suppression

SOURCE = "import"


@dataclass
class ImportReport:
    """Counts only."""

    imported: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    status: str = "pending"
    codes_sent: int = 0
    codes_failed: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "suppressed": self.suppressed,
            "status": self.status,
            "codes_sent": self.codes_sent,
            "codes_failed": self.codes_failed,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
        }


@dataclass(frozen=True)
class Row:
    phone: str = field(repr=False)
    language: str | None


def read(path: Path) -> list[Row]:
    """Parse the whole file, or raise ``BadInput`` naming what is wrong with it."""
    if not path.is_file():
        raise BadInput(f"cannot read {path}: no such file; give the path of a CSV file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path} ({exc.strerror}); check the path") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        columns = [c.strip().lower() for c in header or []]
        if "phone" not in columns:
            raise BadInput(
                f"{path} has no 'phone' column; the first line must be a header such as"
                " 'phone,language'"
            )
        phone_at = columns.index("phone")
        lang_at = columns.index("language") if "language" in columns else None
        rows = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            phone = record[phone_at] if phone_at < len(record) else ""
            lang = record[lang_at].strip() if lang_at is not None and lang_at < len(record) else ""
            rows.append(Row(phone, lang or None))
    except csv.Error:
        raise BadInput(
            f"{path} is not valid CSV (near line {reader.line_num}); fix the quoting"
        ) from None
    return rows


def import_file(
    conn: duckdb.DuckDBPyConnection,
    ring: Keyring,
    settings: Settings,
    path: Path,
    *,
    consent_source: str,
    confirmed: bool,
    gateway: Gateway | None,
    default_region: str | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import ``path``. With ``confirmed`` rows become active with ``consent_source`` as evidence;
    without, they become pending and are texted a code (``gateway`` required).

    Note: a number on the suppression list (opted out or erased) is skipped and counted as
    suppressed; an opted-out subscriber without an entry (before the list existed) is never
    re-activated either, and counts as a duplicate.
    """
    text_rules.check_consent_source(consent_source.strip())
    evidence = redact.redact(consent_source.strip())[:200]
    if not evidence:
        raise BadInput("--consent-source must say where the consent comes from")
    if not confirmed and gateway is None:
        raise BadInput("importing without --confirmed sends codes; give --gateway")
    region = registry.check_region(default_region)
    rows = read(path)
    now = now or events.utcnow()
    report = ImportReport(status="active" if confirmed else "pending")
    numbers: list[tuple[E164, str]] = []
    seen: set[str] = set()
    for row in rows:
        try:
            number = parse_number(row.phone, region)
        except InvalidNumber as exc:
            report.invalid_by_reason[exc.reason] += 1
            continue
        if not number.can_receive_sms:
            report.invalid_by_reason["not_sms_capable"] += 1
            continue
        if number.value in seen:
            report.duplicate += 1
            continue
        seen.add(number.value)
        try:
            language = registry.check_language(row.language or settings.default_language)
        except BadInput:
            language = registry.check_language(settings.default_language)
        numbers.append((number, language))
    report.invalid = sum(report.invalid_by_reason.values())

    to_send: list[optin.Pending] = []
    with transaction(conn):
        blocked = suppression.suppressed(conn, ring, [n for n, _ in numbers])
        report.suppressed = len(blocked)
        numbers = [(n, lang) for n, lang in numbers if n.value not in blocked]
        existing = registry.find_many(conn, ring, [n for n, _ in numbers])
        fresh = [(n, lang) for n, lang in numbers if n.value not in existing]
        ids = registry.create_many(
            conn, ring, fresh, status=report.status, now=now, consent_source=evidence
        )
        trail = [[sid, "imported"] for sid in ids]
        if confirmed:
            trail += [[sid, "confirmed"] for sid in ids]
        else:
            for sid, (number, _) in zip(ids, fresh, strict=True):
                code = codes.issue(conn, ring, sid, now)
                if code is not None:
                    trail.append([sid, "code_issued"])
                    to_send.append(optin.Pending(sid, number, code))
        if trail:
            new_events = pa.table(  # noqa: F841 - read by name in the SQL below
                {"sid": [t[0] for t in trail], "event": [t[1] for t in trail]}
            )
            conn.execute(
                "INSERT INTO subscriber_events (subscriber_id, event, source, occurred_at)"
                " SELECT sid, event, ?, ? FROM new_events",
                [SOURCE, now],
            )
        report.imported += len(ids)
        for number, _ in numbers:
            sub = existing.get(number.value)
            if sub is None:
                continue
            if confirmed and sub.status == "pending":
                consent.activate(conn, sub.id, SOURCE, now, consent_source=evidence)
                report.imported += 1
            else:
                report.duplicate += 1
    if gateway is not None:
        for pending in to_send:
            if optin.deliver(conn, settings, gateway, pending, SOURCE, now) is None:
                report.codes_sent += 1
            else:
                report.codes_failed += 1
    return report
