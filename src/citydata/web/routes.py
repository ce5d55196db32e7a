"""Routes every installation has, whatever its domains: the language switch and a health check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from citydata import __version__
from citydata.web.i18n import LANGUAGES

router = APIRouter(include_in_schema=False)


@router.get("/lang/{code}")
def set_language(code: str, request: Request):
    back = request.headers.get("referer") or "/"
    response = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
