"""The plaintext scan itself must find what it is meant to find (else every leak test is void)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from support.privacy import formats, scan


def test_formats_cover_e164_national_and_digits() -> None:
    got = formats("+447400123456")
    assert {"+447400123456", "447400123456", "07400 123456", "07400123456", "7400123456"} <= got


def test_scan_finds_files_duckdb_values_and_texts(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("sent to +44 7400 123456")
    conn = duckdb.connect(str(tmp_path / "s.duckdb"))
    conn.execute("CREATE TABLE t (v VARCHAR)")
    # Many repeats invite dictionary/FSST compression: the SQL pass must still see the value.
    conn.execute("INSERT INTO t SELECT '12015550123' FROM range(20000)")
    conn.close()
    hits = scan([tmp_path], ["+447400123456", "+12015550123"], texts=["x 07400123456 y"])
    assert any("a.log" in h and "+44 7400 123456" in h for h in hits)
    assert any("(sql)" in h and "12015550123" in h for h in hits)
    assert any(h.startswith("text[0]") for h in hits)


def test_scan_is_quiet_on_clean_data(tmp_path: Path) -> None:
    (tmp_path / "clean.log").write_text("sent 12 notices, 3 failed; +44 77** ***456")
    assert scan([tmp_path], ["+447400123456"], texts=["nothing"]) == []


def test_scan_keys_finds_keys_and_pads(tmp_path: Path) -> None:
    from support.privacy import key_forms, scan_keys

    from breach_notify.crypto import Keyring

    ring_path = tmp_path / "keyring.json"
    Keyring.create(ring_path)
    assert scan_keys([tmp_path], ring_path) == []  # the keyring itself is not a leak
    pad = sorted(key_forms(ring_path), key=len)[-1]
    (tmp_path / "leak.bin").write_bytes(b"xx" + pad + b"yy")
    assert scan_keys([tmp_path], ring_path) == [f"{tmp_path / 'leak.bin'}: key material"]
