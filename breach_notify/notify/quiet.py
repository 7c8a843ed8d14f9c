"""Quiet hours in the recipient's local time (``phonenumbers.timezone``).

``settings.quiet_start`` … ``settings.quiet_end`` is the *sending window* (default 09:00–20:00):
outside it is quiet. A window may wrap midnight (start after end). A number whose region spans
several time zones may be sent to only when the window is open in all of them; a number with no
known zone uses ``fallback`` (the schedule time zone).
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from phonenumbers import timezone as pn_timezone

from breach_notify.numbers import E164


def zones(to: E164) -> tuple[str, ...]:
    """The IANA zones the number may be in (empty when unknown)."""
    found = pn_timezone.time_zones_for_number(to.parsed)
    return tuple(z for z in found if z != pn_timezone.UNKNOWN_TIMEZONE)


def in_window(local: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def may_send(to: E164, now: datetime, start: time, end: time, fallback: str = "UTC") -> bool:
    """True when ``now`` (aware) is inside the sending window wherever the recipient may be."""
    names = zones(to) or (fallback,)
    return all(in_window(now.astimezone(ZoneInfo(z)).time(), start, end) for z in names)
