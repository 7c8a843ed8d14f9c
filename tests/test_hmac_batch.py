"""crypto/_hmacbatch: the C batch HMAC against hmac.new, both SHA-256 codes, Arrow layouts, bad
buffers, and two threads at once."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import struct
import threading
from collections.abc import Iterator
from types import ModuleType

import pyarrow as pa
import pytest
from support.rfc4231 import vectors

from breach_notify.crypto import Pseudonymizer
from breach_notify.crypto import pseudonymizer as pseudonymizer_module

try:
    from breach_notify.crypto import _hmacbatch as hb
except ImportError:  # pragma: no cover - only without a compiler
    hb = None

needs_ext = pytest.mark.skipif(hb is None, reason="the _hmacbatch extension is not built")
IMPLEMENTATIONS = ["sha-ni", "portable"]


def _reference(key: bytes, messages: list[bytes]) -> bytes:
    return b"".join(hmac.new(key, m, hashlib.sha256).digest() for m in messages)


def _layout(messages: list[bytes], wide: bool) -> tuple[bytes, bytes]:
    offsets = [0]
    for m in messages:
        offsets.append(offsets[-1] + len(m))
    fmt = "q" if wide else "i"
    return struct.pack(f"<{len(offsets)}{fmt}", *offsets), b"".join(messages)


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The extension with one SHA-256 code selected (restored afterwards)."""
    if hb is None:
        pytest.skip("the _hmacbatch extension is not built")
    if request.param == "sha-ni":
        hb._force_portable(False)
        if hb.implementation() != "sha-ni":
            pytest.skip("this CPU has no SHA-NI (or this is not x86-64)")
    else:
        hb._force_portable(True)
    assert hb.implementation() == request.param
    try:
        yield hb
    finally:
        hb._force_portable(False)


def test_extension_is_built_unless_slow_path_is_allowed() -> None:
    if os.environ.get("BREACH_NOTIFY_ALLOW_SLOW_HMAC"):
        pytest.skip("BREACH_NOTIFY_ALLOW_SLOW_HMAC is set")
    assert pseudonymizer_module.FAST_HMAC, (
        "breach_notify.crypto._hmacbatch did not build (is a C compiler installed?); "
        "set BREACH_NOTIFY_ALLOW_SLOW_HMAC=1 to accept the hashlib fallback"
    )


@pytest.mark.parametrize("wide", [False, True], ids=["int32", "int64"])
def test_every_length_0_to_300_matches_hmac_new(impl: ModuleType, wide: bool) -> None:
    rng = random.Random(4231)
    for _ in range(3):
        key = rng.randbytes(rng.choice([32, 48, 64]))
        p = Pseudonymizer("t", key)
        ipad, opad = p._pads()
        messages = [rng.randbytes(n) for n in range(301)]
        rng.shuffle(messages)
        offsets, data = _layout(messages, wide)
        got = impl.hmac_sha256(ipad, opad, offsets, data, 0, len(messages), wide)
        assert got == _reference(key, messages)


@pytest.mark.parametrize(("case", "key", "data", "mac"), vectors(), ids=lambda v: str(v)[:8])
def test_rfc4231(impl: ModuleType, case: str, key: bytes, data: bytes, mac: str) -> None:
    # Keys over 64 bytes (cases 6, 7) are hashed first; _pads() does that like hmac does.
    ipad, opad = Pseudonymizer._unchecked("t", key)._pads()
    offsets, blob = _layout([data], wide=False)
    assert impl.hmac_sha256(ipad, opad, offsets, blob, 0, 1, False).hex().startswith(mac)


def test_start_count_window_and_keywords(impl: ModuleType) -> None:
    key = os.urandom(32)
    ipad, opad = Pseudonymizer("t", key)._pads()
    messages = [os.urandom(n) for n in (0, 5, 64, 55, 56, 119, 120, 0)]
    offsets, data = _layout(messages, wide=True)
    got = impl.hmac_sha256(
        ipad=ipad, opad=opad, offsets=offsets, data=data, start=2, count=5, wide=True
    )
    assert got == _reference(key, messages[2:7])
    assert impl.hmac_sha256(ipad, opad, offsets, data, 3, 0, True) == b""


def _e164(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"+{rng.randrange(1, 999)}{rng.randrange(10**6, 10**11)}" for _ in range(n)]


@pytest.mark.parametrize("kind", [pa.string(), pa.binary(), pa.large_string(), pa.large_binary()])
def test_arrow_types_and_slices(impl: ModuleType, kind: pa.DataType) -> None:
    p = Pseudonymizer("t", b"s" * 32)
    values = [*_e164(1000), "", "+33612345678", ""]
    arr = pa.array(
        values
        if pa.types.is_string(kind) or pa.types.is_large_string(kind)
        else [v.encode() for v in values],
        kind,
    )
    expected = p.pseudonyms(v.encode() for v in values)
    out = p.pseudonyms_arrow(arr)
    assert out.type == pa.binary(32)
    assert out.to_pylist() == expected
    for start, length in [(1, 10), (333, 500), (999, 4), (1003, 0), (0, 1003)]:
        part = arr.slice(start, length)
        assert part.offset == start
        assert p.pseudonyms_arrow(part).to_pylist() == expected[start : start + length]


def test_arrow_chunked_and_empty(impl: ModuleType) -> None:
    p = Pseudonymizer("t", b"c" * 32)
    values = _e164(700, seed=1)
    chunked = pa.chunked_array(
        [pa.array(values[:300]), pa.array([], pa.string()), pa.array(values[300:])]
    )
    assert p.pseudonyms_arrow(chunked).to_pylist() == p.pseudonyms(v.encode() for v in values)
    assert len(p.pseudonyms_arrow(pa.chunked_array([], pa.string()))) == 0
    empty = p.pseudonyms_arrow(pa.array([], pa.large_binary()))
    assert len(empty) == 0
    assert empty.type == pa.binary(32)
    only_empty_strings = pa.array(["", ""])
    assert p.pseudonyms_arrow(only_empty_strings).to_pylist() == [p.pseudonym("")] * 2


def test_arrow_rejects_nulls_and_other_types() -> None:
    p = Pseudonymizer("t", b"n" * 32)
    with pytest.raises(ValueError, match="null"):
        p.pseudonyms_arrow(pa.array(["+33612345678", None]))
    with pytest.raises(ValueError, match="null"):
        p.pseudonyms_arrow(pa.chunked_array([["+1202555012"], [None]]))
    # a slice that excludes the null is fine
    assert len(p.pseudonyms_arrow(pa.array([None, "+33612345678"]).slice(1))) == 1
    with pytest.raises(TypeError):
        p.pseudonyms_arrow(pa.array([1, 2]))


def test_fallback_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Pseudonymizer("t", b"f" * 32)
    arr = pa.array(_e164(200, seed=2), pa.large_string()).slice(7, 150)
    fast = p.pseudonyms_arrow(arr)
    monkeypatch.setattr(pseudonymizer_module, "_hmacbatch", None)
    slow = p.pseudonyms_arrow(arr)
    assert slow.equals(fast)
    assert slow.to_pylist() == [p.pseudonym(v) for v in arr.to_pylist()]


@pytest.mark.parametrize("wide", [False, True], ids=["int32", "int64"])
def test_invalid_inputs_raise_value_error(impl: ModuleType, wide: bool) -> None:
    ipad, opad = Pseudonymizer("t", b"v" * 32)._pads()
    fmt = "<{}" + ("q" if wide else "i")

    def offs(*values: int) -> bytes:
        return struct.pack(fmt.format(len(values)), *values)

    data = b"abcdefgh"
    good = offs(0, 3, 8)
    assert len(impl.hmac_sha256(ipad, opad, good, data, 0, 2, wide)) == 64
    bad_calls = [
        (ipad[:63], opad, good, data, 0, 2),  # short pad
        (ipad, opad + b"x", good, data, 0, 2),  # long pad
        (ipad, opad, good, data, 0, 3),  # count past the offsets
        (ipad, opad, good, data, 2, 1),  # start past the offsets
        (ipad, opad, good, data, -1, 1),
        (ipad, opad, good, data, 0, -1),
        (ipad, opad, good[:-1], data, 0, 1),  # not a multiple of the offset width
        (ipad, opad, b"", data, 0, 1),
        (ipad, opad, good, data[:7], 0, 2),  # end past data
        (ipad, opad, offs(0, 5, 3), data, 0, 2),  # not monotonic
        (ipad, opad, offs(-1, 3), data, 0, 1),  # negative
        (ipad, opad, offs(0, 1, 2, 9, 9), data, 0, 4),  # bad in the second pair
        (ipad, opad, offs(0, 1, 2, 3, 2), data, 1, 3),
        (ipad, opad, offs(0, 2**31 - 1 if not wide else 2**62), data, 0, 1),
        (ipad, opad, good, data, 0, 2**62),
    ]
    for args in bad_calls:
        with pytest.raises(ValueError):
            impl.hmac_sha256(*args, wide)
    with pytest.raises(TypeError):
        impl.hmac_sha256("not bytes", opad, good, data, 0, 2, wide)


@needs_ext
def test_two_threads_hash_concurrently() -> None:
    assert hb is not None
    keys = [b"a" * 32, b"b" * 32]
    arrays = [pa.array(_e164(60_000, seed=s)) for s in (3, 4)]
    expected = [
        Pseudonymizer("t", k).pseudonyms(v.encode() for v in a.to_pylist())
        for k, a in zip(keys, arrays, strict=True)
    ]
    results: dict[int, list[list[bytes]]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        p = Pseudonymizer("t", keys[i])
        barrier.wait()
        for _ in range(5):
            results[i].append(p.pseudonyms_arrow(arrays[i]).to_pylist())

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert len(results[i]) == 5
        assert all(r == expected[i] for r in results[i])


def test_bucket_prefixes_are_the_first_32_bits() -> None:
    from breach_notify.crypto.pseudonymizer import bucket_prefixes

    digests = [os.urandom(32) for _ in range(1000)] + [b"\xff" * 32, b"\x00" * 32]
    arr = pa.array(digests, pa.binary(32))
    expected = [int.from_bytes(d[:4], "big") for d in digests]
    assert bucket_prefixes(arr).to_pylist() == expected
    assert bucket_prefixes(arr.slice(3)).to_pylist() == expected[3:]  # sliced: the Python path
    assert bucket_prefixes(pa.array([], pa.binary(32))).to_pylist() == []
    with pytest.raises(TypeError):
        bucket_prefixes(pa.array(digests, pa.binary()))
    with pytest.raises(ValueError):
        bucket_prefixes(pa.array([digests[0], None], pa.binary(32)))
