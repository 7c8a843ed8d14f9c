"""Readers and row SQL on every kind of dirt: colons in date and work, truncated, blank and CRLF
lines, a header line, invalid UTF-8, byte ranges, .gz and .zip, CSV dialects."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from breach_notify.errors import BadInput
from breach_notify.ingest import formats, rows
from breach_notify.kinds import BIT


def read_lines(shard: formats.Shard) -> list[str]:
    with formats.open_reader(shard, None, lambda n: None, lambda: None) as reader:
        return [line for b in reader for line in b.column("line").to_pylist()]


def parse(lines: list[str]) -> list[tuple[str, int, str | None]]:
    con = duckdb.connect()
    con.register("bn_src", pa.table({"line": lines}))
    return [tuple(r) for r in con.execute(rows.facebook_sql()).fetchall()]  # type: ignore[misc]


def shard_of(path: Path, **kw: object) -> formats.Shard:
    return formats.Shard(0, path, formats.content_digest(path), path.stat().st_size, **kw)  # type: ignore[arg-type]


FULL = (
    "33612345678:100012345:Ana:Berg:female:Lyon, France:Paris:Single:ACME:"
    "3/14/2018 12:00:00 AM:ana@example.org:1/2"
)
ALL_KINDS = sum(
    BIT[k]
    for k in (
        "account_id",
        "name",
        "gender",
        "location",
        "relationship",
        "work",
        "date",
        "email",
        "birthday",
    )
)


def test_full_line_with_date_colons() -> None:
    assert parse([FULL]) == [("33612345678", ALL_KINDS, None)]


def test_colons_in_work_and_empty_fields() -> None:
    line = "33612345678::::homme:::Married:Foo: Bar: lab:3/14/2018 12:00:00 AM::"
    kinds = BIT["gender"] | BIT["relationship"] | BIT["work"] | BIT["date"]
    assert parse([line]) == [("33612345678", kinds, None)]
    # no time in the date field, colons in work
    line = "33612345678:1:A:B:f:c:h:r:w1:w2::x@example.org:"
    kinds = (
        BIT["account_id"]
        | BIT["name"]
        | BIT["gender"]
        | BIT["location"]
        | BIT["relationship"]
        | BIT["work"]
        | BIT["email"]
    )
    assert parse([line]) == [("33612345678", kinds, None)]


def test_only_phone_and_empty_rest() -> None:
    assert parse(["33612345678:::::::::::"]) == [("33612345678", 0, None)]


def test_truncated_blank_header_empty_phone() -> None:
    out = parse(
        [
            "33612345678:1:Ana",
            "   ",
            "phone:id:first:last:gender:city:home:rel:work:date:email:bday",
            ":1:A:B:f:c:h:r:w:d:e:b",
            " 33612345678 :1:A:B:f:c:h:r:w:d:e:b",
        ]
    )
    assert [r[2] for r in out] == ["truncated_line", "_blank", "_header", "empty", None]
    assert out[4][0] == "33612345678"


def test_reader_crlf_blank_lines_invalid_utf8(tmp_path: Path) -> None:
    f = tmp_path / "Czech Republic.txt"
    f.write_bytes(
        FULL.encode() + b"\r\n\r\n" + b"420601123456:1:\xff\xfeJan:Nov\xe1k:mu\xc5\xbe:"
        b"Praha::::::" + b"\r\n" + b"\n" + FULL.encode()
    )
    lines = read_lines(shard_of(f))
    assert len(lines) == 3
    assert all("\r" not in line for line in lines)
    out = parse(lines)
    assert out[1][0] == "420601123456" and out[1][1] & BIT["name"]


@pytest.mark.parametrize("size", [1, 7, 50, 113, 4096])
def test_byte_ranges_cover_every_line_once(tmp_path: Path, size: int) -> None:
    f = tmp_path / "d.txt"
    body = [f"{i}:{'x' * (i % 13)}:y" for i in range(300)]
    f.write_text("\n".join(body) + "\n")
    shards = formats.plan_shards([f], "facebook-2021", shard_bytes=size)
    assert len(shards) > 1 or size == 4096
    got = [line for s in shards for line in read_lines(s)]
    assert got == body


def test_range_without_trailing_newline(tmp_path: Path) -> None:
    f = tmp_path / "d.txt"
    f.write_text("a:1\nb:2\nc:3")
    shards = formats.plan_shards([f], "facebook-2021", shard_bytes=3)
    assert [line for s in shards for line in read_lines(s)] == ["a:1", "b:2", "c:3"]


def test_gz_and_zip_read_in_place(tmp_path: Path) -> None:
    plain = FULL + "\n" + FULL.replace("336", "337") + "\n"
    gz = tmp_path / "d.txt.gz"
    gz.write_bytes(gzip.compress(plain.encode()))
    zp = tmp_path / "d.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("France.txt", plain)
        zf.writestr("Spain.txt", FULL + "\n")
    shards = formats.plan_shards([gz, zp], "facebook-2021")
    assert [s.label for s in shards] == ["d.txt.gz", "d.zip!France.txt", "d.zip!Spain.txt"]
    assert [len(read_lines(s)) for s in shards] == [2, 2, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.txt.gz", "d.zip"]


def test_directory_expansion_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(FULL)
    (tmp_path / ".hidden").write_text(FULL)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text(FULL)
    assert [p.name for p in formats.expand([tmp_path])] == ["a.txt", "b.txt"]


def test_missing_path_and_binary(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        formats.expand([tmp_path / "nope.txt"])
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(BadInput, match="binary"):
        formats.check_not_binary(shard_of(f), formats.head(shard_of(f)))


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_csv_sniffing_and_quoted_fields(tmp_path: Path, delim: str) -> None:
    f = tmp_path / "d.csv"
    f.write_text(
        f'name{delim}Phone{delim}e-mail\n"Berg{delim} Ana"{delim}+44 7700 900123{delim}'
        f'a@example.org\n"x""y"{delim}07700 900124{delim}\n'
    )
    shard = shard_of(f)
    layout = formats.sniff_csv(shard, formats.head(shard))
    assert layout.delimiter == delim and layout.columns == ("name", "Phone", "e-mail")
    with formats.open_reader(shard, layout, lambda n: None, lambda: None) as reader:
        table = pa.Table.from_batches(list(reader))
    assert table.column("c0").to_pylist() == [f"Berg{delim} Ana", 'x"y']
    con = duckdb.connect()
    con.register("bn_src", table)
    got = con.execute(rows.csv_sql(layout.columns, 1)).fetchall()
    assert got == [
        ("+44 7700 900123", BIT["name"] | BIT["email"], None),
        ("07700 900124", BIT["name"], None),
    ]


def test_csv_latin1_fallback(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_bytes(b"nom,phone\nJos\xe9,+33612345678\n")
    shard = shard_of(f)
    layout = formats.sniff_csv(shard, formats.head(shard))
    assert layout.encoding == "latin1"


def test_kind_of_column() -> None:
    assert [
        rows.kind_of_column(c)
        for c in ("First Name", "EMAIL", "dob", "City", "sex", "employer", "user_id", "whatever")
    ] == ["name", "email", "birthday", "location", "gender", "work", "account_id", "other"]


def test_same_content_twice_is_planned_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(FULL + "\n")
    (tmp_path / "copy of a.txt").write_text(FULL + "\n")
    shards = formats.plan_shards([tmp_path, tmp_path / "a.txt"], "facebook-2021")
    assert [s.path.name for s in shards] == ["a.txt"]


def _lines_within(data: bytes, limit: int) -> tuple[bytes, int, bool]:
    """The definition: ``data`` without its lines (ending at \\n or \\r) over ``limit`` bytes
    (their line ending too), how many there were, and whether the first was one."""
    kept: list[bytes] = []
    dropped, first_dropped = 0, False
    start = 0
    for i, b in enumerate(data + b"\n"):
        if b in b"\r\n":
            line = data[start:i]
            end = data[i : i + 1]
            if len(line) > limit:
                dropped += 1
                first_dropped = first_dropped or start == 0
            else:
                kept.append(line + end)
            start = i + 1
    return b"".join(kept), dropped, first_dropped


@pytest.mark.parametrize("seed", range(40))
def test_line_limit_drops_exactly_the_over_long_lines(seed: int) -> None:
    import io
    import random

    rng = random.Random(seed)
    limit = rng.choice([1, 2, 5, 16, 64])
    parts = []
    for _ in range(rng.randint(0, 30)):
        parts.append(b"x" * rng.choice([0, 1, limit - 1, limit, limit + 1, 3 * limit, 200]))
        parts.append(rng.choice([b"\n", b"\r\n", b"\r"]))
    if rng.random() < 0.5 and parts:
        parts.pop()  # no final line ending
    data = b"".join(parts)
    seen: list[bool] = []
    stream = formats._LineLimit(io.BytesIO(data), limit, seen.append)
    got = io.BufferedReader(stream, rng.choice([1, 3, 4096])).read()
    want, dropped, first = _lines_within(data, limit)
    assert got == want
    assert len(seen) == dropped and (seen[:1] == [True]) == first


def test_scan_bounds_the_longest_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line bound is never below the longest line, and exact above the read block."""
    import random

    monkeypatch.setattr(formats, "_DIGEST_BLOCK", 64)
    monkeypatch.setattr(formats, "DIGEST_CHUNK", 256)
    rng = random.Random(5)
    for _ in range(60):
        lines = [b"y" * rng.choice([0, 3, 63, 64, 65, 200, 700]) for _ in range(rng.randint(1, 9))]
        data = b"\n".join(lines) + rng.choice([b"", b"\n"])
        f = tmp_path / "f.txt"
        f.write_bytes(data)
        longest = max(len(line) for line in lines)
        bound = formats.scan(f).line_bound
        assert bound >= longest
        if longest > 64:
            assert bound == longest
