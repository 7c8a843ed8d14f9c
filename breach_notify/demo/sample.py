"""A synthetic breach inbox and subscriber list made only of fictional numbers.

Numbers come from ranges reserved for fiction, which ``phonenumbers`` accepts as valid mobiles:
North American ``NPA-555-0100…0199`` and Australia's ``0491 570 006…159``. The same generator
builds the bundled demo (:data:`DEMO_SEED`) and the test inboxes, and returns every number it
used so that tests can scan for them.

Run ``python -m breach_notify.demo.sample DIR`` to rebuild the bundled files.
"""

from __future__ import annotations

import csv
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEMO_SEED = 2021
US_AREA_CODES = (201, 202, 206, 212, 213, 303, 305, 312, 404, 415, 503, 512, 617, 702, 713, 718)
_FIRST = ("Alex", "Sam", "Robin", "Kim", "Jo", "Chris", "Pat", "Lee", "Noa", "Ari", "Mika", "Toni")
_LAST = ("Doe", "Roe", "Poe", "Moe", "Loe", "Koe")
_CITY = ("Springfield", "Riverton", "Lakeside", "Hillview", "")
_REL = ("Single", "Married", "", "")
_INVALID_FB = ("1202555", "19995550123", "abc", "1" * 20, "0")
_INVALID_AU = ("0491 57", "not a number", "+61 0 000", "")


def us_pool() -> list[str]:
    """Every fictional North American number used here, E.164."""
    return [f"+1{npa}55501{i:02d}" for npa in US_AREA_CODES for i in range(100)]


def au_pool() -> list[str]:
    """Australia's fictional mobile range 0491 570 006…159, E.164."""
    return [f"+61491570{i:03d}" for i in range(6, 160)]


@dataclass
class Sample:
    """What was written, and the truth the pipeline should find."""

    inbox: Path
    subscribers_csv: Path
    numbers: set[str] = field(default_factory=set)  # every E.164 written anywhere
    distinct: dict[str, int] = field(default_factory=dict)  # breach id → distinct valid numbers
    rows: dict[str, int] = field(default_factory=dict)  # breach id → data rows written
    subscribers: int = 0
    expected_notices: int = 0


def write_sample(
    root: Path,
    *,
    seed: int = DEMO_SEED,
    us_distinct: int = 900,
    au_distinct: int = 140,
    subscribers_in_us: int = 60,
    subscribers_in_au: int = 12,
    subscribers_elsewhere: int = 8,
    us_k: int = 50,
    au_k: int = 10,
) -> Sample:
    """Write ``root/inbox/{demo-fb-us,demo-csv-au}`` and ``root/subscribers.csv``."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fiction, not secrecy
    inbox = root / "inbox"
    us_id, au_id = "demo-fb-us", "demo-csv-au"
    pool = us_pool()
    rng.shuffle(pool)
    us_numbers, us_rest = pool[:us_distinct], pool[us_distinct:]
    au_numbers = rng.sample(au_pool(), au_distinct)
    sample = Sample(inbox=inbox, subscribers_csv=root / "subscribers.csv")
    sample.numbers = set(us_numbers) | set(au_numbers)

    # Facebook-2021 style file: digits with the country code, colon separated, some noise.
    lines = [_fb_line(rng, n) for n in us_numbers]
    lines += [_fb_line(rng, n) for n in rng.sample(us_numbers, us_distinct // 15)]  # duplicates
    lines += [_fb_line(rng, "+" + bad) for bad in _INVALID_FB]
    rng.shuffle(lines)
    folder = inbox / us_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "breach.toml").write_text(
        f'title = "Synthetic social network scrape (fictional numbers)"\n'
        f'format = "facebook-2021"\nk = {us_k}\n',
        encoding="utf-8",
    )
    body = "".join(line + ("\r\n" if i % 7 == 0 else "\n") for i, line in enumerate(lines))
    (folder / "United States.txt").write_text(body + "\n", encoding="utf-8", newline="")
    sample.rows[us_id] = len(lines)
    sample.distinct[us_id] = len(us_numbers)

    # CSV with national and international forms, default region AU.
    folder = inbox / au_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "breach.toml").write_text(
        'title = "Synthetic loyalty-card export (fictional numbers)"\n'
        f'format = "csv"\nphone_column = "msisdn"\ndefault_region = "AU"\nk = {au_k}\n',
        encoding="utf-8",
    )
    rows = [[_au_form(rng, n), rng.choice(_FIRST), rng.choice(_CITY)] for n in au_numbers]
    rows += [[_au_form(rng, n), rng.choice(_FIRST), ""] for n in rng.sample(au_numbers, 10)]
    rows += [[bad, rng.choice(_FIRST), ""] for bad in _INVALID_AU]
    rng.shuffle(rows)
    with (folder / "members.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["msisdn", "first_name", "city"])
        writer.writerows(rows)
    sample.rows[au_id] = len(rows)
    sample.distinct[au_id] = len(au_numbers)

    # Subscribers: some in each breach, some in none.
    chosen = (
        rng.sample(us_numbers, subscribers_in_us)
        + rng.sample(au_numbers, subscribers_in_au)
        + rng.sample(us_rest, subscribers_elsewhere)
    )
    rng.shuffle(chosen)
    with sample.subscribers_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "language"])
        writer.writerows([n, "en"] for n in chosen)
    sample.numbers |= set(chosen)
    sample.subscribers = len(chosen)
    sample.expected_notices = subscribers_in_us + subscribers_in_au
    return sample


def _fb_line(rng: random.Random, e164: str) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    fields = [
        e164.lstrip("+"),
        "".join(rng.choice("ABCDEFGHJK") for _ in range(12)),  # an id that is not digits
        first,
        last,
        rng.choice(("male", "female", "")),
        rng.choice(_CITY),
        rng.choice(_CITY),
        rng.choice(_REL),
        rng.choice(("", "Example Corp", "Acme: Widgets")),
        rng.choice(("3/14/2018 12:00:00 AM", "")),
        rng.choice((f"{first.lower()}@example.org", "")),
        "",
    ]
    return ":".join(fields)


def _au_form(rng: random.Random, e164: str) -> str:
    nsn = e164[3:]
    return rng.choice((f"0{nsn[:3]} {nsn[3:6]} {nsn[6:]}", f"+61 {nsn[:3]} {nsn[3:6]} {nsn[6:]}"))


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    out = write_sample(Path(sys.argv[1]))
    print(
        f"wrote {out.inbox}, {out.subscribers_csv}: {out.distinct}, {out.subscribers} subscribers"
    )
