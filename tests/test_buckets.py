"""k-anonymous prefix buckets: ``merge.buckets`` (one SQL scan of the stored ``prefix`` column,
here derived from the pseudonym as migration 004 does, then sums in Python) against a
brute-force oracle that applies the definition to the pseudonyms' bytes."""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest

from breach_notify.ingest.merge import buckets


def reference(conn: duckdb.DuckDBPyConnection, bid: str, k: int, n: int) -> tuple[int, int | None]:
    """The definition, by brute force: the largest L with ``n >= k * 2^L`` for which each of the
    2^L values of the pseudonyms' first L bits is held by at least k of the breach's pseudonyms;
    ``(L, smallest bucket)``, or ``(0, n)`` when no L qualifies (``(0, None)`` for no numbers)."""
    if n == 0:
        return 0, None
    rows = conn.execute(
        "SELECT pseudonym FROM breach_pseudonyms WHERE breach_id = ?", [bid]
    ).fetchall()
    firsts = [int.from_bytes(bytes(r[0])[:4], "big") for r in rows]
    best: tuple[int, int | None] = (0, n)
    for bits in range(1, 33):
        if n < k * 2**bits:
            break
        counts = Counter(x >> (32 - bits) for x in firsts)
        if len(counts) == 2**bits and min(counts.values()) >= k:
            best = (bits, min(counts.values()))
    return best


def _top(k: int, n: int) -> int:
    top = 0
    while top < 32 and n >= k * (2 ** (top + 1)):
        top += 1
    return top


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(
        """CREATE TABLE breach_pseudonyms (
               breach_id VARCHAR NOT NULL, pseudonym BLOB NOT NULL, kinds USMALLINT NOT NULL,
               prefix UINTEGER GENERATED ALWAYS AS (pseudonym[1:4]::BIT::UINTEGER) VIRTUAL)"""
    )
    return c


def _random(conn: duckdb.DuckDBPyConnection, bid: str, rows: int, seed: str) -> None:
    """``rows`` pseudo-random 32-byte pseudonyms (SHA-256 of a counter), deterministic."""
    conn.execute(
        "INSERT INTO breach_pseudonyms"
        " SELECT ?, unhex(sha256(? || i::VARCHAR)), 1 FROM range(?) t(i)",
        [bid, seed, rows],
    )


# (k, rows): chosen so that top takes the values 0, 1, 8, 9, 16, 17 (and some in between)
CASES = [
    (2, 3),  # n < 2k: top 0
    (50, 99),  # n < 2k: top 0
    (2, 4),  # top 1
    (5, 10),  # top 1, exactly 2k
    (3, 3 * 2**8),  # top 8 (n = k * 2^8 exactly)
    (2, 2**9 + 7),  # top 8
    (2, 2**10),  # top 9
    (3, 3 * 2**10 - 1),  # top 9
    (7, 7 * 2**5 + 3),  # top 5
    (2, 2**17),  # top 16
    (3, 3 * 2**17 - 1),  # top 16
    (2, 2**18 + 11),  # top 17
]


@pytest.mark.parametrize(("k", "rows"), CASES)
def test_buckets_equal_the_brute_force_definition(
    conn: duckdb.DuckDBPyConnection, k: int, rows: int
) -> None:
    _random(conn, "b1", rows, f"s{k}-{rows}-")
    assert buckets(conn, "b1", k, rows) == reference(conn, "b1", k, rows)


def test_cases_reach_the_tops_asked_for() -> None:
    assert {_top(k, n) for k, n in CASES} >= {0, 1, 8, 9, 16, 17}


@pytest.mark.parametrize("top", [1, 2, 7, 8, 9, 15, 16, 17, 20, 24])
def test_every_top_with_chosen_n(conn: duckdb.DuckDBPyConnection, top: int) -> None:
    """``n`` only picks the level; the counts come from the table. Small tables, high levels."""
    _random(conn, "b1", 3000, f"t{top}-")
    for k in (1, 2, 3, 50):
        n = k * 2**top  # exactly the smallest n reaching this level
        assert _top(k, n) == top
        assert buckets(conn, "b1", k, n) == reference(conn, "b1", k, n)


def test_n_zero(conn: duckdb.DuckDBPyConnection) -> None:
    assert buckets(conn, "b1", 50, 0) == reference(conn, "b1", 50, 0) == (0, None)
    _random(conn, "b1", 10, "z")
    assert buckets(conn, "b1", 2, 0) == (0, None)


def test_prefix_edges(conn: duckdb.DuckDBPyConnection) -> None:
    """Leading zero bytes, all-ones bytes and prefixes on both sides of byte borders."""
    prefixes = [
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x01",
        b"\x00\x00\xff\xff",
        b"\x00\x01\x00\x00",
        b"\x00\xff\xff\xff",
        b"\x01\x00\x00\x00",
        b"\x7f\xff\xff\xff",
        b"\x80\x00\x00\x00",
        b"\x80\x80\x80\x80",
        b"\xfe\xff\xff\xff",
        b"\xff\x00\x00\x00",
        b"\xff\xff\xff\xff",
    ]
    rows = [("b1", p + bytes([i]) * 28, 1) for i in range(3) for p in prefixes]
    conn.executemany("INSERT INTO breach_pseudonyms VALUES (?, ?, ?)", rows)
    for k in (1, 2, 3):
        for top in range(1, 25):
            n = k * 2**top
            assert buckets(conn, "b1", k, n) == reference(conn, "b1", k, n), (k, top)


def test_only_the_breach_asked_for(conn: duckdb.DuckDBPyConnection) -> None:
    _random(conn, "b1", 2**12, "one-")
    # a second breach crowding the low prefixes: counted, it would change every answer
    conn.execute(
        """INSERT INTO breach_pseudonyms
           SELECT 'b2', unhex('0000') || unhex(sha256('two-' || i::VARCHAR))[1:30], 1
           FROM range(5000) t(i)"""
    )
    conn.execute(
        "INSERT INTO breach_pseudonyms SELECT 'b3', unhex(sha256('three-' || i::VARCHAR)), 1"
        " FROM range(2000) t(i)"
    )
    for k in (2, 3, 5, 50):
        for bid, n in (("b1", 2**12), ("b2", 5000), ("b3", 2000)):
            assert buckets(conn, bid, k, n) == reference(conn, bid, k, n), (bid, k)
    # b2 alone has every pseudonym in bucket 0 at 16 bits: never a level above 0
    assert buckets(conn, "b2", 2, 5000) == (0, 5000)
    assert buckets(conn, "b1", 2, 2**12)[0] > 0
    assert buckets(conn, "missing", 2, 100) == reference(conn, "missing", 2, 100) == (0, 100)
