"""crypto/: RFC 4231 through both HMAC paths, sealing round trip and every tamper case."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import duckdb
import pytest
from support.rfc4231 import vectors

from breach_notify.crypto import InvalidToken, Pseudonymizer, Sealed, Sealer


def test_vector_file_has_all_seven_cases() -> None:
    assert [c for c, *_ in vectors()] == [str(i) for i in range(1, 8)]


@pytest.mark.parametrize(("case", "key", "data", "mac"), vectors(), ids=lambda v: str(v)[:8])
def test_rfc4231_python_path(case: str, key: bytes, data: bytes, mac: str) -> None:
    p = Pseudonymizer._unchecked("t", key)
    assert p.digest(data).hex().startswith(mac)


@pytest.mark.parametrize(("case", "key", "data", "mac"), vectors(), ids=lambda v: str(v)[:8])
def test_rfc4231_sql_path(case: str, key: bytes, data: bytes, mac: str) -> None:
    p = Pseudonymizer._unchecked("t", key)
    expr = p.sql_expression("$data", blob=True)
    got = duckdb.connect().execute(f"SELECT {expr.sql}", {**expr.params, "data": data}).fetchone()
    assert got is not None
    assert bytes(got[0]).hex().startswith(mac)


def test_sql_and_python_agree_on_numbers_in_a_table() -> None:
    p = Pseudonymizer("p1", b"k" * 32)
    numbers = [f"+4477009{i:05d}" for i in range(500)] + ["+33612345678", "+1202555012"]
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t(e164 VARCHAR)")
    conn.executemany("INSERT INTO t VALUES (?)", [[n] for n in numbers])
    expr = p.sql_expression("e164")
    rows = conn.execute(f"SELECT e164, {expr.sql} FROM t", expr.params).fetchall()
    assert len(rows) == len(numbers)
    for e164, pseudo in rows:
        assert bytes(pseudo) == p.pseudonym(e164)
        assert bytes(pseudo) == hmac.new(b"k" * 32, e164.encode(), hashlib.sha256).digest()


def test_pseudonymizer_rejects_caller_mistakes() -> None:
    with pytest.raises(TypeError):
        Pseudonymizer("p1", "k" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymizer("p1", b"short")
    with pytest.raises(TypeError):
        Pseudonymizer("p1", b"k" * 32).digest("text")  # type: ignore[arg-type]


def test_key_material_not_in_repr_or_sql_text() -> None:
    key = bytes(range(32))
    p = Pseudonymizer("p1", key)
    expr = p.sql_expression("x")
    assert key.hex() not in repr(p) and key.hex() not in expr.sql and "p1" in repr(p)
    assert "params" not in repr(expr)


def test_different_keys_give_different_pseudonyms() -> None:
    a, b = Pseudonymizer("a", b"a" * 32), Pseudonymizer("b", b"b" * 32)
    assert a.pseudonym("+447700900123") != b.pseudonym("+447700900123")
    assert len(a.pseudonym("+447700900123")) == 32


# -- sealer --------------------------------------------------------------------------------------

KEY1, KEY2 = bytes(range(32)), bytes(range(1, 33))


def _sealer() -> Sealer:
    return Sealer("s1", {"s1": KEY1})


def test_seal_round_trip_and_fresh_nonces() -> None:
    s = _sealer()
    a, b = s.seal("+447700900123", "row-1"), s.seal("+447700900123", "row-1")
    assert a.key_id == "s1" and a.blob != b.blob  # random nonce
    assert b"+447700900123" not in a.blob
    assert s.open(a, "row-1") == "+447700900123"


def test_deterministic_seam_gives_known_layout() -> None:
    sealed = _sealer()._seal_with_nonce("+15550100", "r", b"\0" * 12)
    assert sealed.blob[:12] == b"\0" * 12 and len(sealed.blob) == 12 + len("+15550100") + 16


@pytest.mark.parametrize("where", ["nonce", "body", "tag"])
def test_any_flipped_bit_is_rejected(where: str) -> None:
    s = _sealer()
    sealed = s.seal("+447700900123", "row-1")
    pos = {"nonce": 0, "body": 14, "tag": len(sealed.blob) - 1}[where]
    blob = bytearray(sealed.blob)
    blob[pos] ^= 0x01
    with pytest.raises(InvalidToken) as exc:
        s.open(Sealed("s1", bytes(blob)), "row-1")
    assert "+44" not in str(exc.value)


def test_wrong_row_wrong_key_unknown_key_truncated_all_one_error() -> None:
    s = _sealer()
    sealed = s.seal("+447700900123", "row-1")
    other = Sealer("s1", {"s1": KEY2})
    cases = [
        (s, sealed, "row-2"),
        (other, sealed, "row-1"),
        (s, Sealed("s9", sealed.blob), "row-1"),
        (s, Sealed("s1", sealed.blob[:20]), "row-1"),
        (s, Sealed("s1", b""), "row-1"),
    ]
    messages = set()
    for sealer, value, row in cases:
        with pytest.raises(InvalidToken) as exc:
            sealer.open(value, row)
        messages.add(str(exc.value))
    assert len(messages) == 1  # the caller is not told which check failed


def test_key_id_is_bound_into_the_ciphertext() -> None:
    both = Sealer("s2", {"s1": KEY1, "s2": KEY1})  # same bytes under two ids
    sealed = both.seal("+447700900123", "row-1")
    with pytest.raises(InvalidToken):
        both.open(Sealed("s1", sealed.blob), "row-1")


def test_reseal_moves_to_active_key() -> None:
    old = Sealer("s1", {"s1": KEY1})
    sealed = old.seal("+447700900123", "row-1")
    new = Sealer("s2", {"s1": KEY1, "s2": KEY2})
    moved = new.reseal(sealed, "row-1")
    assert moved.key_id == "s2" and new.open(moved, "row-1") == "+447700900123"


def test_sealer_rejects_bad_keys() -> None:
    with pytest.raises(ValueError):
        Sealer("s1", {"s1": b"short"})
    with pytest.raises(ValueError):
        Sealer("s2", {"s1": KEY1})
    assert KEY1.hex() not in repr(_sealer())


def test_bulk_pseudonyms_equal_one_by_one_and_sql() -> None:
    p = Pseudonymizer("p1", bytes(range(32)))
    values = [f"+3361234{i:04d}" for i in range(300)]
    bulk = p.pseudonyms(v.encode() for v in values)
    assert bulk == [p.pseudonym(v) for v in values]
    assert p.pseudonyms([]) == []
    expr = p.sql_expression("$v")
    got = duckdb.connect().execute(f"SELECT {expr.sql}", {**expr.params, "v": values[7]}).fetchone()
    assert got is not None and bytes(got[0]) == bulk[7]


def test_keyring_path_is_public_and_none_from_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from breach_notify.crypto import Keyring
    from breach_notify.crypto.keyring import ENV_VAR

    path = tmp_path / "keyring.json"
    assert Keyring.create(path).path == path
    monkeypatch.setenv(ENV_VAR, path.read_text())
    assert Keyring.load(path).path is None
