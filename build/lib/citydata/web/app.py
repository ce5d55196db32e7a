"""The FastAPI application: API routers under /api/v1, pages, static files."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from citydata import __version__, keys
from citydata.accounts import service as accounts
from citydata.audit.service import AuditError, AuditLog, usage, usage_totals
from citydata.bases import api as bases_api
from citydata.bases import pages as bases_pages
from citydata.catalog import api as catalog_api
from citydata.catalog import pages as catalog_pages
from citydata.catalog import service as catalog
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.ingest import api as ingest_api
from citydata.ingest import pages as ingest_pages
from citydata.ingest.service import aggregated_classes
from citydata.opendata import api as open_api
from citydata.opendata import dcat as open_dcat
from citydata.opendata import pages as open_pages
from citydata.opendata.service import Catalogue
from citydata.share import api as share_api
from citydata.share import pages as share_pages
from citydata.share import webhooks
from citydata.share.gateway import Limiter
from citydata.share.permissions import usage_scope
from citydata.web.auth import LoginRequired, check_csrf, current_user, sign_in, sign_out
from citydata.web.client import client_ip, networks
from citydata.web.i18n import LANGUAGES
from citydata.web.middleware import SecurityHeaders, Sessions
from citydata.web.ratelimit import MinuteWindows
from citydata.web.render import render

# The seed's targets: 35 units, 289 aggregated classes, 700 shared classes.
TARGETS = {"units": 35, "aggregated": 289, "shared": 700}


async def _send_webhook_notices(app: FastAPI, every: float) -> None:
    state = app.state
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(
                lambda: webhooks.dispatch(
                    state.store, keys=state.keys, allow_hosts=state.settings.webhook_allow_hosts
                )
            )
        except Exception:  # a bad round must not stop the next one
            logging.getLogger(__name__).exception("webhook notices failed")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # What exists once the server has started (libraries, catalog, models) lives as long as it.
    # Kept out of the collector's generations, full collections stay short: they were the
    # sharing API's slowest answers (p99 89 ms -> 31 ms in bench/share.py).
    gc.collect()
    gc.freeze()
    every = app.state.settings.webhook_seconds
    sender = asyncio.create_task(_send_webhook_notices(app, every)) if every > 0 else None
    yield
    if sender is not None:
        sender.cancel()


def create_app(
    store: Store | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The application. ``clock`` (seconds since the epoch) drives rate windows and quotas, so
    tests decide what time it is rather than the wall."""
    settings = settings or Settings.from_env()
    store = store or Store(settings.database_url)
    networks(settings.trusted_proxies)  # a mistyped proxy network stops the start, loudly
    installation_keys = keys.load(settings)

    app = FastAPI(
        title="citydata 政务数据资源管理平台",
        version=__version__,
        description="政务数据归集、校验、基础库融合与共享开放平台 API",
        lifespan=_lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.keys = installation_keys
    app.state.clock = clock
    app.state.audit = AuditLog(store)
    app.state.limiter = Limiter()
    app.state.catalogue = Catalogue(store)
    app.state.open_limiter = MinuteWindows()  # anonymous open-data calls per IP address
    app.add_middleware(Sessions, keys=installation_keys, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders, trusted_proxies=settings.trusted_proxies)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    app.include_router(catalog_api.router)
    app.include_router(catalog_pages.router)
    app.include_router(ingest_api.router)
    app.include_router(ingest_pages.router)
    app.include_router(bases_api.router)
    app.include_router(bases_pages.router)
    app.include_router(share_api.share_router)
    app.include_router(share_api.router)
    app.include_router(share_pages.router)
    app.include_router(open_api.router)
    app.include_router(open_dcat.router)
    app.include_router(open_pages.router)

    @app.exception_handler(AuditError)
    def unaudited(_request: Request, _exc: AuditError):  # noqa: ANN202
        # A read that cannot be put on record is not answered.
        body = {"detail": "审计记录无法写入，本次读取不返回数据"}
        return JSONResponse(body, status_code=503)

    @app.exception_handler(LoginRequired)
    def to_login(_request: Request, _exc: LoginRequired):  # noqa: ANN202
        return RedirectResponse("/login", status_code=303)

    @app.get("/", include_in_schema=False)
    def home(request: Request):  # noqa: ANN202
        with store.session() as session:
            user = current_user(request, session)
            figures = catalog.counts(session)
            figures["aggregated"] = aggregated_classes(session)
            sharing = None
            allowed, unit = usage_scope(user)
            if allowed:  # who reads what is not for everyone
                since = date.today() - timedelta(days=13)
                sharing = usage_totals(usage(session, since, unit))
        return render(request, "home.html", user, figures=figures, targets=TARGETS, sharing=sharing)

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request):  # noqa: ANN202
        return render(request, "login.html")

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: str = Form(...),
        password: str = Form(...),
        csrf: str = Form(""),
    ):  # noqa: ANN202
        check_csrf(request, csrf)
        address = client_ip(request)
        with store.session() as session:
            try:
                user = accounts.login(session, username, password, address)
            except accounts.Throttled as exc:
                return render(
                    request,
                    "login.html",
                    error=str(exc),
                    status_code=429,
                    headers={"Retry-After": str(exc.seconds)},
                )
            if user is None:
                session.commit()  # the failure counts, though the answer is an error page
                return render(request, "login.html", error="用户名或密码错误", status_code=401)
            sign_in(request, session, user, address)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")):  # noqa: ANN202
        check_csrf(request, csrf)
        with store.session() as session:
            sign_out(request, session)
        return RedirectResponse("/", status_code=303)

    @app.get("/lang/{code}", include_in_schema=False)
    def set_language(code: str, request: Request):  # noqa: ANN202
        back = request.headers.get("referer") or "/"
        response = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
        if code in LANGUAGES:
            response.set_cookie("lang", code, max_age=365 * 86400, samesite="lax")
        return response

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
