"""``ingest``, ``breaches list`` and ``breaches show`` through the real command line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.privacy import scan
from support.synthetic import Truth, write_facebook

INGEST_FIELDS = {
    "breach",
    "rows_read",
    "rows_invalid",
    "invalid_by_reason",
    "rows_duplicate",
    "distinct_numbers",
    "new_numbers",
    "prefix_bits",
    "k",
    "min_bucket",
    "seconds",
}


@pytest.fixture
def dump(tmp_path: Path) -> tuple[Path, Truth]:
    f = tmp_path / "Czech Republic.txt"
    return f, write_facebook(f, 1500, seed=21, regions=("CZ", "SK", "GB"))


def _no_plaintext(home: Path, truth: Truth, cli: Callable[..., Any]) -> None:
    texts = [t for r in cli.captured for t in (r.stdout, r.stderr)]  # type: ignore[attr-defined]
    sample = sorted(set(truth.numbers))[::10]
    assert scan([home], sample, texts) == []


def test_ingest_json_and_rerun(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    assert cli("keys", "init").code == 0
    res = cli(
        "ingest", str(path), "--breach", "fb-cz", "--title", "Facebook CZ", "--k", "20", "--json"
    )
    assert res.code == 0, res.stderr
    d = res.json
    assert set(d) >= INGEST_FIELDS
    assert (d["breach"], d["rows_read"], d["distinct_numbers"], d["new_numbers"], d["k"]) == (
        "fb-cz",
        truth.rows_read,
        truth.distinct,
        truth.distinct,
        20,
    )
    assert d["invalid_by_reason"] == dict(sorted(truth.invalid_by_reason.items()))
    assert "ingest" in res.stderr  # the progress bar goes to stderr
    again = cli("ingest", str(path.parent), "--breach", "fb-cz", "--json")
    assert again.code == 0 and again.json["new_numbers"] == 0 and again.json["files_skipped"] == 1
    listed = cli("breaches", "list", "--json")
    assert listed.code == 0
    [b] = listed.json["breaches"]
    assert (b["breach"], b["title"], b["distinct_numbers"], b["k"]) == (
        "fb-cz",
        "Facebook CZ",
        truth.distinct,
        20,
    )
    shown = cli("breaches", "show", "fb-cz", "--json")
    assert shown.code == 0
    s = shown.json
    assert INGEST_FIELDS - {"new_numbers", "seconds"} <= set(s)
    assert set(s["exposed"]) <= {
        "account_id",
        "name",
        "gender",
        "location",
        "relationship",
        "work",
        "date",
        "email",
        "birthday",
        "other",
    }
    assert all(n >= 20 for n in s["exposed"].values())
    human = cli("breaches", "show", "fb-cz")
    assert human.code == 0 and "fb-cz" in human.stdout
    _no_plaintext(home, truth, cli)


def test_exit_codes(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    assert cli("keys", "init").code == 0
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(bytes(range(256)) * 100)
    cases = [
        ("ingest", str(tmp_path / "missing.txt"), "--breach", "x", "--json"),
        ("ingest", str(garbage), "--breach", "x", "--json"),
        ("ingest", str(path), "--breach", "x", "--format", "xml", "--json"),
        ("ingest", str(path), "--breach", "x", "--format", "csv", "--json"),
        ("ingest", str(path), "--json"),
        ("breaches", "show", "nope", "--json"),
    ]
    for args in cases:
        res = cli(*args)
        assert res.code == 2, (args, res.stderr)
        assert "error" in res.json
    assert cli("breaches", "list", "--json").json == {"breaches": []}
    _no_plaintext(home, truth, cli)


def test_ingest_without_keyring_is_exit_2(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    res = cli("ingest", str(path), "--breach", "x", "--json")
    assert res.code == 2 and "keys init" in res.json["error"]
    _no_plaintext(home, truth, cli)


def test_markup_in_titles_is_shown_literally(
    cli: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    f = tmp_path / "small.txt"
    truth = write_facebook(f, 60, seed=3, regions=("GB",))
    title = "[/x] [link=https://evil.example]x[/link] [bold]b"
    assert cli("keys", "init").code == 0
    res = cli("ingest", str(f), "--breach", "odd", "--title", title, "--k", "1", "--json")
    assert res.code == 0, res.stderr
    wide = {"COLUMNS": "300"}
    for args in (("status",), ("breaches", "list"), ("breaches", "show", "odd")):
        shown = cli(*args, env=wide)
        assert shown.code == 0, (args, shown.stderr)
        assert title in shown.stdout, args
        assert "\x1b]8;" not in shown.stdout  # no hyperlink escape
    assert cli("breaches", "list", "--json").json["breaches"][0]["title"] == title
    _no_plaintext(home, truth, cli)


def test_markdown_report_escapes_titles() -> None:
    from breach_notify.store.report import markdown

    title = "[click](https://evil.example) <img src=x> | ![i](y)"
    summary = {
        "breaches": [
            {
                "breach": "b_1",
                "title": title,
                "rows": 1,
                "invalid": 0,
                "duplicate": 0,
                "distinct": 1,
                "new": 1,
                "k": 1,
                "exposed": {},
            }
        ],
        "notices": {},
        "notices_total": 0,
        "notice_k": 5,
        "subscribers_total": 0,
    }
    text = markdown(summary, {})
    row = next(line for line in text.splitlines() if "evil" in line)
    # The title's Markdown punctuation is backslash-escaped: no link, image, HTML, and
    # its '|' does not start a cell (8 cells between unescaped pipes).
    escaped = r"\[click\]\(https://evil.example\) \<img src=x\> \| \!\[i\]\(y\)"
    assert f"| {escaped} |" in row and row.startswith(r"| b\_1 |")
    assert len(re.split(r"(?<!\\)\|", row)) == 10


def test_titles_and_ids_with_a_phone_number_are_refused(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    assert cli("keys", "init").code == 0
    cases = [
        (("--breach", "fb", "--title", "Leak +44 7911 123456"), "--title"),
        (("--breach", "fb", "--title", "07911 123456 leak"), "--title"),
        (("--breach", "fb", "--title", "t" * 201), "at most 200 characters"),
        (("--breach", "fb", "--title", "bell\x07"), "control characters"),
        (("--breach", "fb-447911123456"), "breach id contains a phone number"),
    ]
    for args, named in cases:
        res = cli("ingest", str(path), *args, "--json")
        assert res.code == 2, (args, res.stderr)
        assert res.stdout.count("\n") == 1 and named in res.json["error"], args
        assert "7911" not in res.stdout + res.stderr
    assert cli("breaches", "list", "--json").json == {"breaches": []}
    texts = [t for r in cli.captured for t in (r.stdout, r.stderr)]  # type: ignore[attr-defined]
    assert scan([home], ["+447911123456"], texts) == []
    _no_plaintext(home, truth, cli)


def test_breach_toml_title_with_a_phone_number_is_refused(tmp_path: Path) -> None:
    from breach_notify.errors import BadInput
    from breach_notify.ingest.inbox import read_folder

    folder = tmp_path / "inbox" / "fb-gb"
    folder.mkdir(parents=True)
    (folder / "breach.toml").write_text(
        'title = "Leak +44 7911 123456"\nformat = "facebook-2021"\n'
    )
    with pytest.raises(BadInput, match=r"breach\.toml: .*title") as info:
        read_folder(folder)
    assert "7911" not in str(info.value)
    (folder / "breach.toml").write_text('title = "Leak (GB)"\nformat = "facebook-2021"\n')
    assert read_folder(folder).options.title == "Leak (GB)"


def test_inbox_folder_named_with_a_phone_number_is_refused_without_quoting_it(
    tmp_path: Path,
) -> None:
    from breach_notify.errors import BadInput
    from breach_notify.ingest.inbox import read_inbox

    folder = tmp_path / "inbox" / "fb-447911123456"
    folder.mkdir(parents=True)
    (folder / "breach.toml").write_text('title = "Leak"\nformat = "facebook-2021"\n')
    with pytest.raises(BadInput, match="breach id") as info:
        read_inbox(tmp_path / "inbox")
    assert "7911" not in str(info.value)


def test_breach_id_with_a_trailing_newline_is_exit_2(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    assert cli("keys", "init").code == 0
    res = cli("ingest", str(path), "--breach", "fb\n", "--json")
    assert res.code == 2 and "breach id" in res.json["error"]
    assert cli("breaches", "list", "--json").json == {"breaches": []}
    _no_plaintext(home, truth, cli)


def test_corrupt_archives_are_exit_2_with_one_json_object(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    """A truncated .gz and a zip member with a bad CRC: exit 2 naming the file and the problem,
    and ``--json`` still prints exactly one JSON object."""
    import gzip
    import json
    import zipfile

    path, truth = dump
    data = path.read_bytes()
    gz = tmp_path / "cut.txt.gz"
    packed = gzip.compress(data)
    gz.write_bytes(packed[: len(packed) // 2])
    zp = tmp_path / "crc.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("dump.txt", data)
    raw = bytearray(zp.read_bytes())
    raw[raw.index(data[:64]) + len(data) // 2] ^= 0x01
    zp.write_bytes(bytes(raw))
    assert cli("keys", "init").code == 0
    for archive, problem in ((gz, "truncated"), (zp, "bad CRC-32")):
        res = cli("ingest", str(archive), "--breach", "x", "--json")
        assert res.code == 2, res.stderr
        [line] = res.stdout.strip().splitlines()
        error = json.loads(line)["error"]
        assert archive.name in error and problem in error
    assert cli("breaches", "list", "--json").json == {"breaches": []}
    _no_plaintext(home, truth, cli)


def test_k_beyond_any_table_is_exit_2_naming_the_range(
    cli: Callable[..., Any], home: Path, dump: tuple[Path, Truth]
) -> None:
    """Not 'check disk space' after the whole run: exit 2 at once, with the range to use."""
    path, truth = dump
    assert cli("keys", "init").code == 0
    res = cli("ingest", str(path), "--breach", "x", "--k", str(10**12), "--json")
    assert res.code == 2, res.stderr
    assert "from 1 to 2^31 - 1" in res.json["error"]
    assert cli("breaches", "list", "--json").json == {"breaches": []}
    _no_plaintext(home, truth, cli)


def test_decompression_bomb_is_exit_2_naming_the_setting(
    cli: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    import gzip

    bomb = tmp_path / "bomb.txt.gz"
    with gzip.GzipFile(bomb, "wb", compresslevel=1) as gz:
        for _ in range(200):
            gz.write(b"33612345678:1:Ana:::::::::\n" * 40000)
    assert cli("keys", "init").code == 0
    res = cli("ingest", str(bomb), "--breach", "x", "--json")
    assert res.code == 2, res.stderr
    assert "bomb.txt.gz" in res.json["error"]
    assert "BREACH_NOTIFY_MAX_COMPRESSION_RATIO" in res.json["error"]
    assert cli("breaches", "list", "--json").json == {"breaches": []}
