"""Twilio webhooks: inbound SMS (keywords) and delivery status, signatures checked.

``create_app`` builds the Starlette app; ``server`` runs it on uvicorn.
"""

from breach_notify.web.app import create_app

__all__ = ["create_app"]
