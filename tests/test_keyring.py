"""Keyring: 0600 file, overwrite refusal, permission check, environment, rotation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from breach_notify.crypto import Keyring, KeyringError
from breach_notify.crypto.keyring import ENV_VAR, MAX_KEYRING_BYTES
from breach_notify.errors import OperationalError


def test_create_is_0600_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "k" / "keyring.json"
    ring = Keyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.key_ids == {"pseudonym": ["p1"], "seal": ["s1"], "code": ["c1"], "oprf": ["o1"]}
    again = Keyring.load(path)
    assert again.pseudonymizer().pseudonym("+447700900123") == ring.pseudonymizer().pseudonym(
        "+447700900123"
    )


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        Keyring.create(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_load_refuses_group_or_world_readable(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    os.chmod(path, mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(path)


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="keys init"):
        Keyring.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    os.chmod(bad, 0o600)
    with pytest.raises(KeyringError, match="malformed"):
        Keyring.load(bad)


def test_environment_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keyring.json"
    ring = Keyring.create(path)
    monkeypatch.setenv(ENV_VAR, path.read_text())
    from_env = Keyring.load(tmp_path / "absent.json")
    assert from_env.pseudonymizer().pseudonym("+33612345678") == ring.pseudonymizer().pseudonym(
        "+33612345678"
    )
    with pytest.raises(KeyringError, match="rotate in the file"):
        from_env.rotate("seal")


def test_rotate_keeps_old_versions(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = Keyring.create(path)
    old = ring.pseudonymizer()
    assert ring.rotate("pseudonym") == "p2"
    loaded = Keyring.load(path)
    assert loaded.key_ids["pseudonym"] == ["p1", "p2"]
    assert loaded.active_id("pseudonym") == "p2"
    assert loaded.pseudonymizer("p1").pseudonym("+1") == old.pseudonym("+1")
    assert loaded.pseudonymizer().pseudonym("+1") != old.pseudonym("+1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = ring.sealer().seal("+447700900123", "r")
    ring.rotate("seal")
    assert Keyring.load(path).sealer().open(sealed, "r") == "+447700900123"
    with pytest.raises(KeyringError):
        ring.rotate("nonsense")


def test_keys_are_distinct_and_32_bytes(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    data = json.loads(path.read_text())
    import base64

    keys = [
        base64.b64decode(v)
        for p in ("pseudonym", "seal", "code", "oprf")
        for v in data[p]["keys"].values()
    ]
    assert all(len(k) == 32 for k in keys) and len(set(keys)) == 4


def _keyring_on_a_volume(tmp_path: Path) -> tuple[Path, Path]:
    """A keyring kept elsewhere (a mounted secret volume) and symlinked into the data dir."""
    volume = tmp_path / "volume"
    volume.mkdir(mode=0o700)
    target = volume / "keyring.json"
    Keyring.create(target)
    link = tmp_path / "home" / "keyring.json"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(target)
    return link, target


def test_rotate_writes_through_a_symlink_and_keeps_a_backup(tmp_path: Path) -> None:
    link, target = _keyring_on_a_volume(tmp_path)
    before = target.read_bytes()
    ring = Keyring.load(link)
    assert ring.rotate("seal") == "s2"
    assert link.is_symlink() and link.resolve() == target
    on_volume = Keyring.load(target)
    assert on_volume.key_ids["seal"] == ["s1", "s2"] and on_volume.active_id("seal") == "s2"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    backup = ring.backup_path
    assert backup is not None and backup.parent == target.parent
    assert backup.name.startswith("keyring.json.bak-")
    assert backup.read_bytes() == before and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["keyring.json", backup.name])
    # A second rotation keeps its own backup; the first stays.
    ring.rotate("pseudonym")
    assert ring.backup_path != backup and backup.exists()
    assert Keyring.load(ring.backup_path).key_ids["seal"] == ["s1", "s2"]  # type: ignore[arg-type]


def test_failed_rotate_write_leaves_the_keyring_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = _keyring_on_a_volume(tmp_path)
    before = target.read_bytes()
    ring = Keyring.load(link)

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("breach_notify.crypto.keyring.os.replace", disk_full)
    with pytest.raises(OperationalError, match="nothing was migrated"):
        ring.rotate("seal")
    assert target.read_bytes() == before and link.is_symlink()
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def _write_ring(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("purpose,kid", [("pseudonym", "p1"), ("seal", "s1"), ("code", "c1")])
def test_keyring_with_a_short_key_is_refused_naming_the_key(
    tmp_path: Path, purpose: str, kid: str
) -> None:
    import base64

    path = tmp_path / "keyring.json"
    Keyring.create(path)
    data = json.loads(path.read_text())
    data[purpose]["keys"][kid] = base64.b64encode(b"k" * 16).decode()
    _write_ring(path, data)
    with pytest.raises(KeyringError, match=f"{purpose} key {kid} in the keyring is 16 bytes"):
        Keyring.load(path)


def test_keyring_with_a_malformed_key_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    data = json.loads(path.read_text())
    data["seal"]["keys"]["s1x"] = data["seal"]["keys"]["s1"]
    _write_ring(path, data)
    with pytest.raises(KeyringError, match="not 's<number>'") as info:
        Keyring.load(path)
    assert "s1x" not in str(info.value)


def test_deeply_nested_keyring_json_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = "[" * 200_000 + "]" * 200_000
    with pytest.raises(KeyringError, match="cannot be read as JSON"):
        Keyring.load(_write_ring(tmp_path / "keyring.json", nested))
    monkeypatch.setenv(ENV_VAR, '{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(KeyringError, match=f"{ENV_VAR} cannot be read as JSON"):
        Keyring.load(tmp_path / "absent.json")


def test_oversized_keyring_is_refused_before_reading(tmp_path: Path) -> None:
    path = _write_ring(tmp_path / "keyring.json", " " * (MAX_KEYRING_BYTES + 1))
    with pytest.raises(KeyringError, match="larger than"):
        Keyring.load(path)


def test_keyring_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dir.json"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyringError, match="is a directory; point --keyring"):
        Keyring.load(folder)
    afile = tmp_path / "afile"
    afile.write_text("")
    for path in (afile / "keyring.json", afile / "sub" / "keyring.json"):
        with pytest.raises(KeyringError, match="a file is in the way"):
            Keyring.create(path)
    assert afile.read_text() == ""


def _without_oprf(path: Path) -> None:
    """Rewrite a keyring as one made before the ``oprf`` purpose existed."""
    data = json.loads(path.read_text())
    del data["oprf"]
    path.write_text(json.dumps(data))


def test_keyring_made_before_oprf_loads_and_gets_a_key_on_first_need(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    _without_oprf(path)
    old = Keyring.load(path)
    assert "oprf" not in old.key_ids
    with pytest.raises(KeyringError, match="keys rotate --oprf"):
        old.oprf_server()
    assert old.ensure_oprf() == "o1"
    assert old.ensure_oprf() == "o1"
    again = Keyring.load(path)
    assert again.key_ids["oprf"] == ["o1"]
    assert again.oprf_server().public_key == old.oprf_server().public_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotating_oprf_keeps_the_old_key_serving(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = Keyring.create(path)
    first = ring.oprf_server()
    assert first.key_id == "o1"
    assert ring.rotate("oprf") == "o2"
    loaded = Keyring.load(path)
    assert loaded.oprf_server().key_id == "o2"
    assert loaded.oprf_server("o1").tag("+447700900123") == first.tag("+447700900123")
    assert loaded.oprf_server().tag("+447700900123") != first.tag("+447700900123")
    with pytest.raises(KeyringError, match="o9"):
        loaded.oprf_server("o9")


def test_first_oprf_key_cannot_be_added_to_an_environment_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    _without_oprf(path)
    monkeypatch.setenv(ENV_VAR, path.read_text())
    with pytest.raises(KeyringError, match="rotate in the file"):
        Keyring.load(tmp_path / "absent.json").ensure_oprf()
