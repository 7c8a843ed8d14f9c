"""store/: migrations, settings applied on connect, transactions, lock retry."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from breach_notify.errors import OperationalError
from breach_notify.settings import Settings
from breach_notify.store import db, migrate
from breach_notify.store.db import connect, in_transaction, session, transaction


def test_fresh_store_is_migrated_and_idempotent(settings: Settings) -> None:
    conn = connect(settings)
    tables = {
        r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert {
        "breaches",
        "breach_pseudonyms",
        "subscribers",
        "subscriber_events",
        "notices",
    } <= tables
    latest = max(v for v, _, _ in migrate.available())
    assert migrate.schema_version(conn) == latest
    assert db.migrate(conn) == latest
    conn.close()
    assert (settings.home / "breach-notify.duckdb").exists()


def test_settings_are_applied(home) -> None:  # type: ignore[no-untyped-def]
    s = Settings(home=home, memory_limit="256MB", threads=1)
    with session(s) as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()
        temp = conn.execute("SELECT current_setting('temp_directory')").fetchone()
        threads = conn.execute("SELECT current_setting('threads')").fetchone()
    assert limit is not None and temp is not None and threads is not None
    assert limit[0].replace(" ", "") in ("256.0MB", "244.1MiB", "256MB")
    assert temp[0] == str(home / "tmp") and threads[0] == 1


def test_transaction_rolls_back_on_error(settings: Settings) -> None:
    with session(settings) as conn:
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute(
                "INSERT INTO breaches (id, title, format, key_id, k) "
                "VALUES ('b', 't', 'csv', 'p1', 50)"
            )
            raise RuntimeError("boom")
        assert conn.execute("SELECT count(*) FROM breaches").fetchone() == (0,)


def test_transaction_inside_a_transaction_joins_it(settings: Settings) -> None:
    insert = "INSERT INTO breaches (id, title, format, key_id, k) VALUES (?, 't', 'csv', 'p1', 50)"
    with session(settings) as conn:
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute(insert, ["outer"])
            with transaction(conn):
                conn.execute(insert, ["inner"])
            assert in_transaction(conn)  # the inner block did not commit the outer one
            raise RuntimeError("boom")
        assert conn.execute("SELECT count(*) FROM breaches").fetchone() == (0,)
        with transaction(conn), transaction(conn):
            conn.execute(insert, ["both"])
        assert not in_transaction(conn)
        assert conn.execute("SELECT id FROM breaches").fetchall() == [("both",)]


def test_only_the_store_begins_commits_or_rolls_back() -> None:
    """One transaction helper: no other module handles the store's transactions by hand. The
    web's event journal (``events/``) is a separate SQLite file with its own group commit."""
    statement = re.compile(r"[\"'](BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)
    root = Path(db.__file__).parents[1]
    by_hand = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p != Path(db.__file__)
        and p.parent.name != "events"
        and statement.search(p.read_text(encoding="utf-8"))
    )
    assert by_hand == []


def test_transaction_rolls_back_after_a_failed_statement(settings: Settings) -> None:
    insert = (
        "INSERT INTO breaches (id, title, format, key_id, k) VALUES ('b', 't', 'csv', 'p1', 50)"
    )
    with session(settings) as conn:
        with pytest.raises(duckdb.ConstraintException), transaction(conn):
            conn.execute(insert)
            conn.execute(insert)  # duplicate key: DuckDB aborts the transaction
        assert not in_transaction(conn)
        assert conn.execute("SELECT count(*) FROM breaches").fetchone() == (0,)


def test_lock_held_by_another_process_times_out_cleanly(settings: Settings) -> None:
    connect(settings).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
            "print('ok', flush=True); time.sleep(30)",
            str(settings.db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        quick = settings.model_copy(update={"lock_timeout_seconds": 0.5})
        started = time.monotonic()
        with pytest.raises(OperationalError, match="busy"):
            connect(quick)
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    connect(settings).close()  # free again


def test_migration_004_fills_the_bucket_prefix_of_existing_rows() -> None:
    import duckdb

    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    for version, name, sql in migrate.available():
        if version < 4:
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
    conn.execute(
        "INSERT INTO breach_pseudonyms"
        " SELECT 'b', unhex(sha256(i::VARCHAR)), 1 FROM range(500) t(i)"
    )
    assert db.migrate(conn) >= 4
    rows = conn.execute("SELECT pseudonym, prefix FROM breach_pseudonyms").fetchall()
    assert len(rows) == 500
    assert all(prefix == int.from_bytes(p[:4], "big") for p, prefix in rows)
    with pytest.raises(duckdb.ConstraintException):
        conn.execute(
            "INSERT INTO breach_pseudonyms (breach_id, pseudonym, kinds) VALUES ('b', 'x', 1)"
        )
