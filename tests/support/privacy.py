"""The plaintext scan: every format of every input number, searched in everything written.

DuckDB compresses strings on disk (dictionary, FSST), so a byte scan of the file alone could miss
a stored number; ``scan`` therefore also reads every column of every table through SQL.

Random hex (subscriber ids, pseudonyms, message ids) holds digit runs, and with thousands of
numbers a 9-digit national number turns up inside one by chance (seen: ``sub_365073665489fd…``
"held" 650736654, about once in a few dozen runs of the 2,000-notice scenario). A match that lies
wholly inside a hex token of 16 or more characters with a letter in it is therefore not a hit: a
number written as text stands apart from such a token, and within DuckDB's pages the bytes around
a stored string would have to form one by chance (odds ~1e-5).
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


# Many needles (hundreds of numbers): one alternation of thousands is slow in ``re``. Every
# needle is digits with at most two of these between them, so a needle found literally lies
# inside one of these runs, and its digits inside the run's digits: checked with set lookups.
_RUN = re.compile(rb"[0-9](?:[ \-.()+/]{0,2}[0-9]){5,}")
_MANY = 200


_HEX = frozenset(b"0123456789abcdefABCDEF")
_HEX_TOKEN = 16


def _inside_hex_token(data: bytes, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` lies within a run of 16+ hex characters with a letter in it."""
    if any(c not in _HEX for c in data[start:end]):
        return False
    left, right = start, end
    while left > 0 and data[left - 1] in _HEX:
        left -= 1
    while right < len(data) and data[right] in _HEX:
        right += 1
    token = data[left:right]
    return right - left >= _HEX_TOKEN and any(c > 57 for c in token)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


class _Digits:
    """The many-needles matcher: needles indexed by their digits."""

    def __init__(self, wanted: set[str]) -> None:
        self.by_digits: dict[str, set[str]] = {}
        for n in wanted:
            self.by_digits.setdefault(_digits(n), set()).add(n)
        self.lengths = sorted({len(d) for d in self.by_digits})

    def find(self, data: bytes) -> set[str]:
        found: set[str] = set()
        for m in _RUN.finditer(data):
            if _inside_hex_token(data, m.start(), m.end()):
                continue
            run = bytes(c for c in m.group() if 48 <= c <= 57).decode()
            for size in self.lengths:
                for i in range(len(run) - size + 1):
                    hit = self.by_digits.get(run[i : i + size])
                    if hit:
                        found |= hit
        return found


def _find(pattern: re.Pattern[bytes] | _Digits, data: bytes, wanted: set[str]) -> set[str]:
    """Every needle in ``data``; overlapping needles are found by checking each match's region.

    With many needles (a :class:`_Digits` matcher), a needle counts when its digits appear in a
    run of digits in ``data`` (a superset of the literal matches: other separators count too).
    """
    if isinstance(pattern, _Digits):
        return pattern.find(data)
    found: set[str] = set()
    for m in pattern.finditer(data):
        if _inside_hex_token(data, m.start(), m.end()):
            continue
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
    pattern = _pattern(wanted) if len(wanted) <= _MANY else _Digits(wanted)
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
