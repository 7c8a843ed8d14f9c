"""Re-tagging for the private self-check: files a breach already holds, given again with
``--self-check``, are read again for their tags only (after an ingest without the flag, or a new
OPRF key); a new key takes over only once every file is tagged under it, in one transaction."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from support.check import serve
from support.privacy import scan
from support.synthetic import Truth, write_facebook

from breach_notify import ingest as ingest_mod
from breach_notify.cli.selfcheck import check
from breach_notify.crypto import Keyring
from breach_notify.crypto.oprf import bucket
from breach_notify.ingest import IngestOptions, ingest, merge
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.web import selfcheck as web_selfcheck


def tags_by_key(settings: Settings, breach: str) -> dict[str, dict[bytes, int]]:
    with session(settings) as conn:
        rows = conn.execute(
            "SELECT oprf_key_id, tag, bucket FROM selfcheck_tags WHERE breach_id = ?", [breach]
        ).fetchall()
    out: dict[str, dict[bytes, int]] = {}
    for kid, tag, b in rows:
        out.setdefault(str(kid), {})[bytes(tag)] = int(b)
    return out


def served(settings: Settings, breach: str) -> tuple[str, int, int] | None:
    with session(settings) as conn:
        row = conn.execute(
            "SELECT oprf_key_id, bucket_bits, tags FROM selfcheck_breaches WHERE breach_id = ?",
            [breach],
        ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), int(row[2]))


def breach_counts(settings: Settings, breach: str) -> tuple[Any, ...]:
    with session(settings) as conn:
        row = conn.execute(
            """SELECT rows_read, rows_invalid, rows_duplicate, distinct_numbers, prefix_bits,
                      (SELECT count(*) FROM breach_files WHERE breach_id = id),
                      (SELECT count(*) FROM breach_pseudonyms WHERE breach_id = id)
               FROM breaches WHERE id = ?""",
            [breach],
        ).fetchone()
    assert row is not None
    return tuple(row)


def expected(keyring: Keyring, kid: str, numbers: set[str], bits: int) -> dict[bytes, int]:
    server = keyring.oprf_server(kid)
    return {server.tag(e): bucket(e, bits) for e in numbers}


def test_a_breach_ingested_without_the_flag_is_tagged_by_a_rerun_with_it(
    settings: Settings, keyring: Keyring, tmp_path: Path, small_target: int
) -> None:
    f = tmp_path / "France.txt"
    truth = write_facebook(f, 1200, seed=41)
    ingest(settings, keyring, [f], IngestOptions("fb"))
    before = breach_counts(settings, "fb")
    assert served(settings, "fb") is None and tags_by_key(settings, "fb") == {}
    report = ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert report.files_skipped == 1 and report.new_numbers == 0 and report.rows_read == 0
    assert breach_counts(settings, "fb") == before  # pseudonyms and counts untouched
    sc = report.self_check
    assert sc is not None and sc["retagged_files"] == 1 and sc["serving"] is True
    assert sc["files_tagged"] == sc["files"] == 1 and sc["pending"] is None
    kid, bits, count = served(settings, "fb") or ("", 0, 0)
    assert (kid, count) == ("o1", truth.distinct) and bits > 0
    assert tags_by_key(settings, "fb") == {"o1": expected(keyring, "o1", set(truth.kinds), bits)}
    again = ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert again.self_check is not None and again.self_check["retagged_files"] == 0
    assert scan([settings.home], sorted(truth.kinds)[::20]) == []


def test_after_rotation_the_old_tags_serve_until_every_file_is_given_again(
    settings: Settings, keyring: Keyring, tmp_path: Path, small_target: int
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ta, tb = write_facebook(a, 900, seed=42), write_facebook(b, 700, seed=43)
    ingest(settings, keyring, [a, b], IngestOptions("fb", self_check=True))
    old = tags_by_key(settings, "fb")
    kid, bits, _ = served(settings, "fb") or ("", 0, 0)
    assert kid == "o1" and list(old) == ["o1"]
    assert keyring.rotate("oprf") == "o2"
    before = breach_counts(settings, "fb")

    half = ingest(settings, keyring, [a], IngestOptions("fb", self_check=True))
    sc = half.self_check
    assert sc is not None and sc["key_id"] == "o1" and sc["serving"]
    assert sc["pending"] == {"key_id": "o2", "files_tagged": 1, "files": 2}
    assert served(settings, "fb") == ("o1", bits, len(old["o1"]))
    now = tags_by_key(settings, "fb")
    assert now["o1"] == old["o1"]  # the old key keeps serving the old tags
    assert now["o2"] == expected(keyring, "o2", set(ta.kinds), bits)

    done = ingest(settings, keyring, [b], IngestOptions("fb", self_check=True))
    sc = done.self_check
    assert sc is not None and sc["key_id"] == "o2" and sc["pending"] is None
    both = set(ta.kinds) | set(tb.kinds)
    assert tags_by_key(settings, "fb") == {"o2": expected(keyring, "o2", both, bits)}
    assert served(settings, "fb") == ("o2", bits, len(both))
    assert breach_counts(settings, "fb") == before
    with session(settings) as conn:
        left = conn.execute(
            "SELECT count(*) FROM selfcheck_files WHERE oprf_key_id = 'o1'"
        ).fetchone()
    assert left == (0,)


def test_a_failed_retag_leaves_the_old_tags_serving(
    settings: Settings, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "France.txt"
    write_facebook(f, 500, seed=44)
    ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    old, state = tags_by_key(settings, "fb"), served(settings, "fb")
    keyring.rotate("oprf")

    def boom() -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(merge, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert tags_by_key(settings, "fb") == old and served(settings, "fb") == state
    with session(settings) as conn:
        assert conn.execute("SELECT count(*) FROM selfcheck_sets").fetchone() == (1,)
    assert not list(settings.tmp_dir.rglob("*.parquet"))
    monkeypatch.undo()
    report = ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert report.self_check is not None and report.self_check["key_id"] == "o2"


def test_a_reread_file_whose_numbers_are_not_in_the_breach_adds_none_of_them(
    settings: Settings, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence: a file that changed after it was recorded (same digest claimed, other rows)."""
    f = tmp_path / "France.txt"
    first = write_facebook(f, 400, seed=45)
    ingest(settings, keyring, [f], IngestOptions("fb"))
    digest = ingest_mod.plan_shards([f], "facebook-2021")[0].content_sha256
    changed = tmp_path / "changed.txt"
    second = write_facebook(changed, 400, seed=46)
    real = ingest_mod.plan_shards

    def same_digest(paths: list[Path], fmt: str, **kw: Any) -> list[Any]:
        return [dataclasses.replace(s, content_sha256=digest) for s in real(paths, fmt, **kw)]

    monkeypatch.setattr(ingest_mod, "plan_shards", same_digest)
    report = ingest(settings, keyring, [changed], IngestOptions("fb", self_check=True))
    sc = report.self_check
    common = set(first.kinds) & set(second.kinds)
    outside = set(second.kinds) - set(first.kinds)
    assert sc is not None and sc["tags_outside_breach"] == len(outside) > 0
    bits = sc["bucket_bits"]
    assert tags_by_key(settings, "fb").get("o1", {}) == expected(keyring, "o1", common, bits)


def test_a_file_given_alone_is_not_served_until_the_breach_is_covered(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    """A breach never tagged: serving only some of its files would answer "not found" for
    the numbers of the others."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_facebook(a, 300, seed=47)
    write_facebook(b, 300, seed=48)
    ingest(settings, keyring, [a, b], IngestOptions("fb"))
    half = ingest(settings, keyring, [b], IngestOptions("fb", self_check=True))
    sc = half.self_check
    assert sc is not None and sc["serving"] is False and sc["tags"] == 0
    assert sc["pending"] == {"key_id": "o1", "files_tagged": 1, "files": 2}
    assert served(settings, "fb") is None
    # a later ingest without the flag does not re-read anything
    assert ingest(settings, keyring, [a, b], IngestOptions("fb")).self_check is None
    full = ingest(settings, keyring, [a, b], IngestOptions("fb", self_check=True))
    assert full.self_check is not None and full.self_check["serving"] is True
    assert full.self_check["retagged_files"] == 1  # b was tagged already
    assert full.self_check["tags"] == breach_counts(settings, "fb")[3]


def test_the_check_api_finds_a_retagged_breach_and_follows_the_key_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_selfcheck, "RELOAD_SECONDS", 0.0)
    settings = Settings(home=tmp_path / "home", self_check_require_pow=False)
    keyring = Keyring.create(settings.keyring_path)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ta: Truth = write_facebook(a, 150, seed=49)
    write_facebook(b, 150, seed=50)
    ingest(settings, keyring, [a, b], IngestOptions("fb", title="FB"))
    inside = sorted(ta.kinds)[0]
    with serve(Starlette(routes=web_selfcheck.routes(settings))) as url:
        assert not check(inside, url).found  # ingested without the flag
        ingest(settings, keyring, [a, b], IngestOptions("fb", self_check=True))
        time.sleep(0.05)
        got = check(inside, url)
        assert got.verified and [x["id"] for x in got.breaches] == ["fb"]
        keyring.rotate("oprf")
        ingest(settings, keyring, [a], IngestOptions("fb", self_check=True))
        time.sleep(0.05)
        cfg = web_selfcheck.Snapshots(settings).get().config(pow_required=False)
        assert [x["key_id"] for x in cfg["breaches"]] == ["o1"]  # the old key keeps serving
        assert check(inside, url).found
        ingest(settings, keyring, [b], IngestOptions("fb", self_check=True))
        time.sleep(0.05)
        cfg = web_selfcheck.Snapshots(settings).get().config(pow_required=False)
        assert [x["key_id"] for x in cfg["breaches"]] == ["o2"]
        got = check(inside, url)
        assert got.verified and got.found


def test_cli_says_what_a_partial_retag_still_needs(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("keys", "init").code == 0
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ta, tb = write_facebook(a, 200, seed=51), write_facebook(b, 200, seed=52)
    assert cli("ingest", str(a), str(b), "--breach", "fb").code == 0
    res = cli("ingest", str(a), str(b), "--breach", "fb", "--self-check", "--json")
    assert res.code == 0, res.stderr
    assert res.json["self_check"]["retagged_files"] == 2
    assert res.json["self_check"]["key_id"] == "o1" and res.json["self_check"]["serving"]
    assert cli("keys", "rotate", "--oprf").code == 0
    half = cli("ingest", str(a), "--breach", "fb", "--self-check")
    assert half.code == 0, half.stderr
    text = " ".join(half.stdout.split())
    assert "tagged 1 of 2 files of this breach under o2; give the others to finish" in text
    assert "o1 keeps serving" in text and "needs the raw files" in text
    sample = sorted(set(ta.kinds) | set(tb.kinds))[::10]
    assert scan([home], sample, [res.stdout, res.stderr, half.stdout, half.stderr]) == []


def test_an_inbox_folder_with_self_check_plans_and_runs_the_retag(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    from breach_notify.ingest import inbox
    from flows import tasks

    folder = tmp_path / "inbox" / "fb"
    folder.mkdir(parents=True)
    truth = write_facebook(folder / "France.txt", 300, seed=53)
    (folder / "breach.toml").write_text('title = "FB"\nformat = "facebook-2021"\n')
    ingest(settings, keyring, [folder / "France.txt"], IngestOptions("fb"))
    (folder / "breach.toml").write_text(
        'title = "FB"\nformat = "facebook-2021"\nself_check = true\n'
    )
    with session(settings) as conn:
        plan = inbox.plan(conn, inbox.read_folder(folder), "o1")
    assert plan.files == () and plan.retag == (folder / "France.txt",)
    done = tasks.ingest_breach.fn(str(settings.home), None, plan)
    assert done["self_check"]["serving"] and done["self_check"]["tags"] == truth.distinct
    with session(settings) as conn:
        assert inbox.plan(conn, inbox.read_folder(folder), "o1").retag == ()
        assert inbox.plan(conn, inbox.read_folder(folder), "o2").retag != ()
