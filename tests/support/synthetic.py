"""Fictional breach dumps with known truth, for tests, benchmarks and the demo.

Numbers are drawn from ``phonenumbers``' example numbers with random trailing digits; names,
places and e-mails are made up. :func:`write_facebook` and :func:`write_csv` return a
:class:`Truth` computed row by row with ``phonenumbers`` (the reference verdict), so a test can
compare an ingest's counts exactly. :func:`write_facebook_fast` writes millions of clean-ish rows
through DuckDB for benchmarks (no truth).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from breach_notify.kinds import BIT, KINDS
from breach_notify.numbers import verdict

__all__ = [
    "BIT",
    "DEFAULT_REGIONS",
    "KINDS",
    "Truth",
    "random_number",
    "reference_csv",
    "reference_facebook",
    "write_csv",
    "write_facebook",
    "write_facebook_fast",
]

DEFAULT_REGIONS = ("FR", "GB", "US", "IT", "BR", "DE", "IN", "NG", "RU", "KZ", "AR", "MX", "CA")
_FIRST = ("Ana", "Bo", "Chen", "Dara", "Émile", "Farah", "Gö", "Hana", "Ivo", "Jun", "Kai", "Lea")
_LAST = ("Abara", "Berg", "Costa", "Dumont", "Eze", "Fontaine", "Gallo", "Haas", "Ito", "Jovic")
_CITIES = ("Lyon, France", "Springfield", "São Paulo", "Milano", "Köln", "Lagos", "Almaty")
_GENDERS = ("male", "female", "homme", "femme", "männlich", "weiblich", "masculino", "femenino")
_REL = ("Single", "Married", "In a relationship", "C'est compliqué")
_WORK = ("ACME", "Foo Corp: Paris office", "Self-employed", "Bar Ltd: R&D: lab")


def reference_facebook(field: str) -> tuple[str | None, str]:
    """The truth for a ``facebook-2021`` phone field: ``empty``, or the reference verdict
    (:func:`breach_notify.numbers.verdict`) on ``'+' + field``."""
    field = field.strip(" \t")
    if not field:
        return None, "empty"
    e164, reason = verdict("+" + field, None)
    return e164, reason or ""


def reference_csv(value: str, region: str | None) -> tuple[str | None, str]:
    """The truth for a CSV phone cell: ``empty``, or the reference verdict on the value."""
    value = value.strip(" \t")
    if not value:
        return None, "empty"
    e164, reason = verdict(value, region)
    return e164, reason or ""


@dataclass
class Truth:
    """What an ingest of the generated files must report (and the numbers, for privacy scans)."""

    rows_read: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    kinds: dict[str, int] = field(default_factory=dict)  # e164 -> OR of kinds
    valid_rows: int = 0
    numbers: list[str] = field(default_factory=list)  # every valid E.164 written

    @property
    def rows_invalid(self) -> int:
        return sum(self.invalid_by_reason.values())

    @property
    def distinct(self) -> int:
        return len(self.kinds)

    @property
    def rows_duplicate(self) -> int:
        return self.valid_rows - len(self.kinds)

    def add(self, e164: str | None, reason: str, kinds: int) -> None:
        self.rows_read += 1
        if e164 is None:
            self.invalid_by_reason[reason] += 1
            return
        self.valid_rows += 1
        self.kinds[e164] = self.kinds.get(e164, 0) | kinds
        self.numbers.append(e164)


def random_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    """An example number of ``region`` with its last four digits randomised (maybe invalid)."""
    kind = rng.choice((PhoneNumberType.MOBILE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE))
    ex = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    assert ex is not None
    nsn = phonenumbers.national_significant_number(ex)
    tail = "".join(rng.choice("0123456789") for _ in range(min(4, len(nsn) - 2)))
    digits = nsn[: len(nsn) - len(tail)] + tail
    return phonenumbers.parse(f"+{ex.country_code}{digits}", None)


def _e164(num: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def _facebook_fields(rng: random.Random) -> tuple[list[str], int]:
    """The eleven fields after the phone, some empty, and their kinds bitmask."""
    f = [
        str(rng.randrange(10**14, 10**15)),
        rng.choice(_FIRST),
        rng.choice(_LAST),
        rng.choice(_GENDERS),
        rng.choice(_CITIES),
        rng.choice(_CITIES),
        rng.choice(_REL),
        rng.choice(_WORK),
        f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/20{rng.randint(10, 20)} 12:00:00 AM",
        f"{rng.choice(_FIRST).lower()}.x@example.org",
        f"{rng.randint(1, 12)}/{rng.randint(1, 28)}",
    ]
    for i in range(len(f)):
        if rng.random() < 0.3:
            f[i] = ""
    kinds = 0
    names = (
        "account_id",
        "name",
        "name",
        "gender",
        "location",
        "location",
        "relationship",
        "work",
        "date",
        "email",
        "birthday",
    )
    for name, value in zip(names, f, strict=True):
        if value:
            kinds |= BIT[name]
    return f, kinds


def _phone_field(rng: random.Random, regions: tuple[str, ...], seen: list[str]) -> str:
    """A facebook-style phone field: mostly digits with calling code, sometimes dirty."""
    roll = rng.random()
    if seen and roll < 0.08:
        return rng.choice(seen)  # duplicate
    num = random_number(rng, rng.choice(regions))
    digits = _e164(num)[1:]
    if roll < 0.12:
        return digits[: rng.randint(1, 4)]  # too short
    if roll < 0.15:
        return "0" + digits  # no calling code
    if roll < 0.17:
        return ""  # empty
    if roll < 0.19:
        return f"{num.country_code}0{phonenumbers.national_significant_number(num)}"  # trunk 0
    if roll < 0.21:
        return digits + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 8)))
    if roll < 0.22:
        return "n/a"
    if roll < 0.23:
        return " " + digits  # stray space
    return digits


def write_facebook(
    path: Path,
    rows: int,
    *,
    seed: int = 0,
    regions: tuple[str, ...] = DEFAULT_REGIONS,
    header: bool = True,
    crlf: bool = False,
) -> Truth:
    """Write a dirty ``facebook-2021`` dump of about ``rows`` lines and return its truth.

    Dirt: header line, blank lines, CRLF, truncated lines, colons in ``date`` and ``work``,
    localised gender, invalid UTF-8 in names, duplicates, short/long/empty/foreign phone fields.
    """
    rng = random.Random(seed)
    truth = Truth()
    seen: list[str] = []
    out: list[bytes] = []
    nl = b"\r\n" if crlf else b"\n"
    if header:
        out.append(
            b"phone:id:first_name:last_name:gender:current_city:hometown:relationship:"
            b"work:date:email:birthday"
        )
    for _ in range(rows):
        roll = rng.random()
        if roll < 0.02:
            out.append(b"")  # blank line, not a row
            continue
        phone = _phone_field(rng, regions, seen)
        fields, kinds = _facebook_fields(rng)
        line = ":".join([phone, *fields]).encode()
        if roll < 0.04:
            line = line[: rng.randint(1, max(1, line.find(b":", len(phone) + 1)))]
            if not line.strip(b" \t"):
                out.append(b"")
                continue
            truth.add(None, "truncated_line", 0)
            out.append(line)
            continue
        if roll < 0.05 and fields[1]:
            line = line.replace(fields[1].encode(), b"\xff\xfe" + fields[1].encode(), 1)
        e164, reason = reference_facebook(phone)
        truth.add(e164, reason, kinds)
        if e164 is not None and phone.strip() not in seen:
            seen.append(phone.strip())
        out.append(line)
    path.write_bytes(nl.join(out) + nl)
    return truth


def write_csv(
    path: Path,
    rows: int,
    *,
    region: str = "GB",
    seed: int = 0,
    delimiter: str = ",",
    phone_column: str = "phone",
) -> Truth:
    """Write a dirty CSV dump (national and international forms, quoted fields) and its truth."""
    rng = random.Random(seed)
    truth = Truth()
    regions = (region, region, region, "FR", "US")
    lines = [delimiter.join(["name", phone_column, "email", "city"])]
    fmts = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL)
    for _ in range(rows):
        num = random_number(rng, rng.choice(regions))
        fmt = rng.choice(fmts)
        text = phonenumbers.format_number(num, fmt)
        if fmt == PhoneNumberFormat.NATIONAL and phonenumbers.region_code_for_number(num) != region:
            text = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
        roll = rng.random()
        if roll < 0.05:
            text = text.replace(" ", ".")
        elif roll < 0.1:
            text = "00" + _e164(num)[1:]
        elif roll < 0.13:
            text = text[:4]
        elif roll < 0.15:
            text = ""
        elif roll < 0.17:
            text = text + " ext. 12"
        elif roll < 0.19:
            text = "(" + text.replace(" ", ") ", 1)
        name = rng.choice(_FIRST) + (", " + rng.choice(_LAST) if rng.random() < 0.5 else "")
        email = "" if rng.random() < 0.4 else "someone@example.org"
        city = rng.choice(_CITIES)
        kinds = BIT["name"] | BIT["location"] | (BIT["email"] if email else 0)
        cells = [name, text, email, city]
        lines.append(delimiter.join(_quote(c, delimiter) for c in cells))
        e164, reason = reference_csv(text, region)
        truth.add(e164, reason, kinds)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth


def _quote(cell: str, delimiter: str) -> str:
    if delimiter in cell or '"' in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def write_facebook_fast(path: Path, rows: int, *, seed: int = 0, region: str = "FR") -> None:
    """Write ``rows`` facebook-2021 lines fast (DuckDB), numbers of one region, ~3% invalid."""
    import duckdb

    ex = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    assert ex is not None
    e164 = _e164(ex)[1:]
    width = min(8, len(phonenumbers.national_significant_number(ex)) - 1)
    head = e164[:-width]
    con = duckdb.connect()
    try:
        con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
        con.execute(
            f"""COPY (
            SELECT CASE WHEN random() < 0.03 THEN substr(p, 1, 5) ELSE p END
                || ':1000' || i::VARCHAR || ':Ana:Berg:female:Lyon, France::Single:ACME: Lyon:'
                || '3/14/2018 12:00:00 AM:ana' || (i % 1000)::VARCHAR || '@example.org:'
            FROM (SELECT i, '{head}' || lpad((random() * {10**width})::BIGINT::VARCHAR, {width},
                  '0') AS p FROM range({rows}) t(i))
            ) TO '{path}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\t')"""
        )
    finally:
        con.close()
