"""``breach-notify serve``: with no PREFECT_API_URL it starts a loopback Prefect server, serves the
scheduled deployments, and stops the server when it is stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.flows import api, clean_env, cli, processes_under, stop_process

from breach_notify.settings import Settings
from flows.serve import PrefectServer, free_port, healthy


def test_server_helper_binds_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        PrefectServer(Settings(home=tmp_path), host="0.0.0.0")


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_starts_schedules_and_stops_its_server(tmp_path: Path, stop: signal.Signals) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "init").code == 0
    (tmp_path / "inbox").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breach_notify",
            "--home",
            str(home),
            "serve",
            "--inbox",
            str(tmp_path / "inbox"),
            "--port",
            str(port),
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        names: set[str] = set()
        while time.monotonic() < deadline and len(names) < 3:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            if healthy(url):
                names = {d["name"] for d in api(url, "POST", "/deployments/filter", {})}
            time.sleep(0.5)
        assert names == {"ingest-nightly", "send-hourly", "housekeeping-daily"}
        deps = {d["name"]: d for d in api(url, "POST", "/deployments/filter", {})}
        assert [s["schedule"]["cron"] for s in deps["send-hourly"]["schedules"]] == [
            Settings().schedule_send_cron
        ]
    finally:
        stderr = stop_process(proc, stop)
    assert "Prefect server stopped" in stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    assert not list(processes_under(home))
