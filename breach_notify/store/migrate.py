"""The numbered SQL migrations shipped with the package (``migrations/NNN_name.sql``).

``store.db.migrate`` applies the missing ones, each once, in a transaction.
"""

from __future__ import annotations

import re
from importlib import resources

import duckdb

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("breach_notify.store.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to the store (0 for none)."""
    rows = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()
    return int(rows[0][0]) if rows else 0
