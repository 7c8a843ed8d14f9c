"""The private self-check's API (DESIGN §10): ``GET /check/config`` and ``POST /check/api``.

``/check/config`` publishes what a client needs: the OPRF public keys (by key id), the number
of bucket bits to send, the breaches that can be checked (id, title, kinds of field exposed,
their key id and own bucket bits) and the padded size of every tag list.

``/check/api`` takes exactly ``{"bucket": int, "blinded": base64, "pow": str}`` and answers

    {"evaluations": [{"key_id", "evaluated", "proof"}, ...],     one per OPRF key in use
     "breaches": [{"id", "key_id", "tags"}, ...]}                 every breach, always

where ``tags`` is the base64 of ``pad_size`` sorted 16-byte tags: the breach's tags in the
client's bucket (its own bits: the client's bucket shifted right) plus random ones. Every answer
therefore has the same length whatever the bucket holds. The server never sees the number; it
learns ``bucket_bits`` bits of a public hash.

The served tags of each breach are exported from the store into a memory-mapped file
(:mod:`.tagfile`, ``HOME/selfcheck/``) when the store's self-check breaches change, and answered
from the mapping (:class:`Snapshot`), so the tags are not held in Python memory; a file already
exported for the same tags (a restart) is mapped again without export. The store is opened only
to notice a change and to export, never per request; a store held by an ingest keeps the previous
snapshot serving. Proof of work is a
pluggable check (:data:`PowCheck`); with ``settings.self_check_require_pow`` off, any ``pow``
string is accepted. Limits (:class:`Limits`: per client address, then per bucket and for everyone
once the proof of work holds) answer 429. Logs carry outcomes only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breach_notify.crypto import Keyring
from breach_notify.crypto.oprf import TAG_BYTES, OprfError, OprfServer
from breach_notify.errors import BreachNotifyError
from breach_notify.kinds import KINDS
from breach_notify.settings import Settings
from breach_notify.store.db import connect
from breach_notify.web.tagfile import TagFile, TagFileError, export, remove_stale

log = logging.getLogger("breach_notify.web.selfcheck")

#: ``(pow, bucket, blinded) -> bool``: whether the proof of work is valid for this request.
PowCheck = Callable[[str, int, bytes], bool]
#: The client address a request counts against (the pages' rule, proxy-aware).
ClientOf = Callable[[Request], str]
MAX_BODY = 4096
MAX_POW = 2048  # an ALTCHA payload is about 600 characters
RETRY_AFTER = "600"
MIN_PAD = 16
RELOAD_SECONDS = 5.0
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_FIELDS = {"bucket", "blinded", "pow"}


class Limits(Protocol):
    """Rate limits of the API (``web.abuse.SelfCheckLimits``)."""

    def per_client(self, address: str) -> bool: ...

    def per_bucket_and_global(self, bucket: int) -> bool: ...


@dataclass(frozen=True)
class BreachTags:
    """One breach as the self-check serves it: its tags by bucket, in a mapped file."""

    id: str
    title: str
    kinds: list[str]
    key_id: str
    bucket_bits: int
    tags: TagFile = field(repr=False)


@dataclass(frozen=True)
class Snapshot:
    """Everything the two endpoints answer from; built by :func:`load`."""

    breaches: list[BreachTags]
    servers: dict[str, OprfServer]
    bucket_bits: int
    pad_size: int

    def config(self, *, pow_required: bool) -> dict[str, Any]:
        return {
            "version": 1,
            "suite": "ristretto255-SHA512",
            "mode": "VOPRF",
            "tag_bytes": TAG_BYTES,
            "bucket_bits": self.bucket_bits,
            "pad_size": self.pad_size,
            "keys": [
                {"id": kid, "public_key": _b64(s.public_key)} for kid, s in self.servers.items()
            ],
            "breaches": [
                {
                    "id": b.id,
                    "title": b.title,
                    "kinds": b.kinds,
                    "key_id": b.key_id,
                    "bucket_bits": b.bucket_bits,
                }
                for b in self.breaches
            ],
            "pow": {"required": pow_required},
        }

    def answer(self, bucket: int, blinded: bytes) -> dict[str, Any]:
        """The evaluations (one per key) and every breach's padded, sorted tag list.

        Raises :class:`OprfError` when ``blinded`` is not a valid element."""
        evaluations = []
        for kid, server in self.servers.items():
            evaluated, proof = server.evaluate(blinded)
            evaluations.append({"key_id": kid, "evaluated": _b64(evaluated), "proof": _b64(proof)})
        lists = []
        for b in self.breaches:
            real = b.tags.bucket(bucket >> (self.bucket_bits - b.bucket_bits))
            fill = os.urandom(self.pad_size * TAG_BYTES - len(real))
            blob = real + fill
            tags = sorted(blob[i : i + TAG_BYTES] for i in range(0, len(blob), TAG_BYTES))
            lists.append({"id": b.id, "key_id": b.key_id, "tags": _b64(b"".join(tags))})
        return {"evaluations": evaluations, "breaches": lists}


def load(conn: duckdb.DuckDBPyConnection, keyring: Keyring, folder: Path) -> Snapshot:
    """The self-check breaches from an open store, their served tags mapped from ``folder``
    (exported there first unless a file for the same tags is already there). Files of other
    tags in ``folder`` are removed."""
    rows = conn.execute(
        """SELECT s.breach_id, coalesce(b.title, s.breach_id), s.kinds, s.oprf_key_id,
                  s.bucket_bits, s.max_bucket, s.tags, s.updated_at
           FROM selfcheck_breaches s LEFT JOIN breaches b ON b.id = s.breach_id
           ORDER BY s.breach_id"""
    ).fetchall()
    breaches: list[BreachTags] = []
    servers: dict[str, OprfServer] = {}
    largest = 0
    for bid, title, kinds, kid, bits, max_bucket, count, updated in rows:
        if kid not in servers:
            servers[kid] = keyring.oprf_server(kid)
        name = hashlib.sha256(f"{bid}\0{kid}\0{bits}\0{count}\0{updated}".encode()).hexdigest()
        path = folder / f"{name[:32]}.tags"
        try:
            tags = TagFile(path)
        except TagFileError:
            tags = export(conn, str(bid), str(kid), int(bits), path)
        names = [name for i, name in enumerate(KINDS) if int(kinds) & (1 << i)]
        breaches.append(BreachTags(str(bid), str(title), names, str(kid), int(bits), tags))
        largest = max(largest, int(max_bucket))
    remove_stale(folder, {b.tags.path.name for b in breaches})
    pad = MIN_PAD
    while pad < largest:
        pad *= 2
    bits = max((b.bucket_bits for b in breaches), default=0)
    return Snapshot(breaches, servers, bits, pad)


class Snapshots:
    """The current :class:`Snapshot`, reloaded (at most every few seconds) when the store file
    changed; an unreadable or busy store keeps the previous one."""

    def __init__(self, settings: Settings) -> None:
        # a store held by an ingest must not stall a request: give up quickly, keep the old data
        self._settings = settings.model_copy(update={"lock_timeout_seconds": 1.0})
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._stamp: tuple[float, int] | None = None
        self._signature: list[Any] | None = None
        self._checked = 0.0

    def get(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._checked >= RELOAD_SECONDS:
                self._checked = now
                self._reload()
            if self._current is None:
                raise BreachNotifyError("the self-check data could not be loaded")
            return self._current

    def _reload(self) -> None:
        path = self._settings.db_path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._current = self._current or Snapshot([], {}, 0, MIN_PAD)
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp and self._current is not None:
            return
        try:
            conn = connect(self._settings)  # the web app's own configuration (one per process)
            try:
                # the store also changes for other reasons (webhooks): reload the tags only when
                # the self-check breaches did
                signature = conn.execute(
                    "SELECT list((breach_id, oprf_key_id, tags, updated_at) ORDER BY breach_id)"
                    " FROM selfcheck_breaches"
                ).fetchall()
                if signature != self._signature or self._current is None:
                    ring = Keyring.load(self._settings.keyring_path)
                    self._current = load(conn, ring, self._settings.home / "selfcheck")
                    self._signature = signature
                    log.info("self-check data loaded: %d breach(es)", len(self._current.breaches))
            finally:
                conn.close()
            self._stamp = stamp
        except (BreachNotifyError, duckdb.Error, TagFileError, OSError) as exc:
            log.warning("self-check data not reloaded (%s)", type(exc).__name__)
            if self._current is None and isinstance(exc, duckdb.CatalogException):
                self._current = Snapshot([], {}, 0, MIN_PAD)  # a store from before migration 007


def routes(
    settings: Settings,
    *,
    pow_check: PowCheck | None = None,
    limits: Limits | None = None,
    client_of: ClientOf | None = None,
) -> list[Route]:
    """The two routes, ready for a Starlette app (``routes=[..., *selfcheck.routes(s)]``).

    ``limits`` (with ``client_of``, default: the peer's address) are checked in this order:
    per client before the proof of work, then per bucket and global after it."""
    snapshots = Snapshots(settings)
    pow_required = settings.self_check_require_pow

    async def config(request: Request) -> Response:
        try:
            snap = await run_in_threadpool(snapshots.get)
        except BreachNotifyError:
            return _error("the self-check is not available now; retry later", 503)
        return JSONResponse(snap.config(pow_required=pow_required), headers=_HEADERS)

    async def api(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(f"the request body is over {MAX_BODY} bytes", 413)
        try:
            snap = await run_in_threadpool(snapshots.get)
        except BreachNotifyError:
            return _error("the self-check is not available now; retry later", 503)
        parsed = _parse(body, snap.bucket_bits)
        if isinstance(parsed, Response):
            return parsed
        bucket, blinded, pow_ = parsed
        address = client_of(request) if client_of else (request.client or ("-", 0))[0]
        if limits is not None and not limits.per_client(address):
            log.info("self-check refused: client limit")
            return _error("too many checks from this address; retry later", 429, retry=True)
        if pow_required:
            if pow_check is None:
                log.warning("self-check refused: proof of work required but not set up")
                return _error("proof of work is required but not set up on this server", 503)
            if not await run_in_threadpool(pow_check, pow_, bucket, blinded):
                log.info("self-check refused: proof of work")
                return _error("the proof of work is missing or wrong", 403)
        if limits is not None and not limits.per_bucket_and_global(bucket):
            log.info("self-check refused: bucket or global limit")
            return _error("too many checks right now; retry later", 429, retry=True)
        try:
            answer = await run_in_threadpool(snap.answer, bucket, blinded)
        except OprfError:
            return _error("'blinded' is not a valid ristretto255 element", 400)
        log.info("self-check answered")
        return Response(
            json.dumps(answer, separators=(",", ":")),
            media_type="application/json",
            headers=_HEADERS,
        )

    return [
        Route("/check/config", config, methods=["GET"]),
        Route("/check/api", api, methods=["POST"]),
    ]


def _parse(body: bytes, bits: int) -> tuple[int, bytes, str] | Response:
    """``(bucket, blinded, pow)`` of a request body, or a 400 naming the problem (never
    quoting the body)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error("the body must be JSON: {bucket, blinded, pow}", 400)
    if not isinstance(data, dict) or set(data) != _FIELDS:
        return _error("the body must be exactly {bucket, blinded, pow}", 400)
    bucket, blinded, pow_ = data["bucket"], data["blinded"], data["pow"]
    if not isinstance(bucket, int) or isinstance(bucket, bool) or not 0 <= bucket < 2**bits:
        return _error(f"'bucket' must be an integer below 2^{bits} (see /check/config)", 400)
    if not isinstance(pow_, str) or len(pow_) > MAX_POW:
        return _error(f"'pow' must be a string (at most {MAX_POW} characters)", 400)
    try:
        element = base64.b64decode(blinded, validate=True) if isinstance(blinded, str) else b""
    except (binascii.Error, ValueError):
        element = b""
    if len(element) != 32:
        return _error("'blinded' must be the base64 of a 32-byte element", 400)
    return bucket, element, pow_


def _error(message: str, status: int, *, retry: bool = False) -> Response:
    headers = {**_HEADERS, "Retry-After": RETRY_AFTER} if retry else _HEADERS
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
