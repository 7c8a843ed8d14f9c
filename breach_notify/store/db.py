"""The one place that opens the DuckDB file (with the project's settings, migrated) and the one
transaction helper.

DuckDB lets one process hold the file for writing. Every component therefore opens, works and
closes; a process that waits (rate limit, schedule) must not hold a connection meanwhile.
``connect`` retries a held lock for ``settings.lock_timeout_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import duckdb

from breach_notify.errors import OperationalError
from breach_notify.settings import Settings
from breach_notify.store.migrate import available, schema_version


def connect(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating and migrating if needed) the store in ``settings.home``."""
    settings.ensure_home()
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": settings.memory_limit,
        "temp_directory": str(settings.tmp_dir),
        "preserve_insertion_order": False,
        "enable_external_access": True,
    }
    if settings.threads:
        config["threads"] = settings.threads
    deadline = time.monotonic() + settings.lock_timeout_seconds
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(settings.db_path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise OperationalError(
                    f"the store {settings.db_path} is busy (another breach-notify process holds "
                    "it); retry when that process has finished"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    # Pseudonyms are random bytes: dictionary and FSST compression find nothing in them and,
    # measured, doubled the ingest's merge (the other tables are small). A global setting that
    # DuckDB ignores in ``config``, hence the SET.
    conn.execute("SET disabled_compression_methods = 'fsst,dictionary,dict_fsst'")
    if not read_only:
        migrate(conn)
    return conn


_OPEN: set[int] = set()  # id() of the connections inside a ``transaction`` block now


def in_transaction(conn: duckdb.DuckDBPyConnection) -> bool:
    """True inside a ``transaction`` block on ``conn`` (the only way the package opens one)."""
    return id(conn) in _OPEN


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any exception (which is re-raised).

    Inside a ``transaction`` block already open on ``conn`` this joins it (DuckDB cannot nest
    them): the outer one commits or rolls back everything, so a function can be atomic on its
    own and part of its caller's transaction alike. Nothing else in the package issues BEGIN,
    COMMIT or ROLLBACK (a test checks), so the open blocks are known without asking DuckDB.
    """
    key = id(conn)
    if key in _OPEN:
        yield conn
        return
    conn.execute("BEGIN TRANSACTION")
    _OPEN.add(key)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.TransactionException):  # a failed COMMIT may have ended it
            conn.execute("ROLLBACK")
        raise
    finally:
        _OPEN.discard(key)


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations not applied yet, each in its own transaction; the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    for version, name, sql in available():
        if version in done:
            continue
        with transaction(conn):
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
    return schema_version(conn)


class LazyConnection:
    """A connection opened on first use, closed before any wait (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        on_open: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
    ) -> None:
        self.settings = settings
        self._on_open = on_open
        self._conn: duckdb.DuckDBPyConnection | None = None
        self.opened_at = 0.0

    def get(self) -> duckdb.DuckDBPyConnection:
        """The open connection, opening (and migrating) the store if needed; ``on_open`` runs
        on each opening."""
        if self._conn is None:
            self._conn = connect(self.settings)
            self.opened_at = time.monotonic()
            if self._on_open is not None:
                self._on_open(self._conn)
        return self._conn

    def held_for(self) -> float:
        """Seconds since the store was opened; 0 while closed."""
        return time.monotonic() - self.opened_at if self._conn is not None else 0.0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextmanager
def session(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection closed on exit."""
    conn = connect(settings)
    try:
        yield conn
    finally:
        conn.close()
