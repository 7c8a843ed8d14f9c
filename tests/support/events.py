"""Waiting for the web's journal to be applied (not a test module)."""

from __future__ import annotations

import time

from breach_notify.events import journal
from breach_notify.settings import Settings


def wait_applied(settings: Settings, timeout: float = 20.0) -> None:
    """Return once nothing in the journal is pending; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = journal.backlog(settings.journal_path).pending
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} journal entries still pending"
        time.sleep(0.05)
