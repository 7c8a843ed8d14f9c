"""Shared fixtures: a fresh data dir with a keyring, and the CLI runner."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings

if TYPE_CHECKING:
    from breach_notify.flows.serve import PrefectServer


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty data dir."""
    d = tmp_path / "home"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring.create(settings.keyring_path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrefectServer]:
    """A real ``prefect server start`` on loopback (home ``tmp_path/server``), stopped after."""
    from breach_notify.flows.serve import PrefectServer

    srv = PrefectServer(Settings(home=tmp_path / "server"))
    srv.start()
    print(f"prefect server started in {srv.started_in:.1f}s")
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.stdout)


@pytest.fixture
def cli(home: Path) -> Callable[..., Result]:
    """Run ``breach-notify --home HOME ARGS…`` in a subprocess; captures stdout and stderr."""
    captured: list[Result] = []

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        import os

        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "breach_notify", "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )
        res = Result(proc.returncode, proc.stdout, proc.stderr)
        captured.append(res)
        return res

    run.captured = captured  # type: ignore[attr-defined]
    return run
