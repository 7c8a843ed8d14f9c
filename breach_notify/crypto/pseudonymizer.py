"""Keyed pseudonyms: HMAC-SHA256(key, e164), in Python and as a DuckDB SQL expression.

Both paths return the same 32 bytes. The SQL form is the textbook HMAC construction
``H(opad || H(ipad || m))`` with the two 64-byte pads bound as parameters, so the key is never
part of a query text, a log, or anything DuckDB stores.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

_BLOCK = 64
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
