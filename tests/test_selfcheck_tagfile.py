"""The web serves each breach's self-check tags from a memory-mapped file in HOME/selfcheck/,
exported from the store atomically (0600) and mapped again, without export, after a restart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from support.synthetic import write_facebook

from breach_notify.crypto import Keyring
from breach_notify.ingest import IngestOptions, ingest, selfcheck
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.web import selfcheck as web_selfcheck
from breach_notify.web.tagfile import TagFile


@pytest.fixture
def tagged(
    settings: Settings, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setattr(selfcheck, "TARGET_BUCKET", 64)
    f = tmp_path / "France.txt"
    write_facebook(f, 1500, seed=61)
    ingest(settings, keyring, [f], IngestOptions("fb", self_check=True))
    return settings


def by_bucket(settings: Settings) -> tuple[int, dict[int, bytes]]:
    with session(settings) as conn:
        bits_row = conn.execute("SELECT bucket_bits FROM selfcheck_breaches").fetchone()
        rows = conn.execute(
            "SELECT bucket, tag FROM selfcheck_tags ORDER BY bucket, tag"
        ).fetchall()
    assert bits_row is not None
    out: dict[int, bytes] = {}
    for b, t in rows:
        out[int(b)] = out.get(int(b), b"") + bytes(t)
    return int(bits_row[0]), out


def test_the_exported_file_holds_every_bucket_sorted_and_is_owner_only(tagged: Settings) -> None:
    snap = web_selfcheck.Snapshots(tagged).get()
    [breach] = snap.breaches
    path = breach.tags.path
    assert path.parent == tagged.home / "selfcheck"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bits, expected = by_bucket(tagged)
    assert bits > 0 and breach.tags.bits == bits
    for b in range(1 << bits):
        assert breach.tags.bucket(b) == expected.get(b, b"")
    assert breach.tags.bucket(1 << bits) == b""


def test_a_restart_maps_the_existing_file_without_exporting(
    tagged: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = web_selfcheck.Snapshots(tagged).get().breaches[0].tags.path

    def no_export(*args: object) -> TagFile:
        raise AssertionError("exported again")

    monkeypatch.setattr(web_selfcheck, "export", no_export)
    again = web_selfcheck.Snapshots(tagged).get()
    assert again.breaches[0].tags.path == first
    assert list((tagged.home / "selfcheck").iterdir()) == [first]


def test_a_truncated_file_is_exported_again(tagged: Settings) -> None:
    path = web_selfcheck.Snapshots(tagged).get().breaches[0].tags.path
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 16)
    snap = web_selfcheck.Snapshots(tagged).get()
    assert snap.breaches[0].tags.path.stat().st_size == size
    _, expected = by_bucket(tagged)
    assert all(snap.breaches[0].tags.bucket(b) == v for b, v in expected.items())
