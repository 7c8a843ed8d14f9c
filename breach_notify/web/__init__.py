"""The web app: Twilio webhooks (signatures checked), the sign-up pages, the self-check page and
its API.

``create_app`` builds the Starlette app; ``server`` runs it on uvicorn.
"""

from breach_notify.web.app import create_app

__all__ = ["create_app"]
