"""Key rotation: ``keys rotate --pseudonym`` keeps matches against breaches hashed under older
keys; ``keys rotate --seal`` re-seals every number. Through the CLI, ending with the scan."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from support import privacy
from support.subscribers import DE_MOBILE, GB_MOBILE, GB_MOBILE_2, US_MOBILE

from breach_notify.cli import main
from breach_notify.crypto import Keyring, Sealed
from breach_notify.settings import Settings
from breach_notify.store.db import session
from breach_notify.subscribers import pseudonyms, rotation

# Matches through subscriber_pseudonyms alone (the decision written in 002_subscribers.sql).
JOIN = """
SELECT DISTINCT sp.subscriber_id, b.id
FROM breach_pseudonyms bp JOIN breaches b ON b.id = bp.breach_id
JOIN subscriber_pseudonyms sp ON sp.key_id = b.key_id AND sp.pseudonym = bp.pseudonym
JOIN subscribers s ON s.id = sp.subscriber_id AND s.status = 'active'
ORDER BY 1, 2
"""


@pytest.fixture
def run(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    outputs: list[str] = []

    def call(*args: str) -> tuple[int, str]:
        code = main(["--home", str(home), *args])
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])
        return code, captured.out

    call.outputs = outputs  # type: ignore[attr-defined]
    assert call("keys", "init")[0] == 0
    return call


def _import(run: Callable[..., tuple[int, str]], tmp_path: Path, *numbers: str) -> None:
    f = tmp_path / f"import-{len(list(tmp_path.iterdir()))}.csv"
    f.write_text("phone\n" + "\n".join(numbers) + "\n")
    code, out = run("subscribers", "import", str(f), "--consent-source", "test", "--confirmed")
    assert code == 0, out


def _breach(settings: Settings, breach_id: str, numbers: list[str]) -> None:
    """A breach hashed under the keyring's active pseudonym key (what ingest does)."""
    ring = Keyring.load(settings.keyring_path)
    p = ring.pseudonymizer()
    with session(settings) as conn:
        conn.execute(
            "INSERT INTO breaches (id, title, format, key_id, k) VALUES (?, ?, 'csv', ?, 1)",
            [breach_id, breach_id, p.key_id],
        )
        conn.executemany(
            "INSERT INTO breach_pseudonyms VALUES (?, ?, 1, 0)",
            [[breach_id, p.pseudonym(n)] for n in numbers],
        )


def _ids(settings: Settings) -> dict[str, str]:
    """subscriber id → number, by opening the sealed values (test only)."""
    ring = Keyring.load(settings.keyring_path)
    with session(settings) as conn:
        rows = conn.execute(
            "SELECT id, sealed, seal_key_id FROM subscribers WHERE sealed IS NOT NULL"
        ).fetchall()
    return {r[0]: ring.sealer().open(Sealed(r[2], r[1]), row_id=r[0]) for r in rows}


def test_pseudonym_rotation_keeps_old_breaches_matching(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    _import(run, tmp_path, GB_MOBILE)
    _breach(settings, "old", [GB_MOBILE, GB_MOBILE_2, DE_MOBILE])  # under p1

    code, out = run("keys", "rotate", "--pseudonym", "--json")
    assert code == 0
    got = json.loads(out)
    assert got["active"] == "p2" and got["subscribers_migrated"] == 1

    _import(run, tmp_path, GB_MOBILE_2, US_MOBILE)  # joined after the rotation
    _breach(settings, "new", [GB_MOBILE, GB_MOBILE_2, US_MOBILE])  # under p2
    by_number = {v: k for k, v in _ids(settings).items()}

    with session(settings) as conn:
        keys = conn.execute("SELECT DISTINCT pseudonym_key_id FROM subscribers").fetchall()
        assert keys == [("p2",)]
        expected = sorted(
            [
                (by_number[GB_MOBILE], "new"),
                (by_number[GB_MOBILE], "old"),
                (by_number[GB_MOBILE_2], "new"),
                (by_number[GB_MOBILE_2], "old"),
                (by_number[US_MOBILE], "new"),
            ]
        )
        assert conn.execute(JOIN).fetchall() == expected
    # The matcher finds the same pairs.
    code, out = run("match", "--json")
    assert code == 0, out
    assert json.loads(out)["new_notices"] == 5

    # A second rotation keeps both breach keys, adds the new one.
    assert run("keys", "rotate", "--pseudonym")[0] == 0
    with session(settings) as conn:
        per_key = dict(
            conn.execute("SELECT key_id, count(*) FROM subscriber_pseudonyms GROUP BY 1").fetchall()
        )
        assert per_key == {"p1": 3, "p2": 3, "p3": 3}
        assert conn.execute(JOIN).fetchall() == expected
        # A key no breach uses any more is pruned.
        conn.execute("DELETE FROM breach_pseudonyms WHERE breach_id = 'old'")
        conn.execute("DELETE FROM breaches WHERE id = 'old'")
        pseudonyms.sync(conn, Keyring.load(settings.keyring_path))
        per_key = dict(
            conn.execute("SELECT key_id, count(*) FROM subscriber_pseudonyms GROUP BY 1").fetchall()
        )
        assert per_key == {"p2": 3, "p3": 3}

    hits = privacy.scan([home], [GB_MOBILE, GB_MOBILE_2, US_MOBILE, DE_MOBILE], texts=run.outputs)
    assert hits == []


def test_sync_adds_pseudonyms_for_a_breach_under_an_older_key(
    tmp_path: Path, home: Path, run
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    assert run("keys", "rotate", "--pseudonym")[0] == 0  # p2 active before anyone subscribes
    _import(run, tmp_path, GB_MOBILE)
    ring = Keyring.load(settings.keyring_path)
    p1 = ring.pseudonymizer("p1")
    with session(settings) as conn:
        conn.execute(
            "INSERT INTO breaches (id, title, format, key_id, k) VALUES ('b', 'b', 'csv', 'p1', 1)"
        )
        conn.execute(
            "INSERT INTO breach_pseudonyms VALUES ('b', ?, 1, 0)", [p1.pseudonym(GB_MOBILE)]
        )
        assert conn.execute(JOIN).fetchall() == []
        assert pseudonyms.sync(conn, ring) == 1
        assert pseudonyms.sync(conn, ring) == 0  # idempotent
        assert len(conn.execute(JOIN).fetchall()) == 1


def test_seal_rotation_reseals_everyone(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    _import(run, tmp_path, GB_MOBILE, US_MOBILE)
    before = _ids(settings)
    code, out = run("keys", "rotate", "--seal", "--json")
    assert code == 0 and json.loads(out)["subscribers_migrated"] == 2
    with session(settings) as conn:
        assert conn.execute("SELECT DISTINCT seal_key_id FROM subscribers").fetchall() == [("s2",)]
    assert _ids(settings) == before
    # Idempotent: nothing left to migrate.
    assert rotation.apply(settings, Keyring.load(settings.keyring_path), "seal") == 0
    code, out = run("subscribers", "list", "--json")
    assert sorted(s["masked"] for s in json.loads(out)["subscribers"]) == [
        "+1 20** ***123",
        "+44 74** ***456",
    ]
    assert privacy.scan([home], [GB_MOBILE, US_MOBILE], texts=run.outputs) == []


def test_rotation_with_nothing_to_migrate(home: Path, run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("keys", "rotate", "--pseudonym", "--json")
    assert code == 0 and json.loads(out)["subscribers_migrated"] == 0
    assert (
        rotation.apply(Settings(home=home), Keyring.load(Settings(home=home).keyring_path), "code")
        == 0
    )
    with duckdb.connect(str(home / "breach-notify.duckdb"), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM subscriber_pseudonyms").fetchone() == (0,)


def _move_keyring_to_a_volume(home: Path, tmp_path: Path) -> Path:
    """Move the keyring to a 'mounted secret volume' and symlink it back, as operators do."""
    volume = tmp_path / "secrets"
    volume.mkdir(mode=0o700)
    target = volume / "keyring.json"
    (home / "keyring.json").rename(target)
    (home / "keyring.json").symlink_to(target)
    return target


def test_seal_rotation_through_a_symlinked_keyring_reaches_the_target(
    tmp_path: Path, home: Path, run
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    target = _move_keyring_to_a_volume(home, tmp_path)
    _import(run, tmp_path, GB_MOBILE, US_MOBILE)
    before = _ids(settings)

    code, out = run("keys", "rotate", "--seal", "--json")
    assert code == 0, out
    assert (home / "keyring.json").is_symlink()
    on_volume = Keyring.load(target)
    assert on_volume.active_id("seal") == "s2"
    backup = Path(json.loads(out)["backup"])
    assert backup.parent == target.parent and Keyring.load(backup).key_ids["seal"] == ["s1"]
    # Every subscriber opens with the keyring on the volume alone.
    with session(settings) as conn:
        rows = conn.execute("SELECT id, sealed, seal_key_id FROM subscribers").fetchall()
    assert {r[2] for r in rows} == {"s2"}
    opened = {r[0]: on_volume.sealer().open(Sealed(r[2], r[1]), row_id=r[0]) for r in rows}
    assert opened == before
    code, out = run("keys", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    assert privacy.scan([home, target.parent], [GB_MOBILE, US_MOBILE], texts=run.outputs) == []


def test_nothing_is_resealed_when_the_new_key_cannot_be_written(
    tmp_path: Path, home: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    _import(run, tmp_path, GB_MOBILE)
    keyring_before = (home / "keyring.json").read_bytes()

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("breach_notify.crypto.keyring.os.replace", disk_full)
    code, out = run("keys", "rotate", "--seal", "--json")
    monkeypatch.undo()
    assert code == 1 and "nothing was migrated" in json.loads(out)["error"]
    assert (home / "keyring.json").read_bytes() == keyring_before
    with session(settings) as conn:
        assert conn.execute("SELECT DISTINCT seal_key_id FROM subscribers").fetchall() == [("s1",)]
    assert run("keys", "verify")[0] == 0


def test_keys_verify_names_the_missing_key_ids_and_counts(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=home)
    _import(run, tmp_path, GB_MOBILE, US_MOBILE)
    _breach(settings, "old", [GB_MOBILE])  # under p1
    code, out = run("keys", "verify", "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "sealed_checked": 2,
        "sealed_failed": 0,
        "sealed_failed_by_key": {},
        "breaches_checked": 1,
        "breaches_missing_key": {},
        "missing_key_ids": [],
        "notices_retried": 0,
    }
    assert run("keys", "rotate", "--seal")[0] == 0
    assert run("keys", "rotate", "--pseudonym")[0] == 0
    current = (home / "keyring.json").read_bytes()
    # An operator restores a keyring from before both rotations, and drops p1 from it.
    stale = json.loads(sorted(home.glob("keyring.json.bak-*"))[0].read_text())
    stale["pseudonym"] = {"active": "p9", "keys": {"p9": stale["pseudonym"]["keys"]["p1"]}}
    (home / "keyring.json").write_text(json.dumps(stale))

    code, out = run("keys", "verify", "--json")
    assert code == 1
    got = json.loads(out)
    assert got["ok"] is False and got["sealed_checked"] == 2 and got["sealed_failed"] == 2
    assert got["sealed_failed_by_key"] == {"s2": 2}
    assert got["breaches_missing_key"] == {"p1": 1}
    assert got["missing_key_ids"] == ["p1", "s2"]
    code, _ = run("keys", "verify")
    stderr = run.outputs[-1]
    assert code == 1
    assert "2 sealed subscriber number(s) under seal key s2" in stderr
    assert "1 breach(es) were hashed under pseudonym key p1" in stderr
    assert "keys verify" in stderr

    (home / "keyring.json").write_bytes(current)  # the right keyring is back
    code, out = run("keys", "verify")
    assert code == 0 and "2 sealed numbers open" in out
    assert privacy.scan([home], [GB_MOBILE, US_MOBILE], texts=run.outputs) == []
