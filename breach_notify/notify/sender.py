"""The sender: the paced loop that works the outbox, crash-safe and polite.

Per notice: ``pending`` → ``sending`` (attempt time, committed *before* the request) → ``sent``
with the gateway's id (committed after); every transition is one of ``outbox``'s. On start every
``sending`` row is settled with the gateway (``reconcile``) before anything is sent, so a kill -9
at any point neither loses a notice nor sends one twice (given a gateway that can look messages
up); ``in_doubt`` notices are resent only with ``resend_in_doubt``.

Pages of notices are read with the store open; numbers are opened (Sealer) here only, kept in
memory for the page, and never written. Requests go in chunks: right before a chunk the
subscribers' status is read again, the chunk is marked ``sending`` in one commit, sent, and its
outcomes recorded in one commit. A chunk lasts at most ``HOLD_SECONDS``; the store is closed
before any wait (rate limit, backoff) and at least that often, so another process (the webhooks)
can record a STOP, which then stops that subscriber's later messages. While the sender holds the
store no other process can write, so the status read before a chunk is current for all of it.

Note: this does not pace across processes; run one sender at a time (the deployments do).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from breach_notify.crypto import InvalidToken, Keyring, Sealed, Sealer
from breach_notify.notify import applier, outbox, quiet, reconcile
from breach_notify.notify.templates import Rendered, TemplateConfig, render
from breach_notify.notify.throttle import Backoff, TokenBucket
from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.errors import (
    AccountError,
    GatewayError,
    PermanentError,
    RecipientOptedOut,
    TransientError,
)
from breach_notify.sms.gateway import Gateway, Message, SendResult, SentRecord
from breach_notify.store import db
from breach_notify.subscribers import consent

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
CHUNK = 250  # notices marked ``sending`` together (one commit); bounded by HOLD_SECONDS too
FIRST_CHUNK = 8  # until the gateway's pace is known
HOLD_SECONDS = 0.5  # longest the store stays open without a break


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SendReport:
    """Counts for this run. ``in_doubt`` counts notices that became in doubt in this run;
    ``undecryptable`` the notices waiting for their seal key after it (``undecryptable_keys``: by
    key id), whether this run or an earlier one found their number would not open."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    suppressed: int = 0
    in_doubt: int = 0
    undecryptable: int = 0
    reconciled: int = 0
    retries: int = 0
    segments: int = 0
    seconds: float = 0.0
    left: dict[str, int] = field(default_factory=dict)  # pending / in_doubt / sending after the run
    undecryptable_keys: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "deferred": self.deferred,
            "suppressed": self.suppressed,
            "in_doubt": self.in_doubt,
            "undecryptable": self.undecryptable,
            "reconciled": self.reconciled,
            "retries": self.retries,
            "segments": self.segments,
            "seconds": round(self.seconds, 3),
            "left": dict(self.left),
        }


@dataclass
class _Item:
    id: str
    subscriber_id: str
    to: E164
    body: str = field(repr=False)
    segments: int
    failures: int = 0


def send(
    settings: Settings,
    keyring: Keyring,
    gateway: Gateway,
    *,
    rate: float | None = None,
    max_messages: int | None = None,
    ignore_quiet_hours: bool = False,
    resend_in_doubt: bool = False,
    clock: Callable[[], datetime] = utcnow,
    backoff: Backoff | None = None,
    pace: Callable[[int], None] | None = None,
    _sleep: Callable[[float], None] = time.sleep,
    _rng: random.Random | None = None,
    _page_size: int = PAGE_SIZE,
) -> SendReport:
    """Reconcile, then send pending notices; returns this run's counts.

    ``rate`` is in segments per second (None: as fast as the gateway takes them);
    ``max_messages`` caps the notices handed to the gateway; ``clock`` (aware, UTC) decides
    quiet hours only — store timestamps are real time, as a gateway lookup compares against them.
    ``pace(segments)`` is called before each chunk with the store closed, and may block: the
    flows pass a Prefect global rate limit there to pace several senders together.
    """
    rng = _rng or random.Random()  # noqa: S311 - jitter, not secrets
    run = _Run(
        settings,
        keyring,
        gateway,
        rate=rate,
        max_messages=max_messages,
        ignore_quiet_hours=ignore_quiet_hours,
        clock=clock,
        backoff=backoff or Backoff(),
        pace=pace,
        sleep=_sleep,
        rng=rng,
        page_size=_page_size,
    )
    started = time.monotonic()
    try:
        outbox.retry_undecryptable(run.store.get(), keyring)  # their seal key may be back
        settled = reconcile.settle_sending(run.store, gateway, run.number, run.text, HOLD_SECONDS)
        run.report.reconciled += settled.reconciled
        run.report.in_doubt += settled.in_doubt
        if resend_in_doubt:
            outbox.release_in_doubt(run.store.get())
        run.work()
        run.report.left = outbox.left(run.store.get())
        run.report.undecryptable_keys = outbox.undecryptable_by_key(run.store.get())
        run.report.undecryptable = sum(run.report.undecryptable_keys.values())
    finally:
        run.store.close()
        run.report.seconds = time.monotonic() - started
    if run.report.undecryptable:
        log.error("%s", undecryptable_error(run.report.undecryptable_keys, keyring))
    return run.report


def undecryptable_error(by_key: dict[str, int], keyring: Keyring) -> str:
    """The error for notices whose number does not open: how many, under which seal key, why."""
    known = set(keyring.key_ids["seal"])
    parts = [
        f"{n} sealed under key {kid!r}, "
        + (
            "which is not in the keyring"
            if kid not in known
            else "which the keyring holds with different bytes (a replaced or corrupt key)"
        )
        for kid, n in sorted(by_key.items())
    ]
    total = sum(by_key.values())
    return (
        f"{total} notice(s) not sent: their numbers cannot be decrypted ({'; '.join(parts)})."
        " Restore that seal key in the keyring (from its backup), then run send again: they"
        " are retried, not lost."
    )


_PAGE = """
WITH page AS (
    SELECT id, subscriber_id, breach_id, created_at, kinds
    FROM notices
    WHERE state = 'pending' AND (created_at, id) > ($at, $id)
    ORDER BY created_at, id
    LIMIT $limit
)
SELECT p.id, p.subscriber_id, p.created_at, p.kinds, s.status, s.sealed, s.seal_key_id,
       s.language, b.title
FROM page p
LEFT JOIN subscribers s ON s.id = p.subscriber_id
LEFT JOIN breaches b ON b.id = p.breach_id
ORDER BY p.created_at, p.id
"""


class _Run:
    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        gateway: Gateway,
        *,
        rate: float | None,
        max_messages: int | None,
        ignore_quiet_hours: bool,
        clock: Callable[[], datetime],
        backoff: Backoff,
        pace: Callable[[int], None] | None,
        sleep: Callable[[float], None],
        rng: random.Random,
        page_size: int,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.gateway = gateway
        self.bucket = TokenBucket(rate) if rate else None
        self.max_messages = max_messages
        self.ignore_quiet_hours = ignore_quiet_hours
        self.clock = clock
        self.backoff = backoff
        self.pace = pace
        self.sleep = sleep
        self.rng = rng
        self.page_size = page_size
        self.templates = TemplateConfig.from_settings(settings)
        # Every opening applies the web's journal first: its STOPs bind what follows.
        self.store = db.LazyConnection(
            settings,
            on_open=lambda conn: applier.drain(
                conn, settings.journal_path, keyring=keyring, settings=settings
            ),
        )
        self.report = SendReport()
        self.handed = 0  # notices handed to the gateway in this run
        self.opted_out: set[str] = set()
        self.per_message = 0.0  # moving average of one request's duration, sizes chunks
        self._sealer: Sealer | None = None
        self._texts: dict[tuple[str | None, str | None, int], Rendered] = {}  # per run

    # -- numbers and texts --------------------------------------------------------------------

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            self._sealer = self.keyring.sealer()
        return self._sealer

    def number(self, sid: str, sealed: bytes | None, seal_kid: str | None) -> E164 | None:
        """The subscriber's number; None when erased or when it does not open."""
        if sealed is None or seal_kid is None:
            return None
        try:
            return self._open(sid, sealed, seal_kid)
        except InvalidToken:
            return None

    def _open(self, sid: str, sealed: bytes, seal_kid: str) -> E164:
        """Raises ``InvalidToken`` when the seal key is missing or wrong."""
        return E164(self.sealer.open(Sealed(str(seal_kid), bytes(sealed)), str(sid)))

    def _render(self, language: str | None, title: str | None, kinds: int | None) -> Rendered:
        key = (language, title, int(kinds or 0))
        found = self._texts.get(key)
        if found is None:
            found = self._texts[key] = render(language, title or "", key[2], self.templates)
        return found

    def text(self, language: str | None, title: str | None, kinds: int | None) -> str:
        return self._render(language, title, kinds).text

    # -- the loop ----------------------------------------------------------------------------

    def _capped(self) -> bool:
        return self.max_messages is not None and self.handed >= self.max_messages

    def work(self) -> None:
        cursor: tuple[datetime, str] = (datetime(1970, 1, 1, tzinfo=UTC), "")
        while not self._capped():
            conn = self.store.get()
            rows = conn.execute(
                _PAGE, {"at": cursor[0], "id": cursor[1], "limit": self.page_size}
            ).fetchall()
            if not rows:
                return
            cursor = (rows[-1][2], rows[-1][0])
            items: list[_Item] = []
            suppress: list[str] = []
            unreadable: list[str] = []
            for nid, sid, _created, kinds, status, sealed, seal_kid, language, title in rows:
                if status != "active" or sealed is None or sid in self.opted_out:
                    suppress.append(nid)
                    continue
                try:
                    to = self._open(sid, sealed, seal_kid)
                except InvalidToken:
                    unreadable.append(nid)  # not the subscriber's choice: kept for a retry
                    continue
                if not self.ignore_quiet_hours and not quiet.may_send(
                    to,
                    self.clock(),
                    self.settings.quiet_start,
                    self.settings.quiet_end,
                    self.settings.schedule_timezone,
                ):
                    self.report.deferred += 1
                    continue
                text = self._render(language, title, kinds)
                items.append(_Item(nid, sid, to, text.text, text.segments.segments))
            self._suppress(suppress)
            if unreadable:
                outbox.mark_undecryptable(self.store.get(), unreadable)
            self._send_items(items)

    def _suppress(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.report.suppressed += outbox.suppress(self.store.get(), ids)

    def _inactive(self, chunk: list[_Item]) -> list[_Item]:
        """The chunk's notices whose subscriber is no longer active (a STOP, an erasure)."""
        subs = sorted({it.subscriber_id for it in chunk})
        active = {
            str(r[0])
            for r in self.store.get()
            .execute(
                "SELECT id FROM subscribers WHERE id IN (SELECT unnest($ids::VARCHAR[]))"
                " AND status = 'active' AND sealed IS NOT NULL",
                {"ids": subs},
            )
            .fetchall()
        }
        return [
            it
            for it in chunk
            if it.subscriber_id not in active or it.subscriber_id in self.opted_out
        ]

    def _send_items(self, items: list[_Item]) -> None:
        queue = deque(items)
        while queue and not self._capped():
            chunk = self._take_chunk(queue)
            if not chunk:
                assert self.bucket is not None
                wait = self.bucket.wait_time(queue[0].segments)
                self.store.close()
                self.sleep(wait)
                continue
            if self.pace is not None:  # may wait on a shared limit: hold no store meanwhile
                self.store.close()
                self.pace(sum(it.segments for it in chunk))
            # Right before the requests: anyone who stopped since the page was read is skipped.
            gone = self._inactive(chunk)
            if gone:
                ids = {it.id for it in gone}
                kept = [it for it in queue if it.id not in ids]
                queue.clear()
                queue.extend(kept)
                self._suppress(ids)
                continue
            pause = self._send_chunk(chunk, queue)
            if pause > 0:
                self.store.close()
                self.sleep(pause)
            elif self.store.held_for() > HOLD_SECONDS:
                self.store.close()

    def _take_chunk(self, queue: deque[_Item]) -> list[_Item]:
        chunk: list[_Item] = []
        # As many as fit in HOLD_SECONDS: few ``sending`` rows to reconcile after a crash.
        room = FIRST_CHUNK if self.per_message <= 0 else int(HOLD_SECONDS / self.per_message)
        room = max(1, min(CHUNK, room))
        if self.max_messages is not None:
            room = min(room, self.max_messages - self.handed)
        for it in queue:
            if len(chunk) >= room:
                break
            if (
                self.bucket is not None
                and it.failures == 0
                and not self.bucket.try_take(it.segments)
            ):
                break
            chunk.append(it)
        return chunk

    def _send_chunk(self, chunk: list[_Item], queue: deque[_Item]) -> float:
        """Mark, send, record one chunk. Returns seconds to pause (backoff) before the next."""
        claimed = outbox.claim(self.store.get(), [it.id for it in chunk])
        sent: list[tuple[_Item, SendResult]] = []
        failed: list[tuple[_Item, str | None]] = []
        opted: list[tuple[_Item, str | None]] = []
        doubt: list[_Item] = []
        unsent: list[_Item] = []  # marked but not (surely) sent: back to pending
        pause = 0.0
        started = time.monotonic()
        for k, it in enumerate(chunk):
            if it.id not in claimed:
                queue.popleft()
                continue
            if pause > 0 or time.monotonic() - started > HOLD_SECONDS:
                unsent.extend(x for x in chunk[k:] if x.id in claimed)
                break
            if it.subscriber_id in self.opted_out:  # the carrier said so earlier in this chunk
                queue.popleft()
                opted.append((it, None))
                continue
            if it.failures == 0:
                self.handed += 1
            t0 = time.monotonic()
            try:
                result = self.gateway.send(Message(it.to, it.body, it.id))
            except RecipientOptedOut as exc:
                queue.popleft()
                opted.append((it, exc.code))
                self.opted_out.add(it.subscriber_id)
            except PermanentError as exc:
                queue.popleft()
                failed.append((it, exc.code))
            except AccountError:
                unsent.extend(x for x in chunk[k:] if x.id in claimed)
                self._record(sent, failed, opted, doubt, unsent)
                raise
            except TransientError as exc:
                began = utcnow() - timedelta(seconds=time.monotonic() - t0)
                outcome = self._after_transient(it, exc, began, (r.gateway_id for _, r in sent))
                if isinstance(outcome, SendResult):
                    queue.popleft()
                    sent.append((it, outcome))
                elif outcome is None:
                    queue.popleft()
                    doubt.append(it)
                else:
                    it.failures += 1
                    if it.failures >= self.backoff.attempts:
                        queue.popleft()
                        failed.append((it, exc.code))
                    else:
                        unsent.append(it)
                        self.report.retries += 1
                        pause = self.backoff.delay(it.failures, self.rng)
            else:
                queue.popleft()
                sent.append((it, result))
            took = time.monotonic() - t0
            avg = self.per_message
            self.per_message = took if avg <= 0 else 0.8 * avg + 0.2 * took
        self._record(sent, failed, opted, doubt, unsent)
        return pause

    def _after_transient(
        self, it: _Item, exc: TransientError, began: datetime, taken: Iterable[str]
    ) -> SendResult | bool | None:
        """A request (started at ``began``) that may have reached the gateway is looked up
        before any retry."""
        if not exc.maybe_sent:
            return False
        try:
            found = reconcile.find_sent(
                self.store.get(), self.gateway, it.id, it.to, began, it.body, taken
            )
        except GatewayError:
            return None
        if isinstance(found, SentRecord):
            return SendResult(found.gateway_id, it.segments, found.status)
        return found

    def _record(
        self,
        sent: list[tuple[_Item, SendResult]],
        failed: list[tuple[_Item, str | None]],
        opted: list[tuple[_Item, str | None]],
        doubt: list[_Item],
        unsent: list[_Item],
    ) -> None:
        """Write a chunk's outcomes in one transaction. Never moves a notice backwards."""
        conn = self.store.get()
        with db.transaction(conn):
            outbox.mark_sent(
                conn,
                [i.id for i, _ in sent],
                [r.gateway_id for _, r in sent],
                [r.segments for _, r in sent],
            )
            outbox.mark_failed(conn, [i.id for i, _ in failed], [c for _, c in failed])
            outbox.mark_opted_out(conn, [i.id for i, _ in opted], [c for _, c in opted])
            outbox.mark_in_doubt(conn, [i.id for i in doubt])
            outbox.release(conn, [i.id for i in unsent])
            for it, code in opted:
                if code is not None:
                    self._opt_out(conn, it.subscriber_id, code)
        self.report.sent += len(sent)
        self.report.segments += sum(r.segments for _, r in sent)
        self.report.failed += len(failed)
        self.report.suppressed += len(opted)
        self.report.in_doubt += len(doubt)

    def _opt_out(self, conn: duckdb.DuckDBPyConnection, sid: str, code: str | None) -> None:
        """The carrier says the recipient opted out (Twilio 21610): record it like a STOP."""
        self.opted_out.add(sid)
        consent.opt_out(conn, sid, f"gateway:{code or 'opted_out'}")
