"""Who may use a server: the ``--serve-token`` check every route goes through.

The token comes from ``?token=`` (a link a phone can open), an ``Authorization: Bearer`` header, or the
``rtseg_token`` cookie that the page sets once the token was given in the URL, so that its own requests
(MJPEG, snapshots, stats, events) need not repeat it. A wrong or missing token is a 401 with one line of
text; nothing else about the server is revealed.
"""

from __future__ import annotations

import hmac
import os

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "RTSEG_SERVE_TOKEN"
COOKIE = "rtseg_token"


def resolve_token(token: str | None) -> str | None:
    """The token given, else ``$RTSEG_SERVE_TOKEN``; None (open server) when neither is set or both are empty."""
    value = token if token else os.environ.get(TOKEN_ENV, "")
    return value.strip() or None


def presented(conn: HTTPConnection) -> str:
    """The token a request carries (query, bearer header, cookie), or ''."""
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return conn.query_params.get("token") or conn.cookies.get(COOKIE, "")


class TokenMiddleware:
    """Refuses every HTTP and WebSocket request without the token (constant-time comparison)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = presented(HTTPConnection(scope))
        if hmac.compare_digest(given.encode(), self.token.encode()):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = PlainTextResponse("401: a valid token is required (?token=...)\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
