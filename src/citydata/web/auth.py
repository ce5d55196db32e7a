"""Who is calling: bearer API tokens for the API, signed session cookies for pages, CSRF tokens
for forms. FastAPI dependencies only; the rules themselves live in accounts.service."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from citydata.accounts import service
from citydata.accounts.models import User


def db(request: Request) -> Iterator[Session]:
    """One database session per request, committed when the handler succeeds."""
    with request.app.state.store.session() as session:
        yield session


def current_user(request: Request, session: Session = Depends(db)) -> User | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = service.user_for_token(session, header[7:].strip())
        if user is None:
            raise HTTPException(
                401, "无效或已吊销的 API 令牌", headers={"WWW-Authenticate": "Bearer"}
            )
        return user
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id:
        user = session.get(User, user_id)
        if user is not None and user.active:
            return user
    return None


class LoginRequired(Exception):
    """A page needs a signed-in user; the app answers with a redirect to the login page."""


def signed_in(request: Request, session: Session) -> User:
    """The page's user, or the way to the login page."""
    user = current_user(request, session)
    if user is None:
        raise LoginRequired
    return user


def require_user(user: User | None = Depends(current_user)) -> User:
    if user is None:
        raise HTTPException(401, "需要登录或 API 令牌", headers={"WWW-Authenticate": "Bearer"})
    return user


def require_admin(user: User = Depends(require_user)) -> User:
    if user.role != "admin":
        raise HTTPException(403, "需要管理员权限")
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf", "")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
