"""The sign-up pages on a real uvicorn server on loopback, in a thread of the test process (so the
``memory://`` gateway's outbox is the test's), with every log line captured for the scan."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from breach_notify import redact
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway
from breach_notify.web import pages

from .net import free_port


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
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(redact.RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {}
    for name in ("breach_notify", "uvicorn"):
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.INFO)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the pages server did not start")
        time.sleep(0.02)
    try:
        yield Front(f"http://127.0.0.1:{port}", settings, gateway, front, captured)
    finally:
        server.should_exit = True
        thread.join(10)
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


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
