"""The event journal: what the web accepted, on disk before the 2xx, until the store has it.

SQLite in WAL mode at ``HOME/journal/events.sqlite3`` (0600, in a 0700 folder), written with
``synchronous=FULL``: a commit is durable when it returns. The web process appends through one
:class:`Writer` thread, which commits every request that arrived meanwhile in one transaction
(group commit) and then wakes each of them. A failed commit is rolled back whole, so a request
answered 503 left nothing behind; ``journal_max_bytes`` bounds the file (a full journal fails
like a full disk, once the entries already applied have been dropped to make room).

Entries hold gateway ids, keyed pseudonyms (one per pseudonym key version) and words (an intent,
a status): never a plaintext number or a message text. One kind of entry also carries a number
*sealed*: a JOIN (or START), whose sender may be unknown to the store, holds it as AES-256-GCM
under the keyring's active seal key with the MessageSid as associated data (DESIGN §9), the way
the store seals subscriber numbers. ``event_id`` is unique, so a replayed request is
acknowledged and changes nothing. ``accepted_us`` (microseconds since the epoch) strictly grows
with ``seq``: the order in which requests were accepted.

:class:`Reader` is everyone else's view (the applier in any process, ``status``): pending
entries, marking them applied, pruning old applied ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from breach_notify.errors import OperationalError

log = logging.getLogger(__name__)

INBOUND = "inbound"
STATUS = "status"
LOOKUP = "lookup"
BUSY_MS = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    accepted_us INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    applied_us  INTEGER
);
CREATE INDEX IF NOT EXISTS events_pending ON events (seq) WHERE applied_us IS NULL;
"""


class JournalUnavailable(OperationalError):
    """The journal could not be written (disk full, journal full, unwritable); nothing was."""


@dataclass(frozen=True)
class Entry:
    """One accepted event. ``payload`` holds ids, pseudonyms (hex) and words only."""

    event_id: str
    kind: str
    payload: dict[str, Any]


def inbound_entry(
    message_id: str,
    intent: str,
    pseudonyms: dict[str, str],
    *,
    sealed: tuple[str, bytes] | None = None,
    language: str | None = None,
    lookup: bool = False,
) -> Entry:
    """An inbound message that changes consent: its id, the intent, the sender's pseudonyms.

    A JOIN also carries ``sealed`` (seal key id, blob sealed with ``message_id`` as associated
    data), the ``language`` of its keyword, and ``lookup`` when a line-type verdict
    (:func:`lookup_entry`) is to come.
    """
    payload: dict[str, Any] = {"intent": intent, "p": pseudonyms}
    if sealed is not None:
        payload["n"] = {"k": sealed[0], "c": base64.b64encode(sealed[1]).decode()}
    if language is not None:
        payload["lang"] = language
    if lookup:
        payload["lookup"] = True
    return Entry(inbound_id(message_id), INBOUND, payload)


def inbound_id(message_id: str) -> str:
    return f"in:{message_id}"


def lookup_entry(message_id: str, mobile: bool) -> Entry:
    """The line-type verdict on the sender of the JOIN ``message_id`` (no number in it)."""
    return Entry(lookup_id(message_id), LOOKUP, {"of": inbound_id(message_id), "mobile": mobile})


def lookup_id(message_id: str) -> str:
    return f"lk:{message_id}"


def status_entry(
    message_id: str, status: str, error: str | None, recipient: dict[str, str]
) -> Entry:
    """A delivery status callback; ``recipient`` is the ``To`` as pseudonyms (may be empty)."""
    payload = {"sid": message_id, "status": status, "error": error, "to": recipient}
    return Entry(f"st:{message_id}:{status}", STATUS, payload)


@dataclass(frozen=True)
class Stored:
    """An entry as the journal holds it."""

    seq: int
    event_id: str
    kind: str
    accepted_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class Backlog:
    """Entries not yet applied to the store, and the age of the oldest (seconds)."""

    pending: int
    oldest_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "oldest_seconds": round(self.oldest_seconds, 1)}


def now_us() -> int:
    return time.time_ns() // 1000


def to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def _connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def create(path: Path) -> sqlite3.Connection:
    """Open the journal for appending, creating it (0600, folder 0700) when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # WAL/SHM files copy this mode
    conn = _connect(path, synchronous="FULL")
    conn.executescript(_SCHEMA)
    return conn


# -- appending (the web process) ------------------------------------------------------------


@dataclass
class _Pending:
    entry: Entry
    future: Future[None] | asyncio.Future[None]
    loop: asyncio.AbstractEventLoop | None = None  # set for an asyncio future


class Writer:
    """One thread appends; an entry handed over with :meth:`submit` (a ``concurrent.futures``
    future) or :meth:`append` (awaitable) is done when durable — a replay, already journaled,
    is done too and changes nothing. A batch that cannot be committed fails every one of its
    entries with :class:`JournalUnavailable` and leaves nothing behind.

    ``on_commit`` (the applier's wake-up) runs after each commit. The asyncio futures of a batch
    are resolved with one call into their loop, not one per request.
    """

    MAX_BATCH = 1024

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._last_us = 0
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.batches = 0  # commits made (for the benchmark and tests)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Finish what was submitted, then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(self, entry: Entry) -> Future[None]:
        fut: Future[None] = Future()
        self._queue.put(_Pending(entry, fut))
        return fut

    async def append(self, entry: Entry) -> None:
        """Journal ``entry`` durably (a replay is accepted and changes nothing)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(entry, fut, loop))
        await fut

    def check(self) -> None:
        """Open the journal once now (start-up), so a bad path is reported before serving."""
        try:
            create(self.path).close()
        except (sqlite3.Error, OSError) as exc:
            raise JournalUnavailable(
                f"the event journal {self.path} cannot be opened ({type(exc).__name__}); "
                "check that the data dir is writable and the disk not full"
            ) from None

    # -- the thread ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = create(self.path)
            if self.max_bytes:
                page = int(conn.execute("PRAGMA page_size").fetchone()[0])
                conn.execute(f"PRAGMA max_page_count = {max(2, self.max_bytes // page)}")
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
        self._drop()

    def _rows(self, batch: list[_Pending]) -> list[tuple[str, str, int, str]]:
        rows = []
        for p in batch:
            self._last_us = max(now_us(), self._last_us + 1)
            payload = json.dumps(p.entry.payload, separators=(",", ":"), sort_keys=True)
            rows.append((p.entry.event_id, p.entry.kind, self._last_us, payload))
        return rows

    def _insert(self, rows: list[tuple[str, str, int, str]]) -> None:
        conn = self._open()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, kind, accepted_us, payload)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _make_room(self) -> bool:
        """Full: forget every applied entry now (the store keeps what a replay needs)."""
        try:
            cur = self._open().execute("DELETE FROM events WHERE applied_us IS NOT NULL")
        except (sqlite3.Error, OSError):
            return False
        return cur.rowcount > 0

    def _commit(self, batch: list[_Pending]) -> None:
        failure: JournalUnavailable | None = None
        rows = self._rows(batch)
        try:
            try:
                self._insert(rows)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc).lower() or not self._make_room():
                    raise
                self._insert(rows)  # once more, in the room the applied entries left
        except (sqlite3.Error, OSError) as exc:
            self._drop()  # reopened for the next batch: the disk may have room again
            log.error(
                "event journal not writable (%s); %d request(s) answered 503",
                type(exc).__name__,
                len(batch),
            )
            failure = JournalUnavailable("the event journal cannot be written")
        else:
            self.batches += 1
            if self.on_commit is not None:
                self.on_commit()
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for p in batch:
            if p.loop is not None:
                by_loop.setdefault(p.loop, []).append(p.future)  # type: ignore[arg-type]
            elif isinstance(p.future, Future) and p.future.set_running_or_notify_cancel():
                if failure is None:
                    p.future.set_result(None)
                else:
                    p.future.set_exception(failure)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, futures, failure)


def _resolve(futures: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue  # the request was cancelled (client gone)
        if failure is None:
            fut.set_result(None)
        else:
            fut.set_exception(failure)


# -- reading, marking, pruning (any process) ------------------------------------------------


class Reader:
    """A connection to an existing journal (see :func:`reader`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def pending(self, limit: int, after_seq: int = 0) -> list[Stored]:
        rows = self.conn.execute(
            "SELECT seq, event_id, kind, accepted_us, payload FROM events"
            " WHERE applied_us IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            [after_seq, limit],
        ).fetchall()
        return [
            Stored(int(s), str(e), str(k), to_datetime(int(a)), json.loads(p))
            for s, e, k, a, p in rows
        ]

    def find(self, event_ids: list[str]) -> dict[str, Stored]:
        """The entries with these ids, applied or not (until pruned)."""
        if not event_ids:
            return {}
        marks = ",".join("?" * len(event_ids))
        rows = self.conn.execute(
            "SELECT seq, event_id, kind, accepted_us, payload FROM events"
            f" WHERE event_id IN ({marks})",
            event_ids,
        ).fetchall()
        return {
            str(e): Stored(int(s), str(e), str(k), to_datetime(int(a)), json.loads(p))
            for s, e, k, a, p in rows
        }

    def mark_applied(self, seqs: list[int]) -> None:
        if not seqs:
            return
        stamp = now_us()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "UPDATE events SET applied_us = ? WHERE seq = ? AND applied_us IS NULL",
                [(stamp, s) for s in seqs],
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def backlog(self) -> Backlog:
        count, oldest = self.conn.execute(
            "SELECT count(*), min(accepted_us) FROM events WHERE applied_us IS NULL"
        ).fetchone()
        age = 0.0 if oldest is None else max(0.0, (now_us() - int(oldest)) / 1e6)
        return Backlog(int(count), age)

    def prune(self, retention_seconds: float) -> int:
        """Forget applied entries older than the retention; returns how many."""
        cutoff = now_us() - int(retention_seconds * 1e6)
        cur = self.conn.execute(
            "DELETE FROM events WHERE applied_us IS NOT NULL AND applied_us < ?", [cutoff]
        )
        return int(cur.rowcount)


@contextmanager
def reader(path: Path) -> Iterator[Reader | None]:
    """The journal at ``path``, or None when none was ever written there.

    Note: raises :class:`JournalUnavailable` when the file exists but cannot be read; a caller
    that must honour opt-outs (the sender) then stops rather than send without them.
    """
    if not path.exists():
        yield None
        return
    try:
        conn = _connect(path, synchronous="NORMAL")  # marks need no fsync: the store decides
        conn.executescript(_SCHEMA)
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnavailable(
            f"the event journal {path} cannot be read ({type(exc).__name__}); "
            "restore it or move it aside once every event in it is applied"
        ) from None
    try:
        yield Reader(conn)
    finally:
        conn.close()


def backlog(path: Path) -> Backlog:
    """The backlog of the journal at ``path`` (empty when there is none)."""
    with reader(path) as r:
        return Backlog(0, 0.0) if r is None else r.backlog()
