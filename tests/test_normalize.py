"""The SQL normalisation agrees with ``phonenumbers`` (parse + is_valid_number + E.164), row by row.

For each value the SQL either decides (E.164 or a reason) or leaves it to Python; a decided
verdict must equal the reference, and the undecided share must stay small on realistic input.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import duckdb
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from phonenumbers import phonenumberutil as pnu

from breach_notify.ingest.normalize import phone_sql
from breach_notify.numbers import verdict

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SAMPLE_REGIONS = (
    "GB",
    "US",
    "CA",
    "FR",
    "DE",
    "IT",
    "BR",
    "AR",
    "MX",
    "RU",
    "KZ",
    "IN",
    "JP",
    "AU",
    "NG",
    "GG",
    "JE",
    "IM",
    "VA",
    "SM",
    "FI",
    "AX",
    "NO",
    "SJ",
    "CN",
    "ZA",
)
_CON = duckdb.connect()


def sql_verdicts(
    values: list[str], region: str | None, *, plus: bool = False
) -> list[tuple[str | None, str | None]]:
    """(e164, reason) per value from the SQL path; (None, None) = left to Python."""
    _CON.execute("CREATE OR REPLACE TEMP TABLE v (bn_rowid INTEGER, raw VARCHAR)")
    _CON.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
    rows = _CON.execute(
        f"SELECT bn_rowid, e164, reason FROM ({phone_sql('v', 'raw', region, plus=plus)})"
    ).fetchall()
    out: list[tuple[str | None, str | None]] = [(None, None)] * len(values)
    for i, e164, reason in rows:
        out[i] = (e164, reason)
    return out


def check(values: Iterable[str], region: str | None, *, plus: bool = False) -> float:
    """Assert every SQL-decided verdict equals the reference; return the decided share."""
    vals = list(values)
    decided = 0
    for raw, (e164, reason) in zip(vals, sql_verdicts(vals, region, plus=plus), strict=True):
        if e164 is None and reason is None:
            continue
        decided += 1
        ref = verdict("+" + raw if plus else raw, region)
        assert (e164, reason) == ref, (region, "+" + raw if plus else raw)
    return decided / max(len(vals), 1)


def examples(region: str) -> list[phonenumbers.PhoneNumber]:
    out = []
    for t in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.VOIP,
        PhoneNumberType.UAN,
    ):
        n = phonenumbers.example_number_for_type(region, t)
        if n is not None:
            out.append(n)
    return out


def forms(num: phonenumbers.PhoneNumber, rng: random.Random) -> list[str]:
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
    noisy = "".join(c + rng.choice(("", "", " ", ".", "-")) for c in e164[1:])
    return [
        e164,
        intl,
        national,
        "00" + e164[1:],
        "011 " + e164[1:],
        "+" + noisy,
        intl.replace(" ", "."),
        intl.replace(" ", "-"),
        "(" + national + ")",
        national.replace(" ", ""),
        e164[:-1],
        e164 + "7",
        " " + e164 + " ",
        f"+{num.country_code} (0) {phonenumbers.national_significant_number(num)}",
    ]


def test_every_phonenumbers_regex_compiles_in_duckdb() -> None:
    patterns: set[str] = set()
    metas = [PhoneMetadata.metadata_for_region(r, None) for r in REGIONS]
    metas += [
        PhoneMetadata.metadata_for_nongeo_region(cc, None)
        for cc in pnu.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    for m in metas:
        assert m is not None
        for attr in ("national_prefix_for_parsing", "international_prefix", "leading_digits"):
            if getattr(m, attr):
                patterns.add(getattr(m, attr))
        for desc in (
            m.general_desc,
            m.fixed_line,
            m.mobile,
            m.toll_free,
            m.premium_rate,
            m.shared_cost,
            m.voip,
            m.personal_number,
            m.pager,
            m.uan,
            m.voicemail,
        ):
            if desc is not None and desc.national_number_pattern:
                patterns.add(desc.national_number_pattern)
    for p in patterns:
        _CON.execute("SELECT regexp_full_match('0', ?)", [p]).fetchall()
    for region in (None, "GB", "BR"):  # and the generated SQL binds (compiles every regex)
        _CON.execute(
            f"SELECT * FROM ({phone_sql('(SELECT 1 AS bn_rowid, NULL AS raw)', 'raw', region)})"
        )


def test_examples_of_every_region_international_forms() -> None:
    rng = random.Random(1)
    values = [
        f
        for r in REGIONS
        for n in examples(r)
        for f in forms(n, rng)
        if f.lstrip(" (").startswith("+")
    ]
    share = check(values, None)
    assert share > 0.9


def test_examples_of_every_region_as_facebook_digits() -> None:
    values = []
    for r in REGIONS:
        for n in examples(r):
            digits = phonenumbers.format_number(n, PhoneNumberFormat.E164)[1:]
            nsn = phonenumbers.national_significant_number(n)
            values += [
                digits,
                digits[:-1],
                digits + "1",
                f"{n.country_code}0{nsn}",
                f"{n.country_code}1{nsn}",
                "0" + digits,
            ]
    assert check(values, None, plus=True) > 0.9


@pytest.mark.parametrize("region", SAMPLE_REGIONS)
def test_examples_national_and_noisy_with_default_region(region: str) -> None:
    rng = random.Random(region)
    values = [f for r in (region, "GB", "US", "FR") for n in examples(r) for f in forms(n, rng)]
    check(values, region)


@pytest.mark.slow
def test_examples_national_and_noisy_every_region() -> None:
    rng = random.Random(7)
    for region in REGIONS:
        check([f for n in examples(region) for f in forms(n, rng)], region)


EDGE = [
    "",
    " ",
    "+",
    "++",
    "+0",
    "+1",
    "+12",
    "+123",
    "+1234",
    "00",
    "000",
    "0044",
    "+44",
    "+440",
    "+4400",
    "+44 0",
    "+44 (0)20 7946 0018",
    "+44 20 7946 0018 ext. 12",
    "+44 20 7946 0018#",
    "tel:+44-20-7946-0018",
    "+1 800 FLOWERS",
    "+999 1234567",
    "+0 123456",
    "1-800-555-0199",
    "+39 06 6988 1234",
    "+39 0 6988 1234",
    "+390669812345",
    "+7 701 123 4567",
    "+7 912 345 6789",
    "+1 268 464 1234",
    "+1 441 234 5678",
    "+599 9 123 4567",
    "+262 269 12 34 56",
    "+8001234 5678",
    "+80012345678",
    "+882 1234 5678",
    "+99912345678901234567",
    "+1234567890123456789",
    "+44 7700 900123",
    "+447700900123",
    "(+44) 7700-900-123",
    "+44.7700.900.123",
    "+ 44 7700 900123",
    "44 7700 900123",
    "07700 900123",
    "7700 900123",
    "0044 7700 900123",
    "011 44 7700 900123",
    "+55 11 91234-5678",
    "+55 (11) 91234-5678",
    "+54 9 11 1234-5678",
    "+54 11 1234-5678",
    "+52 1 55 1234 5678",
    "+61 0412 345 678",
    "+33 0 6 12 34 56 78",
    "+330612345678",
    "+49 (0)30 123456",
    "+4930123456",
    "+81 3-1234-5678",
    "+8603112345678",
    "٠٧٧٠٠٩٠٠١٢٣",
    "+４４７７００９００１２３",
    "+44 7700 900123 / 124",
    "+44 7700 900123; 07700 900124",
    "12",
    "123",
    "1234567",
    "0" * 20,
    "9" * 30,
    "+" + "9" * 250,
    "+44\t7700\t900123",
]


@pytest.mark.parametrize("region", [None, "GB", "US", "IT", "AR", "BR", "JP", "RU", "KZ"])
def test_edge_cases(region: str | None) -> None:
    check(EDGE, region)


def test_edge_cases_facebook() -> None:
    check([e.lstrip("+") for e in EDGE], None, plus=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text("0123456789", min_size=0, max_size=20), min_size=1, max_size=400))
def test_hypothesis_random_digits_facebook(values: list[str]) -> None:
    check(values, None, plus=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text("0123456789 +-.()/", min_size=0, max_size=22), min_size=1, max_size=200),
    st.sampled_from(("GB", "US", "DE", "IT", "BR", "AR", "RU", "FR", "IN", "JP", "CN", "AU")),
)
def test_hypothesis_random_noisy_strings_with_region(values: list[str], region: str) -> None:
    check(values, region)
