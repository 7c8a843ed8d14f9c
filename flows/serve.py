"""A real Prefect server on loopback, for ``serve`` and the tests; and the served schedules.

Scheduling needs a real server (``flow.serve`` against the temporary one only warns), so with no
``PREFECT_API_URL`` the project starts ``prefect server start`` on 127.0.0.1 itself, over
``HOME/prefect/prefect.db``, waits until it answers, and stops it (whole process group) on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from breach_notify.errors import OperationalError
from breach_notify.settings import Settings
from flows import prefect_env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a TCP server could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``api_url`` answers its health check."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


class PrefectServer:
    """``prefect server start`` on loopback as a child process group. Use as a context manager.

    Its environment is :func:`flows.prefect_env.environment` (telemetry off, no caching, the
    redacting logging config) with ``PREFECT_HOME`` in the data dir. Its output goes to
    ``HOME/prefect/server.log``. The web UI is served only with ``ui=True`` (``breach-notify ui``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict[str, str] | None = None,
        ui: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("this helper binds loopback only; run a real deployment for more")
        self.settings = settings
        self.host = host
        self.port = port or free_port(host)
        self.env = prefect_env.environment(settings, env)
        self.env.pop("PREFECT_API_URL", None)
        self.env["PREFECT_HOME"] = str(settings.prefect_home.resolve())
        self.ui = ui
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = settings.prefect_home / "server.log"
        self.started_in: float | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> str:
        """Start and wait until healthy; returns the API URL. Raises ``OperationalError``."""
        Path(self.env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    *([] if self.ui else ["--no-ui"]),
                    "--analytics-off",
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                self.process = None
                raise OperationalError(
                    f"prefect server exited during start-up; see {self.log_path}"
                )
            if healthy(self.api_url, timeout=1.0):
                self.started_in = time.monotonic() - began
                return self.api_url
            time.sleep(0.25)
        self.stop()
        raise OperationalError(
            f"prefect server did not answer within {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server's process group; kill it if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def deployments(settings: Settings, home: str, inbox: str | None, gateway: str) -> list[Any]:
    """The scheduled deployments ``serve`` runs: ingest nightly (when there is an inbox), send
    hourly, housekeeping daily.

    Cron strings and timezone come from settings; the hourly send matches first (new breaches,
    newly confirmed subscribers); the sender runs one at a time.
    """
    from prefect.schedules import Cron

    from flows.pipeline import housekeeping, ingest_inbox, send_notices

    tz = settings.schedule_timezone
    keyring = str(settings.keyring_path.resolve())
    ingest = []
    if inbox is not None:  # no inbox, no nightly ingest (rather than a nightly failure)
        ingest.append(
            ingest_inbox.to_deployment(
                name="ingest-nightly",
                schedules=[Cron(settings.schedule_ingest_cron, timezone=tz)],
                parameters={"inbox": inbox, "home": home, "keyring": keyring},
                concurrency_limit=1,
            )
        )
    return [
        *ingest,
        send_notices.to_deployment(
            name="send-hourly",
            schedules=[Cron(settings.schedule_send_cron, timezone=tz)],
            parameters={"home": home, "keyring": keyring, "gateway": gateway},
            concurrency_limit=1,
        ),
        housekeeping.to_deployment(
            name="housekeeping-daily",
            schedules=[Cron(settings.schedule_housekeeping_cron, timezone=tz)],
            parameters={"home": home},
            concurrency_limit=1,
        ),
    ]


def serve_schedules(settings: Settings, home: str, inbox: str | None, gateway: str) -> None:
    """Serve :func:`deployments` from this process until interrupted (``prefect.serve``)."""
    from prefect import serve

    serve(*deployments(settings, home, inbox, gateway))
