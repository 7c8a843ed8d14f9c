"""Abuse resistance for the sign-up and stop forms and the self-check: proof of work (ALTCHA),
rate limits and the daily SMS budget for sign-up codes.

- **Proof of work.** ``altcha`` challenges (PBKDF2-SHA256), signed with a per-process secret,
  valid 10 minutes, each accepted once. A form without a solution (no JavaScript) is served under
  stricter limits, per client and for all such clients together.
- **Rate limits** (``limits``, in memory): per client address, per number, per number prefix
  (E.164 minus its last 4 digits: SMS pumping walks whole ranges). Keys are HMACs under a
  per-process key, so even the process memory holds no address or number as a key.
- **Self-check.** The same proof of work guards ``POST /check/api``; :class:`SelfCheckLimits`
  caps it per client address, per bucket and for everyone together.
- **Budget.** Sign-up codes per UTC day. The web process keeps the count in memory (seeded from
  the store); ``budget_status`` counts the same thing from the store for ``status``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha
import duckdb
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from breach_notify.settings import Settings

SIGNUP_SOURCE = "web"  # the events source of sign-up codes, counted by the budget
POW_ALGORITHM = "PBKDF2/SHA-256"
POW_TTL = timedelta(minutes=10)
PREFIX_HIDDEN_DIGITS = 4


def number_prefix(e164: str) -> str:
    """``+447400123456`` → ``+44740012``: the range a pumping run walks through."""
    return e164[:-PREFIX_HIDDEN_DIGITS]


class RateLimits:
    """Named limits over HMAC'd keys; ``allow`` counts a hit only when every window has room."""

    def __init__(self, settings: Settings, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        self._items: dict[str, list[RateLimitItem]] = {
            "client": parse_many(settings.limit_per_client),
            "client_without_pow": parse_many(settings.limit_per_client_without_pow),
            "without_pow": parse_many(settings.limit_without_pow),
            "number": parse_many(settings.limit_per_number),
            "prefix": parse_many(settings.limit_per_prefix),
            "confirm": parse_many(settings.limit_confirm_per_client),
        }

    def _keyed(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def allow(self, kind: str, value: str = "") -> bool:
        """Count one hit of ``value`` against the ``kind`` limits; False when one is full."""
        items, key = self._items[kind], self._keyed(kind, value)
        with self._lock:
            if not all(self._limiter.test(item, kind, key) for item in items):
                return False
            for item in items:
                self._limiter.hit(item, kind, key)
        return True

    def client(self, address: str, *, with_pow: bool) -> bool:
        """Per client address; without a proof of work also the stricter per-client limit and
        the limit shared by every client without one."""
        if not self.allow("client", address):
            return False
        if with_pow:
            return True
        return self.allow("client_without_pow", address) and self.allow("without_pow")

    def number(self, e164: str) -> bool:
        """Per number, then per prefix; both count."""
        return self.allow("number", e164) and self.allow("prefix", number_prefix(e164))


class ProofOfWork:
    """ALTCHA challenges and single-use verification."""

    def __init__(self, cost: int, secret: bytes | None = None) -> None:
        self.cost = cost
        self._secret = secret or secrets.token_bytes(32)
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def challenge(self) -> dict[str, Any]:
        """A fresh signed challenge, as the widget fetches it (JSON)."""
        made = altcha.create_challenge(
            POW_ALGORITHM,
            self.cost,
            expires_at=datetime.now(UTC) + POW_TTL,
            hmac_secret=self._secret,
        )
        out: dict[str, Any] = made.to_dict()
        return out

    def verify(self, payload: str) -> bool:
        """True once per solved, unexpired challenge of ours; a replay or anything else is False."""
        if not payload or len(payload) > 4096:
            return False
        try:
            result = altcha.verify_solution(payload, self._secret)
        except (ValueError, TypeError, KeyError):
            return False
        if not result.verified:
            return False
        parsed = altcha.Payload.from_base64(payload)
        nonce = str(parsed.challenge.parameters.nonce)
        expires = float(parsed.challenge.parameters.expires_at or time.time())
        now = time.time()
        with self._lock:
            if nonce in self._used:
                return False
            if len(self._used) > 10_000:
                self._used = {n: e for n, e in self._used.items() if e > now}
            self._used[nonce] = expires
        return True


def solve(challenge: dict[str, Any]) -> str:
    """Solve a challenge in Python (tests, benchmarks): the payload the widget would post."""
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed)
    if solution is None:
        raise RuntimeError("proof of work not solved in time")
    return str(altcha.Payload(parsed, solution).to_base64())


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def budget_spent(conn: duckdb.DuckDBPyConnection, now: datetime | None = None) -> int:
    """Sign-up codes sent since midnight UTC (counted from the consent trail)."""
    now = now or datetime.now(UTC)
    row = conn.execute(
        "SELECT count(*) FROM subscriber_events WHERE event = 'code_sent' AND source = ?"
        " AND occurred_at >= ?",
        [SIGNUP_SOURCE, _day_start(now)],
    ).fetchone()
    return int(row[0]) if row else 0


def budget_status(
    conn: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None
) -> dict[str, int]:
    """For ``status``: today's sign-up SMS budget, spent and remaining (counts only)."""
    spent = budget_spent(conn, now)
    budget = settings.signup_sms_daily_budget
    return {"budget": budget, "spent": spent, "remaining": max(budget - spent, 0)}


class SmsBudget:
    """The daily budget in the web process: reserved when a sign-up is answered (before anyone
    knows whether a code will go out), given back when none did."""

    def __init__(self, daily: int, seed: Callable[[], int]) -> None:
        self.daily = daily
        self._seed = seed
        self._day: datetime | None = None
        self._spent = 0
        self._lock = threading.Lock()

    def stale(self) -> bool:
        """True when the next call must read the store (first use, or a new day began)."""
        return self._day != _day_start(datetime.now(UTC))

    def _roll(self) -> None:
        today = _day_start(datetime.now(UTC))
        if self._day != today:
            self._day = today
            self._spent = self._seed()

    def reserve(self) -> bool:
        with self._lock:
            self._roll()
            if self._spent >= self.daily:
                return False
            self._spent += 1
            return True

    def refund(self) -> None:
        with self._lock:
            self._spent = max(self._spent - 1, 0)

    def remaining(self) -> int:
        with self._lock:
            self._roll()
            return max(self.daily - self._spent, 0)

    def seconds_to_reset(self) -> int:
        now = datetime.now(UTC)
        return int((_day_start(now) + timedelta(days=1) - now).total_seconds()) + 1


class SelfCheckLimits(RateLimits):
    """The self-check API's limits (``self_check_limit_*``): per client address, counted before
    the proof of work is checked; per bucket and one budget for everyone, counted only for
    requests with a valid proof (so that nobody can spend them for others without working)."""

    def __init__(self, settings: Settings, key: bytes | None = None) -> None:
        super().__init__(settings, key)
        self._items = {
            "check_client": parse_many(settings.self_check_limit_per_client),
            "check_bucket": parse_many(settings.self_check_limit_per_bucket),
            "check_global": parse_many(settings.self_check_limit_global),
        }

    def per_client(self, address: str) -> bool:
        return self.allow("check_client", address)

    def per_bucket_and_global(self, bucket: int) -> bool:
        return self.allow("check_bucket", str(bucket)) and self.allow("check_global")
