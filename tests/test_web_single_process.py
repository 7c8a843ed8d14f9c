"""The web app runs as exactly one process per data dir: its rate limits and the SMS budget's
running count are in that process's memory, so a second process would apply them again."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.flows import clean_env
from support.net import free_port

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.settings import Settings
from breach_notify.web import server


def test_web_concurrency_does_not_fork_workers(
    settings: Settings, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    built = server.build(
        settings, host="127.0.0.1", port=0, public_url="http://x.test", auth_token="t"
    )
    assert built.config.workers == 1


def test_a_second_holder_of_the_data_dir_lock_is_refused(settings: Settings) -> None:
    refused = pytest.raises(BadInput, match="another web process already serves this data dir")
    with server.single_process(settings), refused, server.single_process(settings):
        pass
    with server.single_process(settings):  # released with the first
        pass


def test_a_second_web_command_on_the_same_data_dir_exits_2(home: Path, keyring: Keyring) -> None:
    port = free_port()
    env = clean_env(TWILIO_AUTH_TOKEN="t" * 32, BREACH_NOTIFY_HOME=str(home))
    cmd = [sys.executable, "-m", "breach_notify", "web", "--public-url", "http://hooks.test"]
    first = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 600:
                    break
            except httpx.HTTPError:
                pass
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(
            [*cmd, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        assert "another web process already serves this data dir" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)
