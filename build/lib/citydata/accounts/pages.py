"""Pages: sign in and out. A session is server-side (accounts.service); the cookie only names
it."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from citydata.accounts import service
from citydata.accounts.models import User
from citydata.web.auth import check_csrf, session_token
from citydata.web.client import client_ip
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


def sign_in(request: Request, session: Session, user: User, address: str) -> None:
    """A new server-side session for ``user``; whatever the cookie held before is dropped."""
    request.session.clear()
    request.session["sid"] = service.start_session(session, user, address)


def sign_out(request: Request, session: Session) -> None:
    service.end_session(session, session_token(request))
    request.session.clear()


def local_path(target: str) -> str:
    """Where to go after signing in: a path of this site only (never ``//host`` or a URL)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok and target.isprintable() and len(target) <= 300 else "/"


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return render(request, "login.html", next=local_path(next))


@router.post("/login")
def login(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    csrf: str = Form(""),
    next: str = Form("/"),
):
    check_csrf(request, csrf)
    address = client_ip(request)
    next = local_path(next)
    with request.app.state.store.session() as session:
        try:
            user = service.login(session, username, password, address)
        except service.Throttled as exc:
            return render(
                request,
                "login.html",
                error=str(exc),
                next=next,
                status_code=429,
                headers={"Retry-After": str(exc.seconds)},
            )
        if user is None:
            session.commit()  # the failure counts, though the answer is an error page
            return render(
                request, "login.html", error="用户名或密码错误", next=next, status_code=401
            )
        sign_in(request, session, user, address)
    return RedirectResponse(next, status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        sign_out(request, session)
    return RedirectResponse("/", status_code=303)
