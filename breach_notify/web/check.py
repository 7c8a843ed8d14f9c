"""The ``/check`` page: the private self-check, done in the browser (docs/SELFCHECK.md).

The page is rendered here (English or French, the pages' security headers); its module script
(``static/js/check.js``) normalises the number with the vendored libphonenumber-js, blinds it,
and sends only ``{bucket, blinded, pow}`` to ``POST /check/api``. The form has no named field
but the proof of work: without JavaScript nothing about the number can reach the server.

The vendored @noble modules import each other by bare specifiers, so the page inlines the import
map of ``static/vendor/noble/importmap.json`` (paths under the app's root); its SHA-256 is added
to ``script-src`` in this page's CSP only. ``routes`` also mounts the API, with the pages' ALTCHA
proof of work as its checker and :class:`~breach_notify.web.abuse.SelfCheckLimits`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib import resources

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from breach_notify.kinds import KINDS
from breach_notify.settings import Settings
from breach_notify.web import abuse, i18n, selfcheck
from breach_notify.web.pages import PACKAGE, Front
from breach_notify.web.security import CSP, SecurityHeaders

SCRIPT_SRC = "script-src 'self'"


@cache
def _imports() -> dict[str, str]:
    text = resources.files(PACKAGE).joinpath("static/vendor/noble/importmap.json").read_text()
    imports: dict[str, str] = json.loads(text)["imports"]
    return imports


def importmap(static: str) -> str:
    """The import map's text for a page whose static files are under ``static`` (no slash at
    the end), safe to inline in a ``<script>`` element."""
    mapped = {k: static + v.removeprefix("/static") for k, v in _imports().items()}
    text = json.dumps({"imports": mapped}, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def csp_allowing(inline_script: str) -> str:
    """The pages' CSP with one inline script (by its SHA-256) added to ``script-src``."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    policy = CSP.replace(SCRIPT_SRC, f"{SCRIPT_SRC} 'sha256-{digest}'")
    if policy == CSP:
        raise RuntimeError("the pages' CSP has no script-src 'self' to extend")
    return policy


def pow_check(front: Front) -> selfcheck.PowCheck | None:
    """The API's proof-of-work check: the pages' ALTCHA (each solution accepted once), or None
    when the pages run without proof of work (then a required proof answers 503)."""
    pow_ = front.pow
    if pow_ is None:
        return None

    def check(payload: str, bucket: int, blinded: bytes) -> bool:
        return pow_.verify(payload)

    return check


class CheckPage:
    """``GET /check``."""

    def __init__(self, settings: Settings, front: Front) -> None:
        self.front = front
        self.with_pow = settings.self_check_require_pow and front.pow is not None

    async def page(self, request: Request) -> Response:
        accept = request.headers.get("accept-language")
        lang = i18n.negotiate(accept, request.query_params.get("lang"))
        root = request.scope.get("root_path", "")
        imports = importmap(f"{root}/static")
        return self.front.render(
            request,
            "check.html",
            lang,
            headers={"Content-Security-Policy": csp_allowing(imports)},
            importmap=imports,
            api_base=root,
            check_pow=self.with_pow,
            countries=i18n.countries(lang),
            country=i18n.default_country(accept),
            kinds=[(kind, i18n.message(lang, f"kind_{kind}")) for kind in KINDS],
        )


def routes(settings: Settings, front: Front) -> list[BaseRoute]:
    """The page and the API (``GET /check/config``, ``POST /check/api``), guarded as above."""
    page = CheckPage(settings, front)
    guard = [Middleware(SecurityHeaders, https=front.https)]
    api = selfcheck.routes(
        settings,
        pow_check=pow_check(front),
        limits=abuse.SelfCheckLimits(settings),
        client_of=front.client_address,
    )
    return [Route("/check", page.page, methods=["GET"], middleware=guard), *api]
