"""Shared fixtures: a fresh data dir with a keyring, and the CLI runner."""

from __future__ import annotations

import fcntl
import pickle
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from support.fake_twilio import FakeTwilio
from support.fake_twilio import env as twilio_env
from support.flows import DemoRun, EmbeddedRun, Run, clean_env, demo_run, embedded_run
from support.flows import cli as run_cli
from support.webhooks import Hooks, Start, serving

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings

T = TypeVar("T")

if TYPE_CHECKING:
    from flows.serve import PrefectServer


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_children() -> None:
    """A child started with SIGINT ignored keeps it ignored (Python then installs no
    KeyboardInterrupt handler), and a library run by an earlier test in this worker can leave it
    ignored: seen as ``ui`` and ``serve`` children that never got the test's Ctrl-C. Each test
    starts with Python's own handler, so children get SIGINT as they would from a terminal."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
    from flows.serve import PrefectServer

    srv = PrefectServer(Settings(home=tmp_path / "server"))
    srv.start()
    print(f"prefect server started in {srv.started_in:.1f}s")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    """A fake Twilio API on loopback, with this test's credentials (and only those) set."""
    for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(k, raising=False)
    for k, v in twilio_env().items():
        monkeypatch.setenv(k, v)
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def cli(home: Path) -> Callable[..., Run]:
    """Run ``breach-notify --home HOME ARGS…`` in a subprocess with a clean environment."""

    captured: list[Run] = []

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
        res = run_cli(home, *args, env=clean_env(**(env or {})), timeout=timeout)
        captured.append(res)
        return res

    run.captured = captured  # type: ignore[attr-defined]
    return run


@pytest.fixture
def start(home: Path, keyring: Keyring, caplog: pytest.LogCaptureFixture) -> Iterator[Start]:
    """Start a webhook server (``start(apply_events=False, **settings)``); stopped and scanned
    for plaintext numbers after the test."""
    caplog.set_level("INFO")
    with serving(home, keyring, lambda: caplog.text) as run:
        yield run


@pytest.fixture
def hooks(start: Start) -> Hooks:
    return start()


def _once_per_run(
    factory: pytest.TempPathFactory, worker_id: str, name: str, make: Callable[[Path], T]
) -> T:
    """``make(dir)`` once per test run: under xdist the first worker to ask makes it (holding a
    lock in the run's shared temp dir) and leaves it pickled there for the others."""
    if worker_id == "master":
        return make(factory.mktemp(name))
    shared = factory.getbasetemp().parent
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / f"{name}.pickle"
        if done.is_file():
            made: T = pickle.loads(done.read_bytes())
            return made
        (shared / name).mkdir()
        made = make(shared / name)
        done.write_bytes(pickle.dumps(made))
        return made


@pytest.fixture(scope="session")
def run_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> EmbeddedRun:
    """``breach-notify run`` twice in embedded mode, once per test run. Tests only read its home
    (test_leak's control tasks work on a copy)."""
    return _once_per_run(tmp_path_factory, worker_id, "embedded", embedded_run)


@pytest.fixture(scope="session")
def demo_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DemoRun:
    """``breach-notify demo``, once per test run. Tests only read its home (test_ui serves a
    copy)."""
    return _once_per_run(tmp_path_factory, worker_id, "demo", demo_run)


@pytest.fixture
def small_target(monkeypatch: pytest.MonkeyPatch) -> int:
    """Self-check buckets of at most 64, so that a test-sized breach gets several bits."""
    from breach_notify.ingest import selfcheck

    monkeypatch.setattr(selfcheck, "TARGET_BUCKET", 64)
    return 64


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with end-to-end (``slow``) tests first, each module's own order kept: xdist hands
    out whole modules (``--dist loadfile``), and the long ones should not be the last to start."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
