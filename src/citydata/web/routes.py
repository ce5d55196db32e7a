"""Routes every installation has, whatever its domains: the language switch, health checks (the
server's, the read replica's lag) and the API's interactive reference (Swagger UI served from /static, never from a CDN)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

from citydata import __version__
from citydata.db.replica import replica_lag
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


@router.get("/healthz/replica")
def replica_health(request: Request) -> dict[str, Any]:
    """How far the read replica lags (bytes of WAL, seconds), for the cockpit and monitoring:
    figures only, never the replica's address."""
    return replica_lag(request.app.state.store)


SWAGGER_UI = "/static/vendor/swagger-ui"  # written by scripts/vendor-js


@router.get("/docs")
def api_reference(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} · API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon.png",
    )
