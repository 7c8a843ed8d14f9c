"""``breach-notify web`` in a subprocess, and signed Twilio requests to it (not a test module)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from support.flows import clean_env
from support.net import free_port

PUBLIC = "https://hooks.example.org"
TOKEN = "web-token-0123456789abcdef0123"
_sids = itertools.count(1)


def message_sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_sids):032x}"


@dataclass
class Web:
    """A running ``web`` process on loopback; ``stop()`` interrupts it, ``kill()`` kills -9."""

    home: Path
    token: str = TOKEN
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"web-{self.port}.log"

    def start(self, timeout: float = 60) -> Web:
        log = self.log_path.open("a")  # a file, not a pipe: a full pipe would stall the server
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "breach_notify",
                "--home",
                str(self.home),
                "web",
                "--port",
                str(self.port),
                "--public-url",
                PUBLIC,
            ],
            env=clean_env(TWILIO_AUTH_TOKEN=self.token, **self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(self.home.parent),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"web did not start: {self.log[-2000:]}")
            time.sleep(0.1)

    @property
    def log(self) -> str:
        """Everything the process wrote (stdout and stderr)."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self.proc = None

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.proc = None

    def signed(self, path: str, params: dict[str, str]) -> dict[str, str]:
        sig = RequestValidator(self.token).compute_signature(PUBLIC + path, params)
        return {"X-Twilio-Signature": sig}

    def post(self, client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
        return client.post(self.base + path, data=params, headers=self.signed(path, params))

    def sms(self, client: httpx.Client, sender: str, body: str) -> httpx.Response:
        params = {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": message_sid()}
        return self.post(client, "/twilio/inbound", params)

    def status(
        self, client: httpx.Client, sid: str, status: str, to: str = "", error: str = ""
    ) -> httpx.Response:
        params = {"MessageSid": sid, "MessageStatus": status}
        if to:
            params["To"] = to
        if error:
            params["ErrorCode"] = error
        return self.post(client, "/twilio/status", params)
