"""Helpers shared by the orchestration tests (no tests here).

``embedded_run`` runs ``breach-notify run`` twice on a generated inbox in embedded mode (one
temporary PREFECT_HOME inside the data dir) once per session; the flow and leak tests both read
its outcome. Subprocesses end with their temporary server, so Prefect has finished writing when
the tests look at ``prefect.db``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breach_notify.crypto import Keyring
from breach_notify.demo.sample import Sample, write_sample
from breach_notify.settings import Settings
from breach_notify.store.db import session

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)  # type: ignore[no-any-return]


@dataclass
class EmbeddedRun:
    home: Path
    sample: Sample
    first: Run
    second: Run
    outputs: list[str] = field(default_factory=list)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any Prefect or breach-notify settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "BREACH_NOTIFY_")) and k != "DO_NOT_TRACK"
    }
    env["PYTHONFAULTHANDLER"] = "1"  # a hung child shows its stacks on SIGABRT (stop_process)
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[str], how: int, timeout: float = 60) -> str:
    """Send ``how`` and wait for the process to end; its stderr. A process that does not end in
    time is sent SIGABRT, which makes a Python started with ``PYTHONFAULTHANDLER=1`` (see
    :func:`clean_env`) print every thread's stack: the failure shows where it hung."""
    proc.send_signal(how)
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            stderr = proc.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            stderr = proc.communicate()[1]
        hung = f"still running {timeout:.0f}s after {how!r}:\n{stderr[-6000:]}"
        raise AssertionError(hung) from None


def cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> Run:
    """``breach-notify --home HOME ARGS…`` in a subprocess."""
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "breach_notify", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        cwd=str(home.parent),
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - began)


def small_sample(root: Path, seed: int = 7) -> Sample:
    """A small generated inbox: two breaches, a few dozen subscribers."""
    return write_sample(
        root,
        seed=seed,
        us_distinct=240,
        au_distinct=60,
        subscribers_in_us=20,
        subscribers_in_au=6,
        subscribers_elsewhere=4,
        us_k=10,
        au_k=5,
    )


def prepared_home(home: Path, sample: Sample, keyring: Path | None = None) -> Settings:
    """A data dir with a keyring (new, or a copy of ``keyring``) and the sample's subscribers."""
    from breach_notify.subscribers.importer import import_file

    settings = Settings(home=home)
    settings.ensure_home()
    if keyring is None:
        ring = Keyring.create(settings.keyring_path)
    else:
        settings.keyring_path.write_bytes(keyring.read_bytes())
        settings.keyring_path.chmod(0o600)
        ring = Keyring.load(settings.keyring_path)
    with session(settings) as conn:
        import_file(
            conn,
            ring,
            settings,
            sample.subscribers_csv,
            consent_source="test",
            confirmed=True,
            gateway=None,
        )
    return settings


_EMBEDDED: EmbeddedRun | None = None


def embedded_run(root: Path) -> EmbeddedRun:
    """Once per session: two ``run`` calls on one generated inbox, embedded Prefect."""
    global _EMBEDDED
    if _EMBEDDED is None:
        sample = small_sample(root / "sample")
        home = root / "home"
        prepared_home(home, sample)
        args = (
            "run",
            "--inbox",
            str(sample.inbox),
            "--gateway",
            "dryrun://",
            "--ignore-quiet-hours",
            "--rate",
            "1000",
            "--json",
        )
        first = cli(home, *args)
        second = cli(home, *args)
        _EMBEDDED = EmbeddedRun(home, sample, first, second)
    return _EMBEDDED


@dataclass
class DemoRun:
    home: Path
    truth: Sample  # the bundled sample written again by its generator: every number in it
    run: Run


def demo_run(root: Path) -> DemoRun:
    """``breach-notify demo`` into ``root/home``."""
    truth = write_sample(root / "truth")
    home = root / "home"
    return DemoRun(home, truth, cli(home, "demo", timeout=300))


@dataclass
class PrefectDB:
    path: Path

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, params).fetchall()


def processes_under(root: Path) -> Iterator[str]:
    """Command lines of live processes whose environment mentions ``root`` (ours, by data dir)."""
    needle = str(root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(os.getpid()):
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in environ:
            yield f"{proc.name}: {cmd}"


def server_env(api_url: str, client_home: Path, **extra: str) -> dict[str, str]:
    """Environment for CLI, deploy and worker processes that report to a real server."""
    from flows import prefect_env

    base = clean_env(PREFECT_API_URL=api_url, **extra)
    env = prefect_env.environment(Settings(home=client_home), base)
    env["PREFECT_HOME"] = str(client_home)  # keep the client's own files out of ~/.prefect
    return env


def api(api_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the Prefect REST API."""
    import httpx

    response = httpx.request(method, f"{api_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()
