"""Middleware every response passes through: the signed session cookie (keys rotate; Secure
whenever the request came over HTTPS) and the security headers."""

from __future__ import annotations

import itsdangerous
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citydata.keys import Keys
from citydata.web.client import scheme

COOKIE = "citydata_session"


class Sessions:
    """Starlette's signed-cookie session, signed with the installation's keys (any of them
    verifies, the newest signs), its cookie marked Secure when the request is HTTPS — directly
    or as a trusted proxy says."""

    def __init__(self, app: ASGIApp, keys: Keys, trusted_proxies: tuple[str, ...]):
        self.trusted = trusted_proxies
        self.plain = SessionMiddleware(app, "-", session_cookie=COOKIE, same_site="lax")
        self.secure = SessionMiddleware(
            app, "-", session_cookie=COOKIE, same_site="lax", https_only=True
        )
        signer = itsdangerous.TimestampSigner(keys.signing)
        self.plain.signer = self.secure.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        https = scope["type"] in ("http", "websocket") and scheme(scope, self.trusted) == "https"
        await (self.secure if https else self.plain)(scope, receive, send)


# Pages load scripts and styles from /static only: no inline script can run, whatever a value
# on a page holds. The API docs page (Swagger UI, from /static) is FastAPI's page with an inline
# script that starts it; it shows no data.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs",)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, trusted_proxies: tuple[str, ...]):
        self.app = app
        self.trusted = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scheme(scope, self.trusted) == "https"
        docs = scope.get("path", "").startswith(DOCS_PATHS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                if https:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, with_headers)
