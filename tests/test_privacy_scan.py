"""The plaintext scan itself must find what it is meant to find (else every leak test is void)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
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


@pytest.mark.parametrize("many", [False, True])
def test_a_number_inside_a_random_hex_id_is_not_a_hit_but_beside_one_it_is(
    tmp_path: Path, many: bool
) -> None:
    """The false hit seen in a 2,000-notice run: an id's random hex held a national number."""
    number = "+33650736654"
    others = [f"+3361234{i:04d}" for i in range(300)] if many else []  # the many-needles matcher
    (tmp_path / "ids.txt").write_text("sub_365073665489fd2ab474\nSM0650736654aa00bb11cc22dd33\n")
    assert scan([tmp_path], [number, *others]) == []
    for leak in ("id=+33650736654;", "sub_33650736654", "06 50 73 66 54", "ab33650736654cd"):
        (tmp_path / "leak.txt").write_text(leak)
        assert scan([tmp_path], [number, *others]) != [], leak
