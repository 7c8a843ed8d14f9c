"""The plaintext scan: every format of every input number, searched in everything written.

DuckDB compresses strings on disk (dictionary, FSST), so a byte scan of the file alone could miss
a stored number; ``scan`` therefore also reads every column of every table through SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import phonenumbers
from phonenumbers import PhoneNumberFormat


def formats(number: str, region: str | None = None) -> set[str]:
    """E.164, its digits, national and international forms, and the national significant number."""
    num = phonenumbers.parse(number, region)
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
    intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
    nsn = phonenumbers.national_significant_number(num)
    out = {e164, e164[1:], national, intl, nsn, "".join(c for c in national if c.isdigit())}
    return {s for s in out if sum(c.isdigit() for c in s) >= 6}


def needles(numbers: Iterable[str], region: str | None = None) -> set[str]:
    found: set[str] = set()
    for n in numbers:
        found |= formats(n, region)
    return found


def _db_values(path: Path) -> Iterable[str]:
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return
    try:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            cols = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
            for (col,) in cols:
                for (value,) in conn.execute(
                    f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM "{table}"'
                ).fetchall():
                    if value is not None:
                        yield value
    finally:
        conn.close()


def scan(
    paths: Iterable[Path],
    numbers: Iterable[str],
    texts: Iterable[str] = (),
    region: str | None = None,
) -> list[str]:
    """Return ``where: needle`` for each hit in files below ``paths``, DuckDB contents and texts."""
    wanted = needles(numbers, region)
    encoded = {n: n.encode() for n in wanted}
    hits: list[str] = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            data = f.read_bytes()
            hits += [f"{f}: {n}" for n, b in encoded.items() if b in data]
            if f.suffix == ".duckdb" or data[8:12] == b"DUCK":
                for value in _db_values(f):
                    hits += [f"{f} (sql): {n}" for n in wanted if n in value]
    for i, text in enumerate(texts):
        hits += [f"text[{i}]: {n}" for n in wanted if n in text]
    return hits
