"""Only mobiles, when the operator asks for it: Twilio Lookup's line type before a code or a JOIN.

Behind ``settings.lookup_line_type`` (off by default: every query costs money), and only with a
gateway that can ask (``twilio://``: ``TwilioGateway.line_type``). Callers ask after answering
the person, so the answer and its timing never depend on it; a refusal only means no SMS and no
subscriber. A failed query allows the number (the rate limits and the budget still hold), and
is logged by error class; the number never is.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol, runtime_checkable

from breach_notify.numbers import E164
from breach_notify.settings import Settings
from breach_notify.sms.errors import GatewayError

log = logging.getLogger(__name__)

MOBILE = frozenset({"mobile"})


@runtime_checkable
class LineTypes(Protocol):
    def line_type(self, number: E164) -> str | None: ...


def enabled(settings: Settings, gateway: object) -> bool:
    """True when a check will be made: the setting is on and the gateway can ask."""
    return settings.lookup_line_type and isinstance(gateway, LineTypes)


def allows(settings: Settings, gateway: object, number: E164) -> bool:
    """False only when the check is on and Lookup names a line type other than mobile."""
    if not enabled(settings, gateway):
        return True
    assert isinstance(gateway, LineTypes)
    try:
        kind = gateway.line_type(number)
    except GatewayError as exc:
        log.warning("line type lookup failed (%s); number allowed", type(exc).__name__)
        return True
    if kind is None or kind in MOBILE:
        log.info("line type check: allowed (%s)", "mobile" if kind else "unknown")
        return True
    log.info("line type check: refused (%s)", re.sub(r"[^A-Za-z]", "", kind)[:20])
    return False
