"""The content digest of input files: a chunked SHA-256 tree hash, shared by ingest and inbox."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import duckdb
import pytest

from breach_notify.errors import BadInput
from breach_notify.ingest import formats, inbox

DEFAULT_CHUNK = formats.DIGEST_CHUNK
CHUNK = 64  # small chunks so that tests reach several of them with a few bytes


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "DIGEST_CHUNK", CHUNK)
    monkeypatch.setattr(formats, "_DIGEST_BLOCK", 7)  # reads that straddle nothing in particular


def reference(data: bytes, chunk: int = CHUNK) -> str:
    """Straightforward single-threaded implementation of the documented encoding."""
    digests = [hashlib.sha256(data[i : i + chunk]).digest() for i in range(0, len(data), chunk)]
    if not digests:
        digests = [hashlib.sha256(b"").digest()]
    root = hashlib.sha256(b"breach-notify content v1\0")
    root.update(len(data).to_bytes(8, "big") + chunk.to_bytes(8, "big"))
    for d in digests:
        root.update(d)
    return root.hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 3])
def test_matches_reference(tmp_path: Path, size: int) -> None:
    data = _data(size)
    got = formats.content_digest(_write(tmp_path / "f", data))
    assert got == reference(data)
    assert len(got) == 64 and int(got, 16) >= 0


def test_same_content_same_digest(tmp_path: Path) -> None:
    data = _data(3 * CHUNK + 5)
    assert formats.content_digest(_write(tmp_path / "a", data)) == formats.content_digest(
        _write(tmp_path / "b.txt", data)
    )


def test_different_content_different_digest(tmp_path: Path) -> None:
    data = _data(3 * CHUNK + 5)
    base = formats.content_digest(_write(tmp_path / "base", data))
    second_chunk = bytearray(data)
    second_chunk[CHUNK + 10] ^= 1
    at_boundary = bytearray(data)
    at_boundary[CHUNK] ^= 0x80  # first byte of the second chunk
    before_boundary = bytearray(data)
    before_boundary[CHUNK - 1] ^= 0x80  # last byte of the first chunk
    variants = {
        "second chunk": bytes(second_chunk),
        "chunk boundary": bytes(at_boundary),
        "before boundary": bytes(before_boundary),
        "one byte longer": data + b"\0",
        "one byte shorter": data[:-1],
        "exactly one chunk": data[:CHUNK],
        "chunk + 1": data[: CHUNK + 1],
    }
    digests = {base} | {
        formats.content_digest(_write(tmp_path / name.replace(" ", "_"), v))
        for name, v in variants.items()
    }
    assert len(digests) == len(variants) + 1


def test_empty_file(tmp_path: Path) -> None:
    assert formats.content_digest(_write(tmp_path / "e", b"")) == reference(b"")
    assert formats.content_digest(tmp_path / "e") != hashlib.sha256(b"").hexdigest()


def test_chunk_size_is_part_of_the_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(4 * CHUNK)
    path = _write(tmp_path / "f", data)
    small = formats.content_digest(path)
    monkeypatch.setattr(formats, "DIGEST_CHUNK", 2 * CHUNK)
    assert formats.content_digest(path) == reference(data, 2 * CHUNK) != small


def test_default_chunk_is_64_mib() -> None:
    assert DEFAULT_CHUNK == 64 * 1024 * 1024


def test_many_chunks_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "_cpus", lambda: 4)
    data = _data(257 * CHUNK + 17, seed=3)
    assert formats.content_digest(_write(tmp_path / "big", data)) == reference(data)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "secret+420777123456.txt"
    with pytest.raises(BadInput, match="cannot be read") as exc:
        formats.content_digest(missing)
    assert missing.name in str(exc.value)
    if os.geteuid() != 0:  # root reads anything
        locked = _write(tmp_path / "locked.txt", b"+420777123456\n" * 20)
        locked.chmod(0)
        with pytest.raises(BadInput, match=r"locked\.txt") as exc:
            formats.content_digest(locked)
        assert "420777123456" not in str(exc.value)


def test_plan_shards_dedups_by_digest(tmp_path: Path) -> None:
    data = b"+420777123456:1:Jan:Novak\n" * 20
    a = _write(tmp_path / "a.txt", data)
    _write(tmp_path / "b.txt", data)
    shards = formats.plan_shards([tmp_path], "facebook-2021")
    assert [s.path for s in shards] == [a]
    assert shards[0].content_sha256 == reference(data)


def test_inbox_and_ingest_agree(tmp_path: Path) -> None:
    folder = tmp_path / "b1"
    folder.mkdir()
    (folder / "breach.toml").write_text('title = "T"\nformat = "facebook-2021"\n')
    data = _data(3 * CHUNK + 1)
    one = _write(folder / "one.txt", data)
    _write(folder / "two.txt", data)  # the same content: counts once
    other = _write(folder / "three.txt", data + b"\n")
    shards = formats.plan_shards([folder / "one.txt", other], "facebook-2021")
    conn = duckdb.connect()
    conn.execute("CREATE TABLE breach_files (breach_id TEXT, content_sha256 TEXT)")
    b = inbox.read_folder(folder)
    assert inbox.new_files(conn, b) == [one, other]
    conn.execute("INSERT INTO breach_files VALUES ('b1', ?)", [shards[0].content_sha256])
    assert inbox.new_files(conn, b) == [other]
    conn.execute("INSERT INTO breach_files VALUES ('b1', ?)", [shards[1].content_sha256])
    assert inbox.new_files(conn, b) == []
