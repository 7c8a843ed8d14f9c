"""Pacing: a token bucket over SMS segments, and exponential backoff with jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


class TokenBucket:
    """``rate`` segments per second, bursts up to ``burst`` (default: one second's worth).

    A message needing more segments than the bucket holds goes when the bucket is full.
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self, segments: int) -> bool:
        """Take ``segments`` tokens if available now."""
        self._refill()
        if self._tokens >= min(segments, self.capacity):
            self._tokens -= segments
            return True
        return False

    def wait_time(self, segments: int) -> float:
        """Seconds until ``try_take(segments)`` can succeed."""
        self._refill()
        missing = min(segments, self.capacity) - self._tokens
        return max(0.0, missing / self.rate)


_RNG = random.Random()  # noqa: S311 - jitter, not secrets


@dataclass(frozen=True)
class Backoff:
    """Up to ``attempts`` requests per message; the n-th retry waits about ``base * 2**(n-1)``.

    Jitter keeps half the delay and randomises the other half ("equal jitter"), capped at ``cap``.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        step = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        jitter = float((rng or _RNG).uniform(0, step / 2))
        return step / 2 + jitter
