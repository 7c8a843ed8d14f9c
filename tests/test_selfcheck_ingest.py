"""Self-check tags at ingest: one (bucket, tag) per distinct number, in the ingest's transaction."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.privacy import scan
from support.synthetic import Truth, write_csv, write_facebook

from breach_notify.crypto import Keyring
from breach_notify.crypto.oprf import bucket
from breach_notify.ingest import IngestOptions, ingest, merge, selfcheck
from breach_notify.ingest.inbox import read_folder
from breach_notify.settings import Settings
from breach_notify.store.db import session


def tags(settings: Settings, breach: str) -> dict[bytes, int]:
    with session(settings) as conn:
        rows = conn.execute(
            "SELECT tag, bucket FROM selfcheck_tags WHERE breach_id = ?", [breach]
        ).fetchall()
    out = {bytes(t): int(b) for t, b in rows}
    assert len(out) == len(rows), "one row per tag"
    return out


def state(settings: Settings, breach: str) -> tuple[str, int, int, int, int] | None:
    with session(settings) as conn:
        row = conn.execute(
            "SELECT oprf_key_id, bucket_bits, max_bucket, tags, kinds"
            " FROM selfcheck_breaches WHERE breach_id = ?",
            [breach],
        ).fetchone()
    return None if row is None else (str(row[0]), *(int(v) for v in row[1:]))  # type: ignore[return-value]


def expected(keyring: Keyring, numbers: set[str], bits: int) -> dict[bytes, int]:
    server = keyring.oprf_server()
    return {server.tag(e): bucket(e, bits) for e in numbers}


def no_plaintext(settings: Settings, truth: Truth) -> None:
    sample = sorted(set(truth.numbers))[:: max(1, len(set(truth.numbers)) // 100)]
    assert scan([settings.home], sample) == []


def test_self_check_ingest_stores_the_tag_and_bucket_of_every_distinct_number(
    settings: Settings, keyring: Keyring, tmp_path: Path, small_target: int
) -> None:
    f = tmp_path / "France.txt"
    truth = write_facebook(f, 2000, seed=4)
    report = ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    key_id, bits, largest, count, kinds = state(settings, "fb") or ("", 0, 0, 0, 0)
    assert key_id == "o1" and count == truth.distinct and kinds != 0
    assert tags(settings, "fb") == expected(keyring, set(truth.kinds), bits)
    sizes: dict[int, int] = {}
    for e in truth.kinds:
        sizes[bucket(e, bits)] = sizes.get(bucket(e, bits), 0) + 1
    assert largest == max(sizes.values()) <= small_target
    coarser: dict[int, int] = {}
    for b, n in sizes.items():
        coarser[b >> 1] = coarser.get(b >> 1, 0) + n
    assert bits > 0 and max(coarser.values()) > small_target  # the smallest b that fits
    assert report.self_check is not None
    assert report.self_check == {
        "key_id": "o1",
        "bucket_bits": bits,
        "max_bucket": largest,
        "tags": truth.distinct,
        "serving": True,
        "files": 1,
        "files_tagged": 1,
        "pending": None,
        "retagged_files": 0,
        "tags_outside_breach": 0,
    }
    no_plaintext(settings, truth)


def test_without_the_flag_nothing_is_tagged(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    f = tmp_path / "France.txt"
    write_facebook(f, 300, seed=2)
    report = ingest(settings, keyring, [f], IngestOptions("fb"))
    assert report.self_check is None and state(settings, "fb") is None
    assert tags(settings, "fb") == {}


def test_later_files_of_a_tagged_breach_are_tagged_at_its_bits_even_without_the_flag(
    settings: Settings, keyring: Keyring, tmp_path: Path, small_target: int
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ta, tb = write_facebook(a, 1500, seed=5), write_facebook(b, 800, seed=6)
    ingest(settings, keyring, [a], IngestOptions("fb", self_check=True))
    first = state(settings, "fb")
    assert first is not None
    keyring.rotate("oprf")  # a new active key does not change the breach's key
    ingest(settings, keyring, [b], IngestOptions("fb"))
    after = state(settings, "fb")
    assert after is not None and after[:2] == first[:2] == ("o1", first[1])
    numbers = set(ta.kinds) | set(tb.kinds)
    server = keyring.oprf_server("o1")
    assert tags(settings, "fb") == {server.tag(e): bucket(e, first[1]) for e in numbers}
    assert after[3] == len(numbers)


def test_csv_through_the_arrow_reader_is_tagged_too(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    f = tmp_path / "list.csv"
    truth = write_csv(f, 700, region="GB", seed=8)
    ingest(
        settings,
        keyring,
        [f],
        IngestOptions("csv", fmt="csv", default_region="GB", self_check=True),
    )
    bits = (state(settings, "csv") or ("", 0))[1]
    assert tags(settings, "csv") == expected(keyring, set(truth.kinds), bits)
    no_plaintext(settings, truth)


def test_a_failed_ingest_stores_no_tags(
    settings: Settings, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "France.txt"
    truth = write_facebook(f, 500, seed=9)

    def boom() -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(merge, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert state(settings, "fb") is None and tags(settings, "fb") == {}
    monkeypatch.undo()
    ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    assert len(tags(settings, "fb")) == truth.distinct
    assert not list(settings.tmp_dir.rglob("*.parquet"))


def test_an_older_keyring_gets_its_first_oprf_key_on_first_need(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    data = json.loads(settings.keyring_path.read_text())
    del data["oprf"]
    settings.keyring_path.write_text(json.dumps(data))
    old = Keyring.load(settings.keyring_path)
    f = tmp_path / "France.txt"
    write_facebook(f, 200, seed=3)
    assert ingest(settings, old, [f], IngestOptions("fb", self_check=True)).self_check is not None
    assert Keyring.load(settings.keyring_path).key_ids["oprf"] == ["o1"]


@pytest.mark.parametrize(
    ("counts", "stage", "target", "bits"),
    [
        ({}, 4, 10, 0),
        ({0: 5, 1: 5}, 1, 10, 0),
        ({0: 6, 1: 5}, 1, 10, 1),
        ({0: 20, 3: 1}, 2, 10, 2),  # cannot fit: the staging resolution
        ({0: 3, 1: 3, 2: 3, 3: 3}, 2, 6, 1),
    ],
)
def test_choose_bits_is_the_smallest_that_fits(
    counts: dict[int, int], stage: int, target: int, bits: int
) -> None:
    assert selfcheck.choose_bits(counts, stage, target) == bits


def test_breach_toml_self_check_key(tmp_path: Path) -> None:
    folder = tmp_path / "fb-x"
    folder.mkdir()
    head = 'title = "X"\nformat = "facebook-2021"\n'
    (folder / "breach.toml").write_text(head + "self_check = true\n")
    assert read_folder(folder).options.self_check is True
    (folder / "breach.toml").write_text(head)
    assert read_folder(folder).options.self_check is False
    (folder / "breach.toml").write_text(head + "self_check = 1\n")
    with pytest.raises(Exception, match="self_check must be true or false"):
        read_folder(folder)


def test_shards_tagged_separately_merge_into_the_same_tags(
    settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    """The scale-out route (Dask): each worker tags its own byte-range shards."""
    from breach_notify.ingest import IngestSpec, merge_shards, plan_shards, process_shard
    from breach_notify.store.db import session as open_store

    f = tmp_path / "France.txt"
    truth = write_facebook(f, 1500, seed=12)
    out = tmp_path / "parts"
    shards = plan_shards([f], "facebook-2021", shard_bytes=20_000)
    assert len(shards) > 5
    with open_store(settings) as conn:
        plan = selfcheck.plan(
            conn,
            keyring,
            settings.keyring_path,
            "fb",
            enabled=True,
            nbytes=f.stat().st_size,
            out_dir=out,
        )
    assert plan is not None
    spec = dataclasses.replace(IngestSpec.of(settings, IngestOptions("fb")), self_check=plan)
    kid = keyring.active_id("pseudonym")
    results = [process_shard(s, settings.keyring_path, kid, spec, out) for s in shards]
    assert sum(len(r.tag_files) for r in results) == len(shards)
    report = merge_shards(settings, spec, results)
    assert report.self_check is not None and report.self_check["tags"] == truth.distinct
    bits = report.self_check["bucket_bits"]
    assert tags(settings, "fb") == expected(keyring, set(truth.kinds), bits)
    assert scan([out], sorted(set(truth.numbers))[:150]) == []


def test_cli_ingest_self_check_reports_the_tags(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("keys", "init").code == 0
    f = tmp_path / "France.txt"
    truth = write_facebook(f, 400, seed=13)
    res = cli("ingest", str(f), "--breach", "fb", "--self-check", "--json")
    assert res.code == 0, res.stderr
    assert res.json["self_check"]["tags"] == truth.distinct
    assert res.json["self_check"]["key_id"] == "o1"
    plain = cli("ingest", str(f), "--breach", "fb", "--self-check")
    assert plain.code == 0 and "1 file(s) already known" in plain.stdout
    sample = sorted(set(truth.numbers))[::20]
    assert scan([home], sample, [res.stdout, res.stderr, plain.stdout, plain.stderr]) == []
