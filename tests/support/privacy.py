"""The plaintext scan: every format of every input number, searched in everything written.

DuckDB compresses strings on disk (dictionary, FSST), so a byte scan of the file alone could miss
a stored number; ``scan`` therefore also reads every column of every table through SQL.
"""

from __future__ import annotations

import re
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


def _pattern(wanted: set[str]) -> re.Pattern[bytes]:
    # One alternation, longest first, so a single pass finds every needle a haystack holds.
    alternatives = sorted(wanted, key=len, reverse=True)
    return re.compile(b"|".join(re.escape(n.encode()) for n in alternatives))


def _find(pattern: re.Pattern[bytes], data: bytes, wanted: set[str]) -> set[str]:
    """Every needle in ``data``; overlapping needles are found by checking each match's region."""
    found: set[str] = set()
    for m in pattern.finditer(data):
        window = data[max(0, m.start() - 24) : m.end() + 24]
        found |= {n for n in wanted if n.encode() in window}
    return found


def scan(
    paths: Iterable[Path],
    numbers: Iterable[str],
    texts: Iterable[str] = (),
    region: str | None = None,
) -> list[str]:
    """Return ``where: needle`` for each hit in files below ``paths``, DuckDB contents and texts."""
    wanted = needles(numbers, region)
    if not wanted:
        return []
    pattern = _pattern(wanted)
    hits: list[str] = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            data = f.read_bytes()
            hits += [f"{f}: {n}" for n in sorted(_find(pattern, data, wanted))]
            if f.suffix == ".duckdb" or data[8:12] == b"DUCK":
                values = "\x00".join(_db_values(f)).encode()
                hits += [f"{f} (sql): {n}" for n in sorted(_find(pattern, values, wanted))]
    for i, text in enumerate(texts):
        hits += [f"text[{i}]: {n}" for n in sorted(_find(pattern, text.encode(), wanted))]
    return hits


def key_forms(keyring_path: Path) -> set[bytes]:
    """Every key of a keyring as raw bytes, hex, base64, and the HMAC pads derived from it."""
    import base64
    import json

    data = json.loads(keyring_path.read_text())
    forms: set[bytes] = set()
    for purpose in ("pseudonym", "seal", "code"):
        for encoded in data[purpose]["keys"].values():
            key = base64.b64decode(encoded)
            padded = key.ljust(64, b"\0")
            ipad = bytes(b ^ 0x36 for b in padded)
            opad = bytes(b ^ 0x5C for b in padded)
            forms |= {key, key.hex().encode(), encoded.encode(), ipad, opad, ipad.hex().encode()}
    return forms


def scan_keys(paths: Iterable[Path], keyring_path: Path, texts: Iterable[str] = ()) -> list[str]:
    """Files (other than the keyring itself and the backups ``keys rotate`` keeps beside it) and
    texts that hold any form of a key."""
    forms = key_forms(keyring_path)
    ring = keyring_path.resolve()
    hits: list[str] = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            real = f.resolve()
            if real == ring or (
                real.parent == ring.parent and real.name.startswith(f"{ring.name}.bak-")
            ):
                continue
            data = f.read_bytes()
            hits += [f"{f}: key material" for form in forms if form in data][:1]
    for i, text in enumerate(texts):
        hits += [f"text[{i}]: key material" for form in forms if form in text.encode()][:1]
    return hits
