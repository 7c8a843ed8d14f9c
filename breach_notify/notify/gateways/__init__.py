"""Built-in gateways; importing this package registers their URL schemes.

The Twilio SDK is imported only when a ``twilio://`` URL is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breach_notify.notify.gateway import register
from breach_notify.notify.gateways import dryrun, memory  # noqa: F401
from breach_notify.settings import Settings

if TYPE_CHECKING:
    from breach_notify.notify.gateways.twilio import TwilioGateway


@register("twilio")
def _open_twilio(url: str, settings: Settings) -> TwilioGateway:
    from breach_notify.notify.gateways import twilio

    return twilio.open_url(url, settings)
