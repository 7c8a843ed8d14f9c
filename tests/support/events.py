"""The web's journal in tests: writing entries as the web does, waiting until they are applied
(not a test module)."""

from __future__ import annotations

import time

from breach_notify.crypto import Keyring
from breach_notify.events import journal
from breach_notify.events.journal import Writer
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


def pseudonyms(ring: Keyring, number: str) -> dict[str, str]:
    """The sender's pseudonyms under every key version, as the web journals them."""
    return {k: ring.pseudonymizer(k).pseudonym(number).hex() for k in ring.key_ids["pseudonym"]}


def append(settings: Settings, *entries: journal.Entry) -> None:
    """Write ``entries`` to the journal as the web does, durable on return."""
    writer = Writer(settings.journal_path).start()
    try:
        for e in entries:
            writer.submit(e).result(10)
    finally:
        writer.close()
