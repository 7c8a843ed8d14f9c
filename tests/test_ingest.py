"""The ingest stage end to end: exact counts against row-by-row truth, idempotence, added files,
shards = whole, .gz/.zip, CSV, bad input, all-or-nothing (injected failure and kill -9), buckets.
Every test that writes a store ends with the plaintext scan."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.privacy import scan
from support.synthetic import BIT, Truth, reference_facebook, write_csv, write_facebook

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.ingest import (
    IngestOptions,
    IngestReport,
    IngestSpec,
    ingest,
    merge,
    merge_shards,
    plan_shards,
    process_shard,
)
from breach_notify.settings import Settings
from breach_notify.store.db import session


def store(settings: Settings) -> dict[str, Any]:
    with session(settings) as conn:
        return {
            "breaches": conn.execute("SELECT * FROM breaches ORDER BY id").fetchall(),
            "files": conn.execute(
                "SELECT breach_id, content_sha256, name, bytes, rows_read"
                " FROM breach_files ORDER BY ALL"
            ).fetchall(),
            "pseudonyms": conn.execute(
                "SELECT breach_id, pseudonym, kinds FROM breach_pseudonyms ORDER BY ALL"
            ).fetchall(),
        }


def pseudonyms(settings: Settings, breach: str) -> dict[bytes, int]:
    """Pseudonym -> kinds of a breach; checks each row's bucket prefix on the way."""
    with session(settings) as conn:
        rows = conn.execute(
            "SELECT pseudonym, kinds, prefix FROM breach_pseudonyms WHERE breach_id = ?", [breach]
        ).fetchall()
    assert all(prefix == int.from_bytes(p[:4], "big") for p, _, prefix in rows)
    return {p: k for p, k, _ in rows}


def assert_matches(
    report: IngestReport, truth: Truth, keyring: Keyring, settings: Settings
) -> None:
    assert report.rows_read == truth.rows_read
    assert report.invalid_by_reason == dict(sorted(truth.invalid_by_reason.items()))
    assert report.rows_invalid == truth.rows_invalid
    assert report.rows_duplicate == truth.rows_duplicate
    assert report.distinct_numbers == report.new_numbers == truth.distinct
    p = keyring.pseudonymizer()
    assert pseudonyms(settings, report.breach) == {
        p.pseudonym(e): k for e, k in truth.kinds.items()
    }


def no_plaintext(settings: Settings, truth: Truth, *texts: str) -> None:
    """The plaintext scan, on a fixed sample of the dump's numbers (the scan is quadratic; a
    leak would be systematic, not per number)."""
    sample = sorted(set(truth.numbers))[:: max(1, len(set(truth.numbers)) // 150)]
    assert scan([settings.home], sample, texts) == []


@pytest.fixture
def dump(tmp_path: Path) -> tuple[Path, Truth]:
    f = tmp_path / "in" / "France.txt"
    f.parent.mkdir()
    return f, write_facebook(f, 3000, seed=11)


def test_dirty_facebook_dump_exact_counts(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    report = ingest(settings, keyring, [path], IngestOptions("fb", title="Facebook 2021 FR"))
    assert_matches(report, truth, keyring, settings)
    assert report.files == 1 and report.header_lines == 1
    assert set(report.as_dict()) >= {
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
        "files_skipped",
    }
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


def test_crlf_dump_exact_counts(settings: Settings, keyring: Keyring, tmp_path: Path) -> None:
    f = tmp_path / "crlf.txt"
    truth = write_facebook(f, 1500, seed=5, crlf=True, header=False)
    report = ingest(settings, keyring, [f], IngestOptions("crlf"))
    assert_matches(report, truth, keyring, settings)
    no_plaintext(settings, truth)


def test_rerun_changes_nothing(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    ingest(settings, keyring, [path], IngestOptions("fb"))
    before = store(settings)
    again = ingest(settings, keyring, [path.parent], IngestOptions("fb"))
    assert again.new_numbers == 0 and again.rows_read == 0 and again.files_skipped == 1
    assert again.distinct_numbers == truth.distinct
    assert store(settings) == before
    no_plaintext(settings, truth)


def test_added_file_adds_only_new_and_ors_kinds(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ta = write_facebook(a, 1200, seed=1, regions=("FR",))
    tb = write_facebook(b, 1200, seed=2, regions=("FR",))
    ingest(settings, keyring, [a], IngestOptions("fb"))
    report = ingest(settings, keyring, [a, b], IngestOptions("fb"))
    assert report.files_skipped == 1 and report.rows_read == tb.rows_read
    assert report.new_numbers == len(set(tb.kinds) - set(ta.kinds))
    union = dict(ta.kinds)
    for e, k in tb.kinds.items():
        union[e] = union.get(e, 0) | k
    p = keyring.pseudonymizer()
    assert pseudonyms(settings, "fb") == {p.pseudonym(e): k for e, k in union.items()}
    with session(settings) as conn:
        row = conn.execute("SELECT rows_read, distinct_numbers FROM breaches").fetchone()
    assert row == (ta.rows_read + tb.rows_read, len(union))
    no_plaintext(settings, Truth(numbers=ta.numbers + tb.numbers))


def test_byte_range_shards_give_the_same_result(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    spec = IngestSpec.of(settings, IngestOptions("fb"))
    shards = plan_shards([path], "facebook-2021", shard_bytes=20_000)
    assert len(shards) > 5
    out = tmp_path / "parts"
    kid = keyring.active_id("pseudonym")
    results = [process_shard(s, settings.keyring_path, kid, spec, out) for s in shards]
    report = merge_shards(settings, spec, results)
    assert_matches(report, truth, keyring, settings)
    no_plaintext(settings, truth)
    assert scan([out], sorted(set(truth.numbers))[:150]) == []


def test_gz_and_zip(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    gz = tmp_path / "France.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    report = ingest(settings, keyring, [gz], IngestOptions("gz"))
    assert_matches(report, truth, keyring, settings)
    zp = tmp_path / "dump.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "France.txt")
    report = ingest(settings, keyring, [zp], IngestOptions("zip"))
    assert_matches(report, truth, keyring, settings)
    assert list(settings.tmp_dir.iterdir()) == []
    no_plaintext(settings, truth)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_with_default_region(
    settings: Settings, keyring: Keyring, tmp_path: Path, delimiter: str
) -> None:
    f = tmp_path / "list.csv"
    truth = write_csv(f, 1500, region="GB", seed=3, delimiter=delimiter, phone_column="Mobile")
    options = IngestOptions("csv", fmt="csv", default_region="gb", phone_column="mobile")
    report = ingest(settings, keyring, [f], options)
    assert_matches(report, truth, keyring, settings)
    no_plaintext(settings, truth)


def test_csv_missing_phone_column(settings: Settings, keyring: Keyring, tmp_path: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text("name,email\nAna,a@example.org\n")
    with pytest.raises(BadInput, match=r"list\.csv.*phone column"):
        ingest(settings, keyring, [f], IngestOptions("csv", fmt="csv"))
    with pytest.raises(BadInput, match="--phone-column"):
        ingest(settings, keyring, [f], IngestOptions("csv", fmt="csv", phone_column="tel"))
    assert store(settings)["breaches"] == []


def test_bad_inputs_leave_store_unchanged(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    ingest(settings, keyring, [path], IngestOptions("fb"))
    before = store(settings)
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(os.urandom(50_000))
    csv = tmp_path / "list.csv"
    write_csv(csv, 300, seed=1)
    cases = [
        ([tmp_path / "missing.txt"], "fb", {}, "no such file"),
        ([path, garbage], "fb", {}, "garbage.txt"),
        ([csv], "fb", {}, "list.csv"),  # a CSV declared as facebook-2021
        ([path], "fb", {"fmt": "xml"}, "unknown format"),
        ([path], "fb", {"default_region": "XX"}, "unknown region"),
        ([path], "bad id!", {}, "breach id"),
    ]
    for paths, breach, kw, message in cases:
        with pytest.raises(BadInput, match=message) as info:
            ingest(settings, keyring, paths, IngestOptions(breach, **kw))
        assert scan([], truth.numbers, [str(info.value)]) == []
        assert store(settings) == before
    no_plaintext(settings, truth)


def test_injected_failure_before_commit_leaves_store_unchanged(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, truth = dump
    before = store(settings)

    def boom() -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(merge, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        ingest(settings, keyring, [path], IngestOptions("fb"))
    assert store(settings) == before
    monkeypatch.undo()
    assert_matches(ingest(settings, keyring, [path], IngestOptions("fb")), truth, keyring, settings)
    no_plaintext(settings, truth)


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from breach_notify.crypto import Keyring
from breach_notify.settings import Settings
from breach_notify.ingest import IngestOptions, ingest, merge
home, path, marker = map(Path, sys.argv[1:4])
def hold():
    marker.write_text("in transaction")
    time.sleep(120)
merge._before_commit = hold
s = Settings(home=home)
ingest(s, Keyring.load(s.keyring_path), [path], IngestOptions("fb"))
"""


@pytest.mark.slow
def test_kill_9_mid_merge_leaves_store_unchanged(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    before = store(settings)
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(settings.home), str(path), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert store(settings) == before
    assert list(settings.tmp_dir.glob("ingest-*")) == []  # no debris to clean up
    assert_matches(ingest(settings, keyring, [path], IngestOptions("fb")), truth, keyring, settings)
    no_plaintext(settings, truth)


def _largest_l(values: list[bytes], k: int) -> tuple[int, int]:
    n = len(values)
    best = (0, n)
    for bits in range(1, 33):
        if n < k * 2**bits:
            break
        counts: dict[int, int] = {}
        for v in values:
            b = int.from_bytes(v[:4], "big") >> (32 - bits)
            counts[b] = counts.get(b, 0) + 1
        if len(counts) == 2**bits and min(counts.values()) >= k:
            best = (bits, min(counts.values()))
    return best


@pytest.mark.parametrize("k", [1, 10, 50, 5000])
def test_buckets_are_the_largest_k_anonymous_prefix(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], k: int
) -> None:
    path, truth = dump
    report = ingest(settings, keyring, [path], IngestOptions("fb", k=k))
    values = list(pseudonyms(settings, "fb"))
    bits, smallest = _largest_l(values, k)
    assert (report.prefix_bits, report.min_bucket, report.k) == (bits, smallest, k)
    if k > truth.distinct:
        assert report.prefix_bits == 0
    no_plaintext(settings, truth)


def test_breach_summary_suppresses_small_cells(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    f = tmp_path / "d.txt"
    f.write_text(
        "33612345678:1:Ana:::::::::\n33612345679:2:Bo:::::::::\n33612345670:3:Cy:B:female:::::::\n"
    )
    ingest(settings, keyring, [f], IngestOptions("tiny", k=3))
    from breach_notify.ingest import breach_summary

    with session(settings) as conn:
        s = breach_summary(conn, "tiny")
    assert s["distinct_numbers"] == 3 and s["prefix_bits"] == 0 and s["min_bucket"] == 3
    assert s["exposed"] == {"account_id": 3, "name": 3}
    assert s["exposed_suppressed"] == ["gender"]
    with session(settings) as conn, pytest.raises(BadInput):
        breach_summary(conn, "nope")
    no_plaintext(settings, Truth(numbers=["+33612345678", "+33612345679", "+33612345670"]))


@pytest.mark.slow
def test_memory_limit_much_smaller_than_the_dump(tmp_path: Path) -> None:
    from support.synthetic import write_facebook_fast

    settings = Settings(home=tmp_path / "home", memory_limit="64MB", threads=2)
    settings.ensure_home()
    keyring = Keyring.create(settings.keyring_path)
    f = tmp_path / "big.txt"
    write_facebook_fast(f, 1_500_000, seed=3)
    assert f.stat().st_size > 2 * 64 * 2**20
    report = ingest(settings, keyring, [f], IngestOptions("big"))
    assert report.rows_read == 1_500_000
    with duckdb.connect(str(settings.db_path), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM breach_pseudonyms").fetchone()
    assert row is not None and row[0] == report.distinct_numbers
    with f.open() as fh:
        heads = [fh.readline().split(":", 1)[0] for _ in range(200)]
    sample = [v for v, _ in (reference_facebook(h) for h in heads) if v is not None]
    assert len(sample) > 100
    # the scan reads every stored value: 1.4M pseudonyms x needles, so a few numbers only
    assert scan([settings.home], sample[:3]) == []


def test_sql_hmac_and_python_midstate_hmac_write_the_same_shards(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, _ = dump
    spec = IngestSpec.of(settings, IngestOptions("fb"))
    [shard] = plan_shards([path], "facebook-2021")
    kid = keyring.active_id("pseudonym")
    out = {}
    for mode in (True, False):
        d = tmp_path / f"sql-{mode}"
        r = process_shard(shard, settings.keyring_path, kid, spec, d, hmac_in_sql=mode)
        with duckdb.connect() as con:
            rows = con.execute(
                f"SELECT pseudonym, kinds, prefix FROM read_parquet('{d}/*.parquet') ORDER BY ALL"
            ).fetchall()
        out[mode] = (rows, r.rows_read, r.invalid_by_reason, r.valid_rows)
    assert out[True] == out[False]


@pytest.fixture
def small_files_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small plain files through DuckDB's own reader too (as big ones go)."""
    import breach_notify.ingest as ingest_package

    monkeypatch.setattr(ingest_package, "SMALL_FILE_BYTES", 0)


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.usefixtures("small_files_direct")
def test_duckdb_reader_path_equals_arrow_path(
    settings: Settings,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crlf: bool,
) -> None:
    """Valid UTF-8 dumps go through DuckDB's own reader (``duckdb_reader``): same report and
    pseudonyms as the Arrow path, including values only phonenumbers decides (fullwidth digits)."""
    from breach_notify.ingest import duckdb_reader as direct

    f = tmp_path / "utf8.txt"
    write_facebook(f, 3000, seed=13, crlf=crlf)
    nl = b"\r\n" if crlf else b"\n"
    extra = (
        " \uff13\uff13\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18:1:\u00e9:::::::::"
    ).encode()
    unit_sep = b"33612345678:1:A\x1fB:::::::::" + nl + b"336\x1f:1" + nl  # Arrow: bad_line
    f.write_bytes(f.read_bytes().replace(b"\xff\xfe", b"") + extra + nl + unit_sep)
    used = []
    real = direct.process_file

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(direct, "process_file", spy)
    fast = ingest(settings, keyring, [f], IngestOptions("fast")).as_dict()
    assert used == [1]
    monkeypatch.setattr(direct, "eligible", lambda spec, shards: False)
    slow = ingest(settings, keyring, [f], IngestOptions("slow")).as_dict()
    assert used == [1]
    for d in (fast, slow):
        d.pop("seconds")
        d.pop("breach")
    assert fast == slow and fast["python_decided"] > 0
    assert fast["invalid_by_reason"]["bad_line"] == 2
    assert pseudonyms(settings, "fast") == pseudonyms(settings, "slow")


def test_pseudonyms_are_stored_without_string_compression(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth]
) -> None:
    """DuckDB would pick DICT_FSST for the random pseudonyms (costly, nothing gained); the store
    turns string compression off."""
    path, truth = dump
    ingest(settings, keyring, [path], IngestOptions("fb"))
    no_plaintext(settings, truth)
    with session(settings) as conn:
        conn.execute("CHECKPOINT")
        used = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT compression FROM pragma_storage_info('breach_pseudonyms')"
                " WHERE column_name = 'pseudonym'"
            ).fetchall()
        }
    assert used and not used & {"DICT_FSST", "FSST", "Dictionary"}


def _with_c1_bytes(path: Path, every: int = 150) -> None:
    """Put a 0x85 byte (invalid UTF-8, refused by DuckDB's Latin-1) into the first-name field of
    every ``every``-th data line: verdicts and kinds are unchanged."""
    lines = path.read_bytes().split(b"\n")
    for i in range(1, len(lines), every):
        parts = lines[i].split(b":")
        if len(parts) >= 12 and parts[2]:
            parts[2] = b"\x85" + parts[2]
            lines[i] = b":".join(parts)
    path.write_bytes(b"\n".join(lines))


@pytest.mark.usefixtures("small_files_direct")
def test_undecodable_lines_are_read_again_on_the_fast_path(
    settings: Settings,
    keyring: Keyring,
    dump: tuple[Path, Truth],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from breach_notify.ingest import arrow_reader

    path, truth = dump
    _with_c1_bytes(path)
    assert path.read_bytes().count(b"\x85") >= 10

    def no_slow_path(shards: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        assert shards == [], "the file left DuckDB's reader for the Arrow path"
        return []

    monkeypatch.setattr(arrow_reader, "read_shards", no_slow_path)
    report = ingest(settings, keyring, [path], IngestOptions("fb"))
    assert_matches(report, truth, keyring, settings)
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


@pytest.mark.usefixtures("small_files_direct")
def test_unaccounted_lines_send_the_file_to_the_arrow_path(
    settings: Settings,
    keyring: Keyring,
    dump: tuple[Path, Truth],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the skipped lines and the emitted rows do not add up to the file's lines, the file is
    read by the Arrow path instead (same exact counts)."""
    from breach_notify.ingest import arrow_reader
    from breach_notify.ingest import duckdb_reader as direct

    path, truth = dump
    _with_c1_bytes(path)

    real = direct._lines_at
    monkeypatch.setattr(direct, "_lines_at", lambda p, n: (real(p, n)[0], 10**9))
    slow: list[int] = []
    read_shards = arrow_reader.read_shards

    def spy(shards: list[Any], *args: Any, **kwargs: Any) -> Any:
        slow.append(len(shards))
        return read_shards(shards, *args, **kwargs)

    monkeypatch.setattr(arrow_reader, "read_shards", spy)
    report = ingest(settings, keyring, [path], IngestOptions("fb"))
    assert slow and slow[0] > 0
    assert_matches(report, truth, keyring, settings)
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


def test_lines_at_across_scan_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from breach_notify.ingest import duckdb_reader as direct

    rng = random.Random(3)
    for block in (1, 2, 7, 64, 4096):
        monkeypatch.setattr(direct, "_SCAN_BLOCK", block)
        for trailing in (b"", b"\n"):
            lines = [
                bytes(rng.choice(b"ab\r") for _ in range(rng.randint(0, 9))) for _ in range(40)
            ]
            data = b"\n".join(lines) + trailing
            f = tmp_path / "f.txt"
            f.write_bytes(data)
            expected = data.split(b"\n")
            if data.endswith(b"\n"):
                expected.pop()
            wanted = sorted({*rng.sample(range(1, len(expected) + 1), 12), 1, len(expected)})
            got, total = direct._lines_at(f, wanted)
            assert total == len(expected)
            assert got == [expected[i - 1] for i in wanted]


def test_breach_id_with_a_trailing_newline_is_refused(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    """``fb\\n`` and ``fb`` would be two breaches that list alike: one rule, matched whole,
    refuses it wherever an id comes in (options, inbox folder names)."""
    from breach_notify.ingest import inbox

    path, truth = dump
    for bad in ("fb\n", "fb\r\n", "\nfb", "fb\n\n"):
        with pytest.raises(BadInput, match="breach id"):
            ingest(settings, keyring, [path], IngestOptions(bad))
        folder = tmp_path / "inbox" / bad
        folder.mkdir(parents=True)
        (folder / "breach.toml").write_text('title = "T"\nformat = "facebook-2021"\n')
        with pytest.raises(BadInput, match="breach id"):
            inbox.read_folder(folder)
    assert store(settings)["breaches"] == []
    no_plaintext(settings, truth)


def test_a_shard_writes_one_parquet_file(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    """The distributed runner's worker writes one file per shard (no hash partitions that
    nothing reads), and the merge of those files gives the exact counts."""
    path, truth = dump
    spec = IngestSpec.of(settings, IngestOptions("fb"))
    shards = plan_shards([path], "facebook-2021", shard_bytes=100_000)
    out = tmp_path / "parts"
    kid = keyring.active_id("pseudonym")
    results = [process_shard(s, settings.keyring_path, kid, spec, out) for s in shards]
    assert [len(r.files) for r in results] == [1] * len(shards)
    assert sorted(out.rglob("*")) == sorted(f for r in results for f in r.files)
    assert_matches(merge_shards(settings, spec, results), truth, keyring, settings)
    no_plaintext(settings, truth)


LONG = 6 << 20  # over the default limit (1 MiB), over Arrow's block and DuckDB's buffer share


def _insert_lines(path: Path, lines: list[bytes], at: list[int]) -> None:
    """Put ``lines[i]`` before line ``at[i]`` of ``path`` (0: first)."""
    rows = path.read_bytes().split(b"\n")
    for line, index in sorted(zip(lines, at, strict=True), key=lambda x: -x[1]):
        rows.insert(index, line)
    path.write_bytes(b"\n".join(rows))


@pytest.mark.parametrize("case", ["txt", "txt-direct", "txt-shards", "gz", "zip"])
def test_over_long_lines_are_counted_and_the_rest_ingested(
    settings: Settings,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """One rule for every reader: a line over ``max_line_bytes`` counts as ``line_too_long``
    (even when it starts with a valid number) and every other line is read."""
    import breach_notify.ingest as ingest_package
    from breach_notify.ingest import formats as formats_mod

    f = tmp_path / "long.txt"
    truth = write_facebook(f, 400, seed=7, header=False)
    noise = base64.b64encode(os.urandom(LONG))[:LONG]  # no line ending, hardly compressible
    long_line = b"33612345678:1:" + noise
    _insert_lines(f, [long_line, long_line + b":x", b"44" * (LONG // 2)], [0, 150, 300])
    path = f
    if case == "txt-direct":  # a big plain file, the kind DuckDB's reader takes
        monkeypatch.setattr(ingest_package, "SMALL_FILE_BYTES", 0)
    if case == "txt-shards":  # byte ranges, a long line across a range's end
        monkeypatch.setattr(formats_mod, "SHARD_BYTES", 1 << 20)
    if case == "gz":
        path = tmp_path / "long.txt.gz"
        path.write_bytes(gzip.compress(f.read_bytes(), compresslevel=1))
    if case == "zip":
        path = tmp_path / "long.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(f, "long.txt")
    report = ingest(settings, keyring, [path], IngestOptions("fb"))
    if case == "txt-shards":
        assert report.shards > 3
    expected = Truth(
        rows_read=truth.rows_read + 3,
        invalid_by_reason=truth.invalid_by_reason + Counter({"line_too_long": 3}),
        kinds=truth.kinds,
        valid_rows=truth.valid_rows,
    )
    assert_matches(report, expected, keyring, settings)
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


@pytest.mark.parametrize("where", ["first-row", "mid-file"])
def test_over_long_csv_rows_are_counted_and_the_rest_ingested(
    settings: Settings, keyring: Keyring, tmp_path: Path, where: str
) -> None:
    f = tmp_path / "list.csv"
    truth = write_csv(f, 500, region="GB", seed=4)
    row = b"Ana,+447400123456,someone@example.org," + b"x" * LONG
    _insert_lines(f, [row], [1 if where == "first-row" else 250])
    options = IngestOptions("csv", fmt="csv", default_region="GB")
    report = ingest(settings, keyring, [f], options)
    expected = Truth(
        rows_read=truth.rows_read + 1,
        invalid_by_reason=truth.invalid_by_reason + Counter({"line_too_long": 1}),
        kinds=truth.kinds,
        valid_rows=truth.valid_rows,
    )
    assert_matches(report, expected, keyring, settings)
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


def test_csv_header_longer_than_the_limit_is_refused(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    """Without its header a CSV has no columns: exit 2, naming the setting to raise."""
    f = tmp_path / "list.csv"
    f.write_bytes(b"name,phone," + b"c" * LONG + b"\nAna,+447400123456,x\n")
    with pytest.raises(BadInput, match=r"list\.csv.*header.*BREACH_NOTIFY_MAX_LINE_BYTES"):
        ingest(settings, keyring, [f], IngestOptions("csv", fmt="csv"))
    assert store(settings)["breaches"] == []


def test_max_line_bytes_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_line_bytes=200)
    settings.ensure_home()
    keyring = Keyring.create(settings.keyring_path)
    f = tmp_path / "d.txt"
    f.write_bytes(b"33612345678:1:Ana:::::::::\n33612345679:1:" + b"B" * 300 + b":::::::::\n")
    report = ingest(settings, keyring, [f], IngestOptions("fb"))
    assert (report.rows_read, report.invalid_by_reason) == (2, {"line_too_long": 1})
    assert report.distinct_numbers == 1


def _corrupt_archives(tmp_path: Path, dump: Path) -> dict[str, Path]:
    """A .gz cut in half, and a zip whose (stored) member has one byte changed (bad CRC-32)."""
    data = dump.read_bytes()
    packed = gzip.compress(data)
    gz = tmp_path / "cut.txt.gz"
    gz.write_bytes(packed[: len(packed) // 2])
    zp = tmp_path / "crc.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("France.txt", data)
    raw = bytearray(zp.read_bytes())
    at = raw.index(data[:64]) + len(data) // 2
    raw[at] ^= 0x01
    zp.write_bytes(bytes(raw))
    return {"truncated": gz, "bad CRC-32": zp}


def test_corrupt_archives_are_bad_input_naming_the_file_and_problem(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth], tmp_path: Path
) -> None:
    path, truth = dump
    for problem, archive in _corrupt_archives(tmp_path, path).items():
        with pytest.raises(BadInput, match=rf"{archive.name}.*{problem}") as info:
            ingest(settings, keyring, [archive], IngestOptions("fb"))
        assert scan([], truth.numbers, [str(info.value)]) == []
    assert store(settings)["breaches"] == []


@pytest.mark.parametrize("k", [0, -3, 2**31, 10**20])
def test_k_beyond_what_the_store_holds_is_refused_before_any_work(
    settings: Settings, keyring: Keyring, tmp_path: Path, k: int
) -> None:
    """An unusable ``k`` is refused when the options are made, naming the range: before any
    file is read (the missing file is never reported) and with the store unchanged."""
    with pytest.raises(BadInput, match=r"k must be a whole number from 1 to 2\^31 - 1"):
        ingest(settings, keyring, [tmp_path / "missing.txt"], IngestOptions("fb", k=k))
    assert store(settings)["breaches"] == []


def test_largest_k_is_stored(
    settings: Settings, keyring: Keyring, dump: tuple[Path, Truth]
) -> None:
    path, truth = dump
    report = ingest(settings, keyring, [path], IngestOptions("fb", k=2**31 - 1))
    assert (report.k, report.prefix_bits, report.min_bucket) == (2**31 - 1, 0, truth.distinct)
    no_plaintext(settings, truth)


def test_unusable_ingest_settings_are_refused_by_name(
    keyring: Keyring, dump: tuple[Path, Truth], home: Path
) -> None:
    path, _ = dump
    for field, value, name in (
        ("default_k", 2**40, "BREACH_NOTIFY_DEFAULT_K"),
        ("max_line_bytes", 0, "BREACH_NOTIFY_MAX_LINE_BYTES"),
    ):
        with pytest.raises(BadInput, match=name):
            ingest(Settings(home=home, **{field: value}), keyring, [path], IngestOptions("fb"))


def _bomb(path: Path, megabytes: int) -> None:
    """A gzip of ``megabytes`` MiB of one repeated valid line (ratio ~1000)."""
    block = b"33612345678:1:Ana:::::::::\n" * ((1 << 20) // 27 + 1)
    with gzip.GzipFile(path, "wb", compresslevel=1) as gz:
        for _ in range(megabytes):
            gz.write(block[: 1 << 20])


def test_decompression_bomb_is_refused_early_naming_the_setting(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.txt.gz"
    _bomb(bomb, 400)
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"bomb\.txt\.gz.*BREACH_NOTIFY_MAX_COMPRESSION_RATIO"):
        ingest(settings, keyring, [bomb], IngestOptions("fb"))
    assert time.monotonic() - started < 60  # refused after ~16-100 MiB, not 400
    zp = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.txt", "w") as member:
        for _ in range(100):
            member.write(b"33612345678:1:Ana:::::::::\n" * 40000)
    with pytest.raises(BadInput, match=r"bomb\.zip!x\.txt.*BREACH_NOTIFY_MAX_COMPRESSION_RATIO"):
        ingest(settings, keyring, [zp], IngestOptions("fb"))
    assert store(settings)["breaches"] == []


def test_decompressed_size_cap_is_a_setting(
    keyring: Keyring, dump: tuple[Path, Truth], home: Path, tmp_path: Path
) -> None:
    path, truth = dump
    gz = tmp_path / "France.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    zp = tmp_path / "dump.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "France.txt")
    small = Settings(home=home, max_decompressed_bytes=100_000)
    for archive in (gz, zp):
        with pytest.raises(BadInput, match="BREACH_NOTIFY_MAX_DECOMPRESSED_BYTES"):
            ingest(small, keyring, [archive], IngestOptions("fb"))
    enough = Settings(home=home, max_decompressed_bytes=path.stat().st_size)
    assert_matches(ingest(enough, keyring, [gz], IngestOptions("fb")), truth, keyring, enough)
    no_plaintext(enough, truth)


def test_many_small_files_share_one_query_and_keep_their_own_counts(
    settings: Settings, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files are read many to a query, the SQL built at most once, and each file's
    ``rows_read`` is still its own (header and blank lines excluded)."""
    from breach_notify.ingest import arrow_reader, duckdb_reader, normalize

    built: list[int] = []
    real = normalize.phone_sql

    def counting(*args: Any, **kwargs: Any) -> str:
        built.append(1)
        return real(*args, **kwargs)

    for module in (arrow_reader, duckdb_reader):
        monkeypatch.setattr(module, "phone_sql", counting)
    arrow_reader.query.cache_clear()
    folder = tmp_path / "many"
    folder.mkdir()
    truth = Truth()
    expected: dict[str, int] = {}
    header = "phone:id:first_name:last_name:gender:current_city:hometown:relationship:work:date"
    for i in range(300):
        f = folder / f"f{i:03d}.txt"
        phones = [f"3361{i:05d}{j:02d}" if (i + j) % 7 else "3361" for j in range(1 + i % 3)]
        lines = [header + ":email:birthday"] * (i % 2) + [f"{ph}:{i}:Ana:::::::::" for ph in phones]
        f.write_text("\n".join(lines) + "\n")
        for phone in phones:
            e164, reason = reference_facebook(phone)
            truth.add(e164, reason, BIT["account_id"] | BIT["name"])
        expected[f.name] = len(phones)
    report = ingest(settings, keyring, [folder], IngestOptions("many"))
    assert len(built) <= 1
    assert_matches(report, truth, keyring, settings)
    with session(settings) as conn:
        got = dict(conn.execute("SELECT name, rows_read FROM breach_files").fetchall())
    assert got == expected
    no_plaintext(settings, truth, json.dumps(report.as_dict()))


@pytest.mark.slow
def test_ten_thousand_one_line_files_take_minutes_not_hours(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    for i in range(10_000):
        (folder / f"f{i:05d}.txt").write_text(f"3361{i:07d}:{i}:Ana:::::::::\n")
    started = time.monotonic()
    report = ingest(settings, keyring, [folder], IngestOptions("tiny"))
    seconds = time.monotonic() - started
    assert (report.files, report.rows_read) == (10_000, 10_000)
    # A guard against the old per-file cost (~0.66 s a file: ~110 min), not a speed goal; the
    # rate is measured in benchmarks/ingest.py. ~16-28 s here, more beside parallel tests.
    print(f"10,000 one-line files in {seconds:.1f}s")
    assert seconds < 300, seconds


@pytest.mark.parametrize("reader", ["arrow", "duckdb"])
def test_phonenumbers_rows_are_decided_in_bounded_batches(
    settings: Settings,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reader: str,
) -> None:
    """Rows only ``phonenumbers`` can decide (numbers with extensions) are settled and written
    out a batch at a time, never piled up for the whole file."""
    import breach_notify.ingest as ingest_package
    from breach_notify.ingest import sinks, tally

    monkeypatch.setattr(tally, "PYTHON_BATCH", 100)
    if reader == "duckdb":
        monkeypatch.setattr(ingest_package, "SMALL_FILE_BYTES", 0)
    f = tmp_path / "ext.txt"
    f.write_text(
        "".join(f"336{12000000 + i:08d}x{i % 90 + 10}:1:Ana:::::::::\n" for i in range(2000))
    )
    pending, worst = [0], [0]
    verdict, write = tally.verdict, sinks.AccSink.write

    def counting_verdict(raw: str, region: str | None = None) -> tuple[str | None, str | None]:
        pending[0] += 1
        worst[0] = max(worst[0], pending[0])
        return verdict(raw, region)

    def counting_write(self: sinks.AccSink, table: Any) -> None:
        pending[0] = 0
        write(self, table)

    monkeypatch.setattr(tally, "verdict", counting_verdict)
    monkeypatch.setattr(sinks.AccSink, "write", counting_write)
    report = ingest(settings, keyring, [f], IngestOptions("ext"))
    assert report.python_decided == report.distinct_numbers == 2000
    assert 0 < worst[0] <= 100


def test_housekeeping_removes_empty_work_dirs_left_by_a_kill(settings: Settings) -> None:
    """An empty ``tmp/ingest-*`` (or ``shards-*``) directory is kill -9 debris: removed at once,
    not after a day; other recent entries stay, old ones go."""
    from breach_notify.ingest.leftovers import remove_leftovers

    settings.ensure_home()
    tmp = settings.tmp_dir
    for name in ("ingest-a1b2", "shards-c3d4"):
        (tmp / name).mkdir()
    busy = tmp / "shards-busy"
    busy.mkdir()
    (busy / "shard-00000.parquet").write_bytes(b"x")
    spill = tmp / "duckdb_temp_storage.tmp"
    spill.write_bytes(b"x")
    stale = tmp / "ingest-stale"
    stale.mkdir()
    (stale / "old.parquet").write_bytes(b"x")
    old = time.time() - 2 * 86400
    os.utime(stale / "old.parquet", (old, old))
    os.utime(stale, (old, old))
    assert remove_leftovers(tmp) == 3
    assert sorted(p.name for p in tmp.iterdir()) == ["duckdb_temp_storage.tmp", "shards-busy"]
    assert remove_leftovers(tmp, now=time.time() + 2 * 86400) == 2
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("reader", ["arrow", "duckdb"])
@pytest.mark.parametrize(
    "header",
    [
        "Phone Number::First Name:Last Name:Gender:Current City:Hometown:Relationship Status:"
        "Workplace:Join Date:Email:Birthday",
        "Phone Number::First Name:Last Name",
        "phone-number:id:first_name:last_name:gender:current_city:hometown:relationship:work:"
        "date:email:birthday",
    ],
)
def test_repack_header_line_counts_as_a_header_not_an_invalid_row(
    settings: Settings,
    keyring: Keyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    header: str,
    reader: str,
) -> None:
    import breach_notify.ingest as ingest_package

    if reader == "duckdb":
        monkeypatch.setattr(ingest_package, "SMALL_FILE_BYTES", 0)
    f = tmp_path / "repack.txt"
    f.write_text(f"{header}\n33612345678:1:Ana:::::::::\n33612345679:2:Bo:::::::::\n")
    report = ingest(settings, keyring, [f], IngestOptions("fb"))
    assert (report.header_lines, report.rows_read, report.rows_invalid) == (1, 2, 0)
    assert report.distinct_numbers == 2
