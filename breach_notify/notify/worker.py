"""The web process's applier: a background thread that drains the journal whenever it can take
the store, holding it briefly (other processes — the sender, an ingest — come first).

Woken by the journal's writer after each commit, it waits ``GATHER`` seconds so that one opening
of the store applies many events (and at least ``INTERVAL`` since the last: opening the store
costs CPU the requests need), tries the store for ``LOCK_WAIT`` seconds, drains for at most
``HOLD`` seconds, and closes it; at a lower CPU priority (``NICE``) than the requests. A busy
store (an ingest) means a backoff up to ``MAX_BACKOFF``; the journal keeps everything meanwhile.
Hourly, applied entries older than the retention are pruned from the journal and the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from breach_notify.errors import OperationalError
from breach_notify.events import journal
from breach_notify.notify import applier
from breach_notify.settings import Settings
from breach_notify.store.db import session

log = logging.getLogger(__name__)

GATHER = 0.2
INTERVAL = 0.5
LOCK_WAIT = 0.2
HOLD = 0.5
MAX_BACKOFF = 2.0
PRUNE_EVERY = 3600.0
NICE = 10  # this thread's CPU priority: below the requests'


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.journal_path
        self._store = settings.model_copy(update={"lock_timeout_seconds": LOCK_WAIT})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-applier", daemon=True)
        self._pruned_at = time.monotonic()  # the first pruning an hour in: none at start
        self._last_run = 0.0
        self.busy_retries = 0  # times the store was held by someone else

    def start(self) -> Worker:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, final_seconds: float = 5.0) -> None:
        """Stop the thread, then try once more to apply what is left (bounded)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            pending = journal.backlog(self.path).pending
        except OperationalError:
            return
        if final_seconds > 0 and pending:
            self._drain_once(final_seconds, lock_wait=min(final_seconds, 2.0))

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            # Linux nices threads one by one; the store's own threads, started from this one,
            # inherit it. Requests come first, applying after.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        backoff = LOCK_WAIT
        self._wake.set()  # entries left by an earlier run are applied at start
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            if self._stop.is_set():
                break
            self._wake.clear()
            pause = max(GATHER, INTERVAL - (time.monotonic() - self._last_run))
            if self._stop.wait(pause):
                break
            try:
                pending = journal.backlog(self.path).pending
            except OperationalError:
                continue  # logged by whoever writes; the next wake tries again
            if not pending and time.monotonic() - self._pruned_at < PRUNE_EVERY:
                continue
            outcome = self._drain_once(HOLD, lock_wait=LOCK_WAIT)
            self._last_run = time.monotonic()
            if outcome == "busy":
                self.busy_retries += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self._wake.set()
            elif outcome == "error":
                self._stop.wait(MAX_BACKOFF)
                self._wake.set()
            else:
                backoff = LOCK_WAIT
                if outcome == "more":
                    self._wake.set()

    def _drain_once(self, hold: float, *, lock_wait: float) -> str:
        settings = self._store.model_copy(update={"lock_timeout_seconds": lock_wait})
        try:
            with session(settings) as conn:
                conn.execute("SET threads = 1")  # leave the other cores to the requests
                report = applier.drain(conn, self.path, settings=self.settings, max_seconds=hold)
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY and not report.more:
                    self._pruned_at = time.monotonic()
                    applier.prune(conn, self.path, self.settings.journal_retention_hours * 3600)
        except OperationalError:
            return "busy"
        except Exception as exc:  # its text may quote a value: never log it
            log.error("applying the event journal failed (%s); retrying", type(exc).__name__)
            return "error"
        return "more" if report.more else "done"
