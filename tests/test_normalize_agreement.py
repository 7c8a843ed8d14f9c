"""The /check page's normaliser agrees with the server's ``phonenumbers``.

The page turns the typed number into E.164 in the browser (``static/js/normalize.js`` with the
vendored libphonenumber-js); the breach's tags were made from ``phonenumbers``' E.164 at ingest. A
number the two normalise differently would be checked as another number, so they must agree on
validity and E.164 for every example of the ingest's normalisation tests and for over 10,000
random numbers of every region. The page's own file runs under node, on one batch.

The page refuses numbers typed with letters (``phonenumbers`` reads ``+1 800 FLOWERS`` as digits,
libphonenumber-js does not): a refusal is never a different number, and is counted apart.
Disagreements are printed; the test passes only if each is listed, with its reason, in
``tests/normalize_allowlist.json`` (and each listed one still disagrees).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import phonenumbers
import pytest
import test_normalize as ingest_examples
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from breach_notify.numbers import verdict as python_verdict

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
ALLOWLIST = Path(__file__).with_name("normalize_allowlist.json")
VENDOR = ROOT / "breach_notify/web/static/vendor/libphonenumber-js/VENDOR.json"
RANDOM_NUMBERS = 12_000
LETTER = re.compile(r"[^\W\d_]")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the page's normaliser is not tested"
)

Case = tuple[str, str | None]
TYPES = (
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)


def normalisation_test_cases() -> list[Case]:
    """Every input of tests/test_normalize.py, with the regions those tests give it."""
    t = ingest_examples
    rng = random.Random(1)
    cases: list[Case] = []
    for region in t.REGIONS:
        for num in t.examples(region):
            for form in t.forms(num, rng):
                cases += [(form, None), (form, region)]
            digits = phonenumbers.format_number(num, PhoneNumberFormat.E164)[1:]
            nsn = phonenumbers.national_significant_number(num)
            for fb in (
                digits,
                digits[:-1],
                digits + "1",
                f"{num.country_code}0{nsn}",
                "0" + digits,
            ):
                cases.append(("+" + fb, None))
    for region in (None, "GB", "US", "IT", "AR", "BR", "JP", "RU", "KZ"):
        cases += [(edge, region) for edge in t.EDGE]
    cases += [("+" + edge.lstrip("+"), None) for edge in t.EDGE]
    return cases


def random_cases(count: int, seed: int = 9497) -> list[Case]:
    """Example numbers of every region and type with digits changed, added or dropped, written
    in E.164, international, national (with the region) and noisy forms."""
    rng = random.Random(seed)
    pool = [
        (region, num)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in TYPES
        if (num := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    cases: list[Case] = []
    while len(cases) < count:
        region, example = (
            pool[len(cases) % len(pool)] if len(cases) < len(pool) else rng.choice(pool)
        )
        digits = list(phonenumbers.national_significant_number(example))
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
        if rng.random() < 0.08:
            digits.append(str(rng.randrange(10)))
        if rng.random() < 0.08 and len(digits) > 4:
            digits.pop(rng.randrange(len(digits)))
        nsn = "".join(digits)
        e164 = f"+{example.country_code}{nsn}"
        try:
            num = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            continue
        form = rng.randrange(6)
        if form == 0:
            cases.append((e164, rng.choice((None, region))))
        elif form == 1:
            intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
            cases.append((intl, rng.choice((None, region))))
        elif form in (2, 3):
            national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
            cases.append((national if form == 2 else national.replace(" ", ""), region))
        elif form == 4:
            noisy = "".join(c + rng.choice(("", "", " ", ".", "-")) for c in e164[1:])
            cases.append(("+" + noisy, rng.choice((None, region))))
        else:
            cases.append((f"{nsn}", region))
    return cases


def browser_verdicts(cases: list[Case], tmp_path: Path) -> list[dict[str, str]]:
    assert NODE is not None
    batch = tmp_path / "cases.json"
    batch.write_text(json.dumps(cases))
    run = subprocess.run(
        [NODE, "tests/js/normalize_batch.mjs", str(batch)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out: list[dict[str, str]] = json.loads(run.stdout)
    assert len(out) == len(cases)
    return out


def compare(cases: list[Case], tmp_path: Path) -> tuple[list[dict[str, str | None]], int, int]:
    """(disagreements, refused for letters, valid numbers) over ``cases``."""
    disagreements: list[dict[str, str | None]] = []
    refused = valid = 0
    for (raw, region), page in zip(cases, browser_verdicts(cases, tmp_path), strict=True):
        server, _ = python_verdict(raw, region)
        valid += server is not None
        if page.get("e164") == server:
            continue
        if server is None and "error" in page:
            continue  # both refuse it (the reasons may be worded differently)
        if page.get("error") == "letters" and LETTER.search(raw):
            refused += 1
            continue
        disagreements.append(
            {"raw": raw, "region": region, "python": server, "browser": page.get("e164")}
        )
    return disagreements, refused, valid


def allowed() -> dict[tuple[str, str | None], dict[str, str | None]]:
    data = json.loads(ALLOWLIST.read_text())
    for entry in data["entries"]:
        assert entry.get("reason"), f"allowlist entry without a reason: {entry}"
    return {(e["raw"], e["region"]): e for e in data["entries"]}


def check_against_allowlist(name: str, cases: list[Case], tmp_path: Path) -> None:
    disagreements, refused, valid = compare(cases, tmp_path)
    listed = allowed()
    versions = (phonenumbers.__version__, json.loads(VENDOR.read_text())["version"])
    print(
        f"{name}: {len(cases)} inputs ({valid} valid for phonenumbers {versions[0]}), "
        f"libphonenumber-js {versions[1]}: {len(disagreements)} disagreements, "
        f"{refused} refused by the page (letters)"
    )
    for d in disagreements:
        mark = "allowed" if (d["raw"], d["region"]) in listed else "NOT ALLOWED"
        print(f"  {mark}: {d}")
    unexplained = [d for d in disagreements if (d["raw"], d["region"]) not in listed]
    assert unexplained == [], f"{len(unexplained)} disagreements not in {ALLOWLIST.name}"
    return None


def test_the_page_and_phonenumbers_agree_on_the_ingests_normalisation_examples(
    tmp_path: Path,
) -> None:
    cases = normalisation_test_cases()
    assert len(cases) > 20_000
    check_against_allowlist("normalisation examples", cases, tmp_path)


def test_the_page_and_phonenumbers_agree_on_random_numbers_of_every_region(
    tmp_path: Path,
) -> None:
    cases = random_cases(RANDOM_NUMBERS)
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(raw, region))
               for raw, region in cases if python_verdict(raw, region)[0]}  # fmt: skip
    assert len(cases) >= 10_000 and len(regions) > 200
    check_against_allowlist("random numbers", cases, tmp_path)


def test_every_allowlisted_disagreement_still_disagrees(tmp_path: Path) -> None:
    listed = allowed()
    if not listed:
        return
    cases = list(listed)
    disagreements, _, _ = compare(cases, tmp_path)
    still = {(d["raw"], d["region"]) for d in disagreements}
    assert still == set(listed), f"stale allowlist entries: {set(listed) - still}"


def test_the_page_refuses_letters_and_national_numbers_without_a_country(tmp_path: Path) -> None:
    cases: list[Case] = [("+1 800 FLOWERS", "US"), ("07400 123456", None), ("", "GB"),
                         ("07400 123456", "GB"), ("+44 7400 123456", None)]  # fmt: skip
    got = browser_verdicts(cases, tmp_path)
    assert [g.get("error") or g.get("e164") for g in got] == [
        "letters", "country", "number", "+447400123456", "+447400123456"
    ]  # fmt: skip
