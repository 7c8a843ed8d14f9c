"""Does the store still match the keyring? Every sealed number opens, every breach's key is held.

Used by ``keys verify`` after a restore or a rotation. Counts and key ids only: a failed row is
counted under the key id it names, never shown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import duckdb

from breach_notify.crypto import InvalidToken, Keyring, Sealed


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of :func:`check`."""

    sealed_checked: int
    sealed_failed_by_key: dict[str, int] = field(default_factory=dict)
    breaches_checked: int = 0
    breaches_missing_key: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.sealed_failed_by_key and not self.breaches_missing_key

    @property
    def sealed_failed(self) -> int:
        return sum(self.sealed_failed_by_key.values())

    @property
    def missing_key_ids(self) -> list[str]:
        """Key ids the store needs and the keyring lacks (or holds under another key)."""
        return sorted(set(self.sealed_failed_by_key) | set(self.breaches_missing_key))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sealed_checked": self.sealed_checked,
            "sealed_failed": self.sealed_failed,
            "sealed_failed_by_key": self.sealed_failed_by_key,
            "breaches_checked": self.breaches_checked,
            "breaches_missing_key": self.breaches_missing_key,
            "missing_key_ids": self.missing_key_ids,
        }

    def problems(self) -> list[str]:
        """One sentence per failing key id (counts and ids only)."""
        lines = [
            f"{n} sealed subscriber number(s) under seal key {kid} do not open"
            for kid, n in sorted(self.sealed_failed_by_key.items())
        ]
        lines += [
            f"{n} breach(es) were hashed under pseudonym key {kid}, which the keyring lacks"
            for kid, n in sorted(self.breaches_missing_key.items())
        ]
        return lines


def check(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> KeyCheck:
    """Open every sealed subscriber number and look up every breach's pseudonym key id."""
    sealer = ring.sealer()
    failed: Counter[str] = Counter()
    checked = 0
    cursor = conn.execute(
        "SELECT id, sealed, seal_key_id FROM subscribers WHERE sealed IS NOT NULL"
    )
    while batch := cursor.fetchmany(10_000):
        for sid, blob, kid in batch:
            checked += 1
            try:
                sealer.open(Sealed(str(kid), bytes(blob)), row_id=str(sid))
            except InvalidToken:
                failed[str(kid)] += 1
    held = set(ring.key_ids["pseudonym"])
    per_key = conn.execute("SELECT key_id, count(*) FROM breaches GROUP BY 1").fetchall()
    return KeyCheck(
        sealed_checked=checked,
        sealed_failed_by_key=dict(sorted(failed.items())),
        breaches_checked=sum(int(n) for _, n in per_key),
        breaches_missing_key={str(k): int(n) for k, n in sorted(per_key) if str(k) not in held},
    )
