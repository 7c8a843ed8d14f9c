"""Keyed pseudonyms: HMAC-SHA256(key, e164), in Python and as a DuckDB SQL expression.

Both paths return the same 32 bytes. The SQL form is the textbook HMAC construction
``H(opad || H(ipad || m))`` with the two 64-byte pads bound as parameters, so the key is never
part of a query text, a log, or anything DuckDB stores.

:meth:`Pseudonymizer.pseudonyms_arrow` hashes a whole Arrow array in C (``_hmacbatch``: SHA-NI
when the CPU has it, GIL released) if that extension was built, else with hashlib
(``FAST_HMAC`` says which).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

_hmacbatch: Any
try:
    _hmacbatch = importlib.import_module("breach_notify.crypto._hmacbatch")
except ImportError:  # installed without a C compiler: the hashlib path below
    _hmacbatch = None

FAST_HMAC: bool = _hmacbatch is not None
"""Whether :meth:`Pseudonymizer.pseudonyms_arrow` uses the C extension."""

_BLOCK = 64
_PSEUDONYM = pa.binary(32)
_counter = itertools.count()


@dataclass(frozen=True)
class SqlExpression:
    """SQL text with named ``$`` parameters; pass ``params`` to ``execute`` alongside your own."""

    sql: str
    params: dict[str, bytes] = field(repr=False)


class Pseudonymizer:
    """HMAC-SHA256 under one versioned key. Note: this does not normalise; pass E.164 text."""

    def __init__(self, key_id: str, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("key must be bytes")
        if len(key) < 32:
            raise ValueError("a pseudonym key needs at least 32 bytes")
        self.key_id = key_id
        self.__key = key

    @classmethod
    def _unchecked(cls, key_id: str, key: bytes) -> Pseudonymizer:
        """Any key length, for published test vectors only."""
        self = cls.__new__(cls)
        self.key_id = key_id
        self.__key = key
        return self

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"

    def pseudonym(self, e164: str) -> bytes:
        """The 32-byte pseudonym of an E.164 string."""
        return self.digest(e164.encode())

    def digest(self, message: bytes) -> bytes:
        """HMAC-SHA256 of arbitrary bytes (used for confirmation codes, test vectors)."""
        if not isinstance(message, bytes):
            raise TypeError("message must be bytes")
        return hmac.new(self.__key, message, hashlib.sha256).digest()

    def pseudonyms(self, values: Iterable[bytes]) -> list[bytes]:
        """The pseudonyms of many encoded E.164 values: the bulk path of an ingest.

        Equal to :meth:`pseudonym` for each value, about twice as fast: the inner and outer
        hash states after the pads are computed once and copied per value.
        """
        inner, outer = self._hash_states()
        icopy, ocopy = inner.copy, outer.copy
        out: list[bytes] = []
        append = out.append
        for value in values:
            h = icopy()
            h.update(value)
            o = ocopy()
            o.update(h.digest())
            append(o.digest())
        return out

    def pseudonyms_arrow(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The pseudonyms of a null-free string/binary (or large_) Arrow array, as ``binary(32)``.

        Same bytes as :meth:`pseudonyms`; in C with the GIL released when ``FAST_HMAC``, so
        another thread can run meanwhile. Raises ValueError on nulls, TypeError on other types.
        """
        if isinstance(values, pa.ChunkedArray):
            chunks = [self.pseudonyms_arrow(chunk) for chunk in values.chunks]
            return pa.concat_arrays(chunks) if chunks else pa.array([], _PSEUDONYM)
        kind = values.type
        if pa.types.is_string(kind) or pa.types.is_binary(kind):
            wide = False
        elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
            wide = True
        else:
            raise TypeError(f"pseudonyms_arrow needs string or binary values, not {kind}")
        if values.null_count:
            raise ValueError(f"pseudonyms_arrow: {values.null_count} null value(s)")
        n = len(values)
        if n == 0:
            return pa.array([], _PSEUDONYM)
        if _hmacbatch is None:
            plain = values.cast(pa.large_binary() if wide else pa.binary())
            out = b"".join(self.pseudonyms(plain.to_pylist()))
        else:
            _, offsets, data = values.buffers()
            ipad, opad = self._pads()
            out = _hmacbatch.hmac_sha256(
                ipad, opad, offsets, b"" if data is None else data, values.offset, n, wide
            )
        return pa.FixedSizeBinaryArray.from_buffers(_PSEUDONYM, n, [None, pa.py_buffer(out)])

    def sql_expression(self, column: str, *, blob: bool = False) -> SqlExpression:
        """A DuckDB expression computing the pseudonym (BLOB) of VARCHAR ``column``.

        With ``blob=True`` the column is already BLOB (used for binary test vectors).
        """
        n = next(_counter)
        inner, outer = f"bn_ipad_{n}", f"bn_opad_{n}"
        ipad, opad = self._pads()
        message = column if blob else f"encode({column})"
        sql = f"unhex(sha256(${outer}::BLOB || unhex(sha256(${inner}::BLOB || {message}))))"
        return SqlExpression(sql, {inner: ipad, outer: opad})

    def _pads(self) -> tuple[bytes, bytes]:
        key = self.__key
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)

    def _hash_states(self) -> tuple[hashlib._Hash, hashlib._Hash]:
        """Inner and outer SHA-256 states after the pads (private: they are as good as the key)."""
        ipad, opad = self._pads()
        return hashlib.sha256(ipad), hashlib.sha256(opad)


def bucket_prefixes(pseudonyms: pa.Array) -> pa.Array:
    """The k-anonymity bucket key of each pseudonym of a ``binary(32)`` array: its first 32 bits
    as an unsigned integer (``uint32``), so ``prefix >> (32 - L)`` is the L-bit bucket."""
    if pseudonyms.type != _PSEUDONYM:
        raise TypeError(f"bucket_prefixes needs binary(32) values, not {pseudonyms.type}")
    n = len(pseudonyms)
    if pseudonyms.null_count:
        raise ValueError(f"bucket_prefixes: {pseudonyms.null_count} null value(s)")
    if n == 0:
        return pa.array([], pa.uint32())
    if _hmacbatch is None or pseudonyms.offset:
        return pa.array([int.from_bytes(v[:4], "big") for v in pseudonyms.to_pylist()], pa.uint32())
    out = _hmacbatch.prefixes(pseudonyms.buffers()[1], n)
    return pa.Array.from_buffers(pa.uint32(), n, [None, pa.py_buffer(out)])
