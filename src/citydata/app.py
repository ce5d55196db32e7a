"""The application factory: the composition root. With the CLI root (``citydata.cli``) and the
schema (``citydata.migrations``) it is one of the only places that import every domain; it
wires their routers, shared state and middleware together, and nothing imports it but those
who run it."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool

from citydata import __version__, keys
from citydata.accounts import pages as accounts_pages
from citydata.accounts.service import Authenticator
from citydata.audit.service import AuditError, AuditLog
from citydata.bases import api as bases_api
from citydata.bases import pages as bases_pages
from citydata.brain import pages as brain_pages
from citydata.catalog import api as catalog_api
from citydata.catalog import pages as catalog_pages
from citydata.catalog import vocab
from citydata.clock import moment
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.grid import api as grid_api
from citydata.grid import open311_api as grid_open311
from citydata.grid import pages as grid_pages
from citydata.ingest import api as ingest_api
from citydata.ingest import pages as ingest_pages
from citydata.mechanisms import changes, ratelimit, schedule
from citydata.opendata import api as open_api
from citydata.opendata import dcat as open_dcat
from citydata.opendata import pages as open_pages
from citydata.opendata.calls import ApiCalls
from citydata.opendata.service import Catalogue
from citydata.ops import api as ops_api
from citydata.ops import jobs as ops_jobs
from citydata.ops import metrics as ops_metrics
from citydata.services import api as services_api
from citydata.services import pages as services_pages
from citydata.services import staff_pages as services_staff
from citydata.share import api as share_api
from citydata.share import manage_api as share_manage_api
from citydata.share import pages as share_pages
from citydata.share.gateway import Limiter
from citydata.web import routes as web_routes
from citydata.web.auth import LoginRequired
from citydata.web.client import networks
from citydata.web.errors import refuse_nul
from citydata.web.middleware import SecurityHeaders, Sessions
from citydata.web.render import templates

STATIC = Path(__file__).parent / "web" / "static"
ROUTERS = [
    brain_pages.router,
    accounts_pages.router,
    catalog_api.router,
    catalog_pages.router,
    ingest_api.router,
    ingest_pages.router,
    bases_api.router,
    bases_pages.router,
    share_api.share_router,
    share_manage_api.router,
    share_pages.router,
    open_api.router,
    open_dcat.router,
    open_pages.router,
    services_api.router,
    services_pages.router,
    services_staff.router,
    grid_api.router,
    grid_open311.router,
    grid_pages.router,
    web_routes.router,
    ops_api.router,
]
templates.env.globals["vocab"] = vocab  # the catalog's vocabularies, for every page


async def _run_schedule(app: FastAPI, jobs: list[schedule.Job]) -> None:
    """Every second or so, the jobs that are due and that this process wins (each round runs
    once across every worker and machine); each runs on a thread of its own, so a long theme
    refresh does not hold up the webhook rounds."""
    state = app.state
    tick = min([1.0, *(j.every.total_seconds() for j in jobs)])
    running: set[str] = set()
    tasks: set[asyncio.Task] = set()  # held, or the loop may collect a task mid-run
    log = logging.getLogger(__name__)
    while True:
        await asyncio.sleep(tick)
        now = moment(state.clock())
        for job in jobs:
            if job.name in running:
                continue
            try:
                won = await run_in_threadpool(schedule.claim, state.store, job, now)
            except Exception:  # the store is away for a moment: the next tick tries again
                log.exception("scheduled job %s could not be claimed", job.name)
                continue
            if won:
                running.add(job.name)
                task = asyncio.create_task(run_in_threadpool(schedule.run, state.store, job, now))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t, name=job.name: running.discard(name))


async def _count_open_calls(app: FastAPI, every: float) -> None:
    """The open-data API's calls, counted in memory, added to the table every few seconds."""
    try:
        while True:
            await asyncio.sleep(every)
            try:
                await run_in_threadpool(app.state.open_calls.flush, app.state.store)
            except Exception:
                logging.getLogger(__name__).exception("open data call counts not written")
    finally:
        with suppress(Exception):  # the last few seconds' calls, as the server stops
            app.state.open_calls.flush(app.state.store)


async def _prompt_on_change(app: FastAPI, job: schedule.Job, settle: float = 2.0) -> None:
    """Make ``job`` due at start and whenever a commit in this process marks data changed
    (``settle`` seconds later, so a burst of batches is one round); one process runs it."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    wake.set()  # pre-warm
    forget = changes.listen(lambda _topics: loop.call_soon_threadsafe(wake.set))
    try:
        while True:
            await wake.wait()
            await asyncio.sleep(settle)
            wake.clear()
            try:
                now = moment(app.state.clock())
                await run_in_threadpool(schedule.poke, app.state.store, job, now)
            except Exception:
                logging.getLogger(__name__).exception("%s could not be made due", job.name)
    finally:
        forget()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # What exists once the server has started (libraries, catalog, models) lives as long as it.
    # Kept out of the collector's generations, full collections stay short: they were the
    # sharing API's slowest answers (p99 89 ms -> 31 ms in bench/share.py).
    gc.collect()
    gc.freeze()
    state = app.state
    settings = state.settings
    tasks = [asyncio.create_task(_count_open_calls(app, 10))]
    if settings.schedule:
        jobs = ops_jobs.standard(state.store, settings, state.keys)
        tasks.append(asyncio.create_task(_run_schedule(app, jobs)))
        brain_job = next((j for j in jobs if j.name == ops_jobs.BRAIN), None)
        if brain_job is not None:  # the cockpit's summaries: pre-warmed, then kept fresh
            tasks.append(asyncio.create_task(_prompt_on_change(app, brain_job)))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def create_app(
    store: Store | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The application. ``clock`` (seconds since the epoch) drives rate windows and quotas, so
    tests decide what time it is rather than the wall."""
    settings = settings or Settings.from_env()
    store = store or Store(settings.database_url, settings.read_database_url)
    networks(settings.trusted_proxies)  # a mistyped proxy network stops the start, loudly
    installation_keys = keys.load(settings)

    app = FastAPI(
        title="citydata 政务数据资源管理平台",
        version=__version__,
        description="政务数据归集、校验、基础库融合与共享开放平台 API",
        lifespan=_lifespan,
        docs_url=None,  # web/routes.py serves /docs from /static: no CDN
        redoc_url=None,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.keys = installation_keys
    app.state.clock = clock
    app.state.authenticator = Authenticator()
    app.state.audit = AuditLog(store, observe=ops_metrics.observe_audit)
    app.state.limiter = Limiter(store)  # exact across processes where several serve
    app.state.catalogue = Catalogue(store)
    app.state.open_limiter = ratelimit.windows(store, "open_ip")  # anonymous calls per IP
    app.state.open_calls = ApiCalls()  # the open-data API's calls per day, flushed every 10 s
    app.add_middleware(Sessions, keys=installation_keys, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(ops_api.Timing)  # outermost: it times everything inside
    # a domain's own scripts beside its templates, before the toolkit's folder that holds the rest
    app.mount("/static/grid", StaticFiles(directory=str(grid_pages.STATIC)), name="grid_static")
    app.mount("/static/brain", StaticFiles(directory=str(brain_pages.STATIC)), name="brain_static")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(AuditError)
    def unaudited(_request: Request, _exc: AuditError):
        # A read that cannot be put on record is not answered.
        body = {"detail": "审计记录无法写入，本次读取不返回数据"}
        return JSONResponse(body, status_code=503)

    app.add_exception_handler(DataError, refuse_nul)

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, _exc: LoginRequired):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(back)}", status_code=303)

    return app
