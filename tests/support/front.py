"""The sign-up pages on a real uvicorn server on loopback, in a thread of the test process (so the
``memory://`` gateway's outbox is the test's), with every log line captured for the scan."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette

from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.web import pages

from .net import free_port, serve_app


@dataclass
class Front:
    base: str
    settings: Settings
    gateway: MemoryGateway
    front: pages.Front
    log: io.StringIO

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=20, headers=headers)

    def logs(self) -> str:
        return self.log.getvalue()


@contextmanager
def serve(settings: Settings, gateway: MemoryGateway) -> Iterator[Front]:
    """Serve the pages of ``settings`` (only them) until the block ends."""
    front = pages.Front(settings, gateway=gateway)
    app = Starlette(routes=pages.routes(settings, front=front))
    captured = io.StringIO()
    with serve_app(app, captured, access_log=False, timeout_keep_alive=5) as base:
        yield Front(base, settings, gateway, front, captured)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true (background tasks finish after the response)."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@dataclass
class FrontProcess:
    base: str
    process: subprocess.Popen[str]
    output: str = ""

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=20, headers=headers)


@contextmanager
def serve_process(settings: Settings, **env: str) -> Iterator[FrontProcess]:
    """The pages in a process of their own (settings passed as ``BREACH_NOTIFY_*``)."""
    port = free_port()
    values = {"BREACH_NOTIFY_HOME": str(settings.home), "BREACH_NOTIFY_GATEWAY": settings.gateway}
    for name in ("pow_cost", "limit_per_client", "limit_per_client_without_pow",
                 "limit_without_pow", "limit_per_number", "limit_per_prefix",
                 "limit_confirm_per_client", "signup_sms_daily_budget"):  # fmt: skip
        values[f"BREACH_NOTIFY_{name.upper()}"] = str(getattr(settings, name))
    child_env = {**os.environ, **values, **env}
    script = Path(__file__).with_name("front_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = FrontProcess(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(running.base + "/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the pages process did not start") from None
            time.sleep(0.1)
    try:
        yield running
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        running.output = err
