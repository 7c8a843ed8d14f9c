"""The outbox owns every notice state transition; no other module writes ``notices.state``."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from support.sender import add_breach, add_subscriber, numbers, set_status, states

import breach_notify
from breach_notify.crypto import Keyring
from breach_notify.notify import outbox
from breach_notify.notify.match import match
from breach_notify.settings import Settings
from breach_notify.store import db

ROOT = Path(breach_notify.__file__).parent
OUTBOX = ROOT / "notify" / "outbox.py"
_UPDATE_NOTICES = re.compile(r"\bUPDATE\s+notices\b", re.IGNORECASE)


def modules_updating_notices(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.suffix in (".py", ".sql")
        and "migrations" not in path.parts
        and _UPDATE_NOTICES.search(path.read_text(encoding="utf-8"))
    )


def test_only_the_outbox_updates_notices() -> None:
    assert modules_updating_notices(ROOT) == [str(OUTBOX.relative_to(ROOT))]


def test_the_check_finds_an_update_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "outbox.py").write_text('"UPDATE notices SET state = 1"')
    (tmp_path / "stray.py").write_text("q = \"update  notices set state = 'sent'\"")
    assert modules_updating_notices(tmp_path) == ["notify/outbox.py", "stray.py"]


def test_notice_states_are_the_schemas(settings: Settings) -> None:
    with db.session(settings) as conn:
        for i, state in enumerate(outbox.STATES):
            conn.execute(
                "INSERT INTO notices (id, subscriber_id, breach_id, state) VALUES (?, 's', ?, ?)",
                [f"n{i}", f"b{i}", state],
            )
        with pytest.raises(duckdb.ConstraintException):
            conn.execute("UPDATE notices SET state = 'gone' WHERE id = 'n0'")


def test_undecryptable_notices_of_a_subscriber_gone_inactive_go_back_to_be_suppressed(
    settings: Settings, keyring: Keyring
) -> None:
    other = Keyring.create(settings.home / "other-keyring.json")  # same ids, other bytes
    a, b, c = numbers(3)
    with db.session(settings) as conn:
        subs = [add_subscriber(conn, keyring, x) for x in (a, b, c)]
        add_breach(conn, keyring, "fb", [a, b, c])
        match(conn)
        ids = [r[0] for r in conn.execute("SELECT id FROM notices ORDER BY id").fetchall()]
        assert outbox.mark_undecryptable(conn, ids) == 3
        set_status(conn, subs[0], "opted_out")
        outbox.erase(conn, subs[1], "test")
        assert outbox.retry_undecryptable(conn, other) == 1  # the opted-out one: nothing to open
        assert states(conn) == {"pending": 1, "suppressed": 1, "undecryptable": 1}
        assert outbox.undecryptable_by_key(conn) == {"s1": 1}
        assert outbox.retry_undecryptable(conn, keyring) == 1
        assert states(conn) == {"pending": 2, "suppressed": 1}
