"""CLI contract for the foundation: exit codes, --json shape, global options, no key leaks."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from breach_notify.cli import _hoist_globals


def test_keys_init_json_and_mode(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("keys", "init", "--json")
    assert res.code == 0, res.stderr
    assert res.json == {
        "keyring": str(home / "keyring.json"),
        "key_ids": {"pseudonym": ["p1"], "seal": ["s1"], "code": ["c1"], "oprf": ["o1"]},
    }
    assert stat.S_IMODE((home / "keyring.json").stat().st_mode) == 0o600


def test_keys_init_twice_is_exit_2_and_keeps_keys(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("keys", "init").code == 0
    before = (home / "keyring.json").read_bytes()
    res = cli("keys", "init", "--json")
    assert res.code == 2
    assert "refusing to overwrite" in res.json["error"] and "refusing" in res.stderr
    assert (home / "keyring.json").read_bytes() == before


def test_global_options_anywhere(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ring = tmp_path / "elsewhere" / "ring.json"
    res = cli("keys", "init", "--keyring", str(ring), "--json")
    assert res.code == 0 and Path(res.json["keyring"]) == ring and ring.exists()
    assert _hoist_globals(["ingest", "f", "--home", "h", "--json"]) == [
        "--home",
        "h",
        "ingest",
        "f",
        "--json",
    ]
    assert _hoist_globals(["x", "--keyring=k"]) == ["--keyring=k", "x"]


def test_status_json_on_empty_store(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("status", "--json")
    assert res.code == 0, res.stderr
    assert res.json == {
        "breaches": [],
        "subscribers": {},
        "notices": {},
        "signup_sms": {"budget": 500, "spent": 0, "remaining": 500},
        "events": {"pending": 0, "oldest_seconds": 0.0},
        "alarms": [],
    }
    assert res.stdout.count("\n") == 1


def test_usage_errors_are_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["no-such-command"], ["status", "--bogus"], ["keys", "rotate"]):
        res = cli(*args)
        assert res.code == 2, (args, res.stderr)
        assert "error" in res.stderr.lower()


def test_usage_error_quoting_a_number_is_redacted_in_one_json_object(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("status", "+15555550123", "--json")
    assert res.code == 2, res.stderr
    assert res.json == {"error": "Got unexpected extra argument(s) ([redacted])", "exit_code": 2}
    assert res.stdout.count("\n") == 1 and "5555550123" not in res.stdout + res.stderr


def test_keys_rotate_oprf_adds_a_version_and_two_flags_are_exit_2(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli("keys", "init")
    res = cli("keys", "rotate", "--oprf", "--json")
    assert res.code == 0, res.stderr
    assert res.json["active"] == "o2" and res.json["key_ids"]["oprf"] == ["o1", "o2"]
    res = cli("keys", "rotate", "--oprf", "--seal", "--json")
    assert res.code == 2 and "exactly one of" in res.json["error"]


def test_exposed_keyring_is_exit_2_with_fix(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    cli("keys", "init")
    (home / "keyring.json").chmod(0o644)
    res = cli("keys", "rotate", "--seal", "--json")
    assert res.code == 2 and "chmod 600" in res.json["error"]


def test_no_key_material_in_store_or_output(
    cli, home: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    outputs = [
        cli("keys", "init", "--json"),
        cli("status", "--json"),
        cli("keys", "rotate", "--pseudonym", "--json"),
        cli("status"),
    ]
    data = json.loads((home / "keyring.json").read_text())
    secrets = [
        base64.b64decode(v)
        for p in ("pseudonym", "seal", "code", "oprf")
        for v in data[p]["keys"].values()
    ]
    forms = set()
    for key in secrets:
        forms |= {key, key.hex().encode(), base64.b64encode(key)}
    for f in home.rglob("*"):
        # The keyring and the backups ``keys rotate`` keeps beside it are the only key stores.
        if f.is_file() and f.name != "keyring.json" and not f.name.startswith("keyring.json.bak-"):
            blob = f.read_bytes()
            assert not any(s in blob for s in forms), f
    text = "".join(r.stdout + r.stderr for r in outputs).encode()
    assert not any(s in text for s in forms)


def test_files_written_by_commands_are_owner_only(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("keys", "init").code == 0
    assert cli("status", "--json").code == 0
    for f in home.rglob("*"):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


def test_keyring_that_is_a_fifo_is_exit_2_without_hanging(cli, home: Path) -> None:  # type: ignore[no-untyped-def]
    os.mkfifo(home / "keyring.json", 0o600)
    for args in (("keys", "rotate", "--seal", "--json"), ("keys", "verify", "--json")):
        res = cli(*args, timeout=60)
        assert res.code == 2, res.stderr
        assert "FIFO" in res.json["error"] and "--keyring" in res.json["error"]


def test_home_that_is_a_file_is_exit_2_with_the_fix(tmp_path: Path) -> None:
    import subprocess
    import sys

    from support.flows import clean_env

    afile = tmp_path / "not-a-dir"
    afile.write_text("")
    for home in (afile, afile / "below"):
        for args in (("status", "--json"), ("keys", "init", "--json")):
            res = subprocess.run(
                [sys.executable, "-m", "breach_notify", "--home", str(home), *args],
                capture_output=True,
                text=True,
                env=clean_env(),
                timeout=60,
                cwd=tmp_path,
            )
            assert res.returncode == 2, (home, args, res.stderr)
            assert "not a directory; pass a directory" in json.loads(res.stdout)["error"]
    assert afile.read_text() == ""


def test_invalid_setting_is_exit_2_naming_it(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("status", "--json", env={"BREACH_NOTIFY_THREADS": "many"})
    assert res.code == 2 and "BREACH_NOTIFY_THREADS" in res.json["error"]
    assert "many" not in res.stdout + res.stderr
