"""Pacing SMS across workers with a Prefect global concurrency limit (slot decay = segments/s).

The sender calls ``pace(segments)`` before each chunk; here that acquires the named limit's slots,
in pieces no larger than the limit itself (a larger request could never be granted). Without such
a limit on the server, pacing is local only (the sender's own token bucket) and no request is made
per chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound


def shared_pace(name: str) -> Callable[[int], None] | None:
    """A pace function for limit ``name``, or None when the server has no such active limit."""
    if not name:
        return None
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None
    if not limit.active or not limit.slot_decay_per_second or limit.limit < 1:
        return None
    step = limit.limit

    def pace(segments: int) -> None:
        left = max(1, segments)
        while left > 0:
            take = min(step, left)
            rate_limit(name, occupy=take, strict=False)
            left -= take

    return pace
