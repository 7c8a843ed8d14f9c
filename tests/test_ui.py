"""``breach-notify ui``: Prefect's UI over the data dir's runs, on loopback, telemetry off, stopped
with the command. The demo's closing text names this command."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.flows import DemoRun, api, clean_env, cli, processes_under, stop_process
from support.privacy import scan

from flows.serve import free_port, healthy


def test_ui_without_recorded_runs_names_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = cli(home, "ui")
    assert res.code == 2
    assert "no Prefect runs are recorded" in res.stderr and "demo" in res.stderr
    assert not (home / "prefect").exists()


def test_ui_refuses_a_port_in_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "prefect").mkdir(parents=True)
    (home / "prefect" / "prefect.db").touch()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = cli(home, "ui", "--port", str(port))
    assert res.code == 1
    assert f"port {port} on 127.0.0.1 is in use" in res.stderr and "--port 0" in res.stderr


def _start_ui(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``breach-notify … ui``; return the process and the URL it printed."""
    proc = subprocess.Popen(
        argv, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()  # printed once the server answers
    assert url.startswith("http://127.0.0.1:"), proc.communicate(timeout=30)[1][-3000:]
    return proc, url


def _server_environ(url: str) -> dict[str, str]:
    """The environment of the process listening on ``url``'s port (the Prefect server)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"server" in cmd and b"start" in cmd and port.encode() in cmd:
                raw = (proc / "environ").read_bytes()
                return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)
        except OSError:
            continue
    raise AssertionError(f"no prefect server process on port {port}")


def _stop(proc: subprocess.Popen[str], how: signal.Signals) -> str:
    return stop_process(proc, how)


@pytest.mark.slow
def test_ui_over_the_demo_home_shows_its_runs_with_telemetry_off(
    demo_once: DemoRun, tmp_path: Path
) -> None:
    truth, demo = demo_once.truth, demo_once.run
    assert demo.code == 0, demo.stderr[-3000:]
    printed = re.search(r"Prefect runs: (\S+ --home \S+ ui)", demo.stdout)
    assert printed, demo.stdout
    argv = shlex.split(printed.group(1))
    assert Path(argv[0]).name == "breach-notify"
    assert argv[1:] == ["--home", str(demo_once.home), "ui"]
    home = tmp_path / "home"  # a copy: the demo test looks at the original at the same time
    shutil.copytree(demo_once.home, home, symlinks=True)

    # The printed command, on a free port (the default 4200 may be taken on a shared machine).
    proc, url = _start_ui([argv[0], "--home", str(home), "ui", "--port", "0"])
    try:
        assert healthy(f"{url}/api")
        flows = {f["name"]: f["id"] for f in api(f"{url}/api", "POST", "/flows/filter", {})}
        runs = api(f"{url}/api", "POST", "/flow_runs/filter", {})
        assert [r["state_type"] for r in runs if r["flow_id"] == flows["pipeline"]] == ["COMPLETED"]
        page = httpx.get(url, timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "<html" in page.text.lower()
        # What the UI reads to decide on its own telemetry, and the server's environment.
        admin = api(f"{url}/api", "GET", "/admin/settings")
        assert admin["server"]["analytics_enabled"] is False
        environ = _server_environ(url)
        assert environ["DO_NOT_TRACK"] == "1"
        assert environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        assert environ["PREFECT_HOME"] == str((home / "prefect").resolve())
        assert "PREFECT_API_URL" not in environ
    finally:
        stderr = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Prefect server stopped" in stderr
    assert not healthy(f"{url}/api", timeout=2)
    assert not list(processes_under(home))
    assert scan([home], truth.numbers, [demo.stdout, demo.stderr, stderr]) == []


@pytest.mark.slow
def test_ui_stops_its_server_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "prefect").mkdir(parents=True)
    (home / "prefect" / "prefect.db").touch()  # an empty SQLite file: Prefect migrates it
    port = free_port()
    proc, url = _start_ui(
        [sys.executable, "-m", "breach_notify", "--home", str(home), "ui", "--port", str(port)]
    )
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert healthy(f"{url}/api")
    finally:
        stderr = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Prefect server stopped" in stderr
    assert not healthy(f"{url}/api", timeout=2)
    assert not list(processes_under(home))
