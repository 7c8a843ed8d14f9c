"""The whole web app (pages, /check, the self-check API) on a real uvicorn server on loopback,
with every request body it received and every log line it wrote kept for the tests' checks."""

from __future__ import annotations

from typing import Any

from .net import serve_app


class Recorder:
    """ASGI wrapper keeping every request as the app received it: ``bodies`` (path, body) and
    ``requests`` (method, path with its query string, body)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[tuple[str, bytes]] = []
        self.requests: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        kept = False

        def keep() -> None:
            nonlocal kept
            if not kept:
                kept = True
                body = b"".join(chunks)
                query = scope.get("query_string", b"").decode("latin-1")
                target = scope["path"] + (f"?{query}" if query else "")
                self.bodies.append((scope["path"], body))
                self.requests.append((scope["method"], target, body))

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    keep()
            return message

        try:
            await self.app(scope, recording, send)
        finally:
            keep()  # a request whose body the app never read (a GET) is kept too

    def posted(self, path: str) -> list[bytes]:
        return [b for method, p, b in self.requests if method == "POST" and p.split("?")[0] == path]


serve = serve_app  # the self-check tests serve their app the way every web test does
