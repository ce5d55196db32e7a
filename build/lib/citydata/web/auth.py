"""Who is calling: bearer API tokens for the API, server-side sessions (a signed cookie naming
one) for pages. FastAPI dependencies only. Who a token or a session belongs to is the accounts
domain's business: the app factory puts its ``Authenticator`` on ``app.state.authenticator``,
so this toolkit imports no domain.

A cookie is sent by the browser whatever page asked for the request, so a write authorised by
a cookie must prove it comes from our own pages: a form carries the CSRF token (web.csrf); a
script calling the JSON API sends it as ``X-CSRF-Token`` or comes from our own origin. Bearer
tokens are not sent by browsers on their own and need neither."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any, Protocol

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from citydata.web.client import request_scheme
from citydata.web.csrf import check_csrf, csrf_token  # noqa: F401 - pages import them from here

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class Authenticator(Protocol):
    """The user (an object with ``role`` and ``unit_code``) a credential names, or None."""

    def by_token(self, session: Session, token: str) -> Any | None: ...

    def by_session(self, session: Session, session_token: str) -> Any | None: ...


def db(request: Request) -> Iterator[Session]:
    """One database session per request, committed when the handler succeeds."""
    with request.app.state.store.session() as session:
        yield session


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def session_token(request: Request) -> str:
    return request.session.get("sid", "") if "session" in request.scope else ""


def _authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


def token_user(request: Request, session: Session, token: str) -> Any | None:
    return _authenticator(request).by_token(session, token)


def cookie_user(request: Request, session: Session) -> Any | None:
    """The user of the browser session named by the cookie, if it is still live."""
    return _authenticator(request).by_session(session, session_token(request))


def current_user(request: Request, session: Session = Depends(db)) -> Any | None:
    token = bearer(request)
    if token is not None:
        user = token_user(request, session, token)
        if user is None:
            raise HTTPException(
                401, "无效或已吊销的 API 令牌", headers={"WWW-Authenticate": "Bearer"}
            )
        return user
    user = cookie_user(request, session)
    if user is not None and request.method not in SAFE_METHODS and _is_api(request):
        check_api_origin(request)
    return user


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request_scheme(request)}://{host}"


def check_api_origin(request: Request) -> None:
    """A cookie-authorised API write: the CSRF token in a header, or our own Origin."""
    expected = request.session.get("csrf", "")
    sent = request.headers.get("x-csrf-token", "")
    if expected and sent and hmac.compare_digest(expected, sent):
        return
    if request.headers.get("origin") == own_origin(request):
        return
    raise HTTPException(403, "跨站请求被拒绝：请在 X-CSRF-Token 中带上页面的 CSRF 令牌")


class LoginRequired(Exception):
    """A page needs a signed-in user; the app answers with a redirect to the login page."""


def signed_in(request: Request, session: Session) -> Any:
    """The page's user, or the way to the login page."""
    user = current_user(request, session)
    if user is None:
        raise LoginRequired
    return user


def require_user(user: Any | None = Depends(current_user)) -> Any:
    if user is None:
        raise HTTPException(401, "需要登录或 API 令牌", headers={"WWW-Authenticate": "Bearer"})
    return user


def require_admin(user: Any = Depends(require_user)) -> Any:
    if user.role != "admin":
        raise HTTPException(403, "需要管理员权限")
    return user
