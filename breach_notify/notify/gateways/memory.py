"""``memory://``: keeps messages in a list, for tests. Validates like every gateway."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

from breach_notify.notify.gateway import Message, SendResult, SentRecord, register
from breach_notify.numbers import E164
from breach_notify.settings import Settings


class MemoryGateway:
    """Sent messages are appended to ``outbox`` (plaintext in memory only, never written)."""

    name = "memory"
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.outbox: list[tuple[Message, SendResult, datetime]] = []
        self._lock = threading.Lock()

    def send(self, message: Message) -> SendResult:
        segments = 1  # replaced by notify.segments validation once templates land
        result = SendResult(f"MM{next(self._ids):032d}", segments)
        with self._lock:
            self.outbox.append((message, result, datetime.now(UTC)))
        return result

    def lookup(self, to: E164, since: datetime) -> list[SentRecord]:
        with self._lock:
            return [
                SentRecord(r.gateway_id, at, r.status)
                for m, r, at in self.outbox
                if m.to.value == to.value and at >= since
            ]

    def close(self) -> None:
        pass


# One shared instance per process, so a test can inspect what a command sent.
SHARED = MemoryGateway()


@register("memory")
def _open(url: str, settings: Settings) -> MemoryGateway:
    return SHARED
