"""``dryrun://[/abs/path.jsonl]``: renders and validates like the real gateway, sends nothing.

Each message becomes one JSON line: time, a ``DR…`` id, the notice id, the *masked* number, the
full text, its encoding and segment count. Default file: ``HOME/outbox/dryrun.jsonl``. The file
doubles as the gateway's memory, so a restarted sender knows for certain which notices it took.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from breach_notify.numbers import E164, mask
from breach_notify.settings import Settings
from breach_notify.sms.errors import BadGatewayURL
from breach_notify.sms.gateway import Message, SendResult, SentRecord, register, validate


class DryRunGateway:
    """Appends one JSON line per message to ``path``. Note: numbers are masked, texts are not."""

    name = "dryrun"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self._index: dict[str, SentRecord] | None = None

    def send(self, message: Message) -> SendResult:
        counted = validate(message)
        now = datetime.now(UTC)
        gateway_id = "DR" + uuid.uuid4().hex
        record: dict[str, Any] = {
            "at": now.isoformat(),
            "id": gateway_id,
            "notice": message.notice_id,
            "to": mask(message.to.value),
            "body": message.body,
            "encoding": counted.encoding,
            "segments": counted.segments,
        }
        fh = self._open()
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        if self._index is not None and message.notice_id:
            self._index[message.notice_id] = SentRecord(gateway_id, now, "sent", message.body)
        return SendResult(gateway_id, counted.segments)

    def lookup(self, to: E164, since: datetime) -> list[SentRecord] | None:
        """None: masked numbers cannot identify a recipient; see :meth:`sent_notice`."""
        return None

    def sent_notice(self, notice_id: str) -> SentRecord | None:
        """The line written for ``notice_id``, if a complete one exists."""
        if self._index is None:
            self._index = self._read_index()
        return self._index.get(notice_id)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _open(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # A line cut short by a crash is completed with a newline, so it stays unparseable.
            torn = (
                self.path.exists()
                and self.path.stat().st_size > 0
                and not _ends_with_newline(self.path)
            )
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
            if torn:
                self._fh.write("\n")
        return self._fh

    def _read_index(self) -> dict[str, SentRecord]:
        index: dict[str, SentRecord] = {}
        if not self.path.exists():
            return index
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn by a crash: that message was not fully taken
                try:
                    rec = json.loads(line)
                    at = datetime.fromisoformat(rec["at"])
                except (ValueError, KeyError, TypeError):
                    continue
                if rec.get("notice"):
                    index[rec["notice"]] = SentRecord(rec["id"], at, "sent", rec.get("body"))
        return index


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


@register("dryrun")
def _open(url: str, settings: Settings) -> DryRunGateway:
    parts = urlsplit(url)
    raw = unquote(parts.netloc + parts.path)
    if not raw:
        return DryRunGateway(settings.outbox_dir / "dryrun.jsonl")
    path = Path(raw)
    if not path.is_absolute() or parts.netloc:
        raise BadGatewayURL(
            "a dry-run path must be absolute, e.g. dryrun:///tmp/outbox.jsonl (three slashes)"
        )
    return DryRunGateway(path)
