"""Built-in gateways; importing this package registers their URL schemes.

The Twilio SDK is imported only when a ``twilio://`` URL is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breach_notify.settings import Settings
from breach_notify.sms.gateway import register
from breach_notify.sms.gateways import dryrun, memory  # noqa: F401

if TYPE_CHECKING:
    from breach_notify.sms.gateways.twilio import TwilioGateway


@register("twilio")
def _open_twilio(url: str, settings: Settings) -> TwilioGateway:
    from breach_notify.sms.gateways import twilio

    return twilio.open_url(url, settings)
