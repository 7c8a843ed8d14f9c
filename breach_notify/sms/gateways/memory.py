"""``memory://``: keeps messages in a list, for tests. Validates like every gateway."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.gateway import Message, SendResult, SentRecord, register, validate


class MemoryGateway:
    """Sent messages are appended to ``outbox`` (plaintext in memory only, never written).

    ``fail`` maps a recipient's E.164 text to an exception to raise instead of sending, and
    ``before_send`` is called with each message first: both are seams for tests.
    """

    name = "memory"
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.outbox: list[tuple[Message, SendResult, datetime]] = []
        self.fail: dict[str, Exception] = {}
        self.before_send: Callable[[Message], None] | None = None
        self._lock = threading.Lock()

    def send(self, message: Message) -> SendResult:
        counted = validate(message)
        if self.before_send is not None:
            self.before_send(message)
        error = self.fail.get(message.to.value)
        if error is not None:
            raise error
        result = SendResult(f"MM{next(self._ids):032d}", counted.segments)
        with self._lock:
            self.outbox.append((message, result, datetime.now(UTC)))
        return result

    def lookup(self, to: E164, since: datetime) -> list[SentRecord]:
        with self._lock:
            return [
                SentRecord(r.gateway_id, at, r.status, m.body)
                for m, r, at in self.outbox
                if m.to.value == to.value and at >= since
            ]

    def sent_notice(self, notice_id: str) -> SentRecord | None:
        with self._lock:
            for m, r, at in self.outbox:
                if m.notice_id == notice_id:
                    return SentRecord(r.gateway_id, at, r.status, m.body)
        return None

    def clear(self) -> None:
        with self._lock:
            self.outbox.clear()
            self.fail.clear()
            self.before_send = None

    def close(self) -> None:
        pass


# One shared instance per process, so a test can inspect what a command sent.
SHARED = MemoryGateway()


@register("memory")
def _open(url: str, settings: Settings) -> MemoryGateway:
    return SHARED
