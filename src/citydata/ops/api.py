"""``/metrics`` (Prometheus' text format) and the middleware that times every request.

The figures say how busy the platform is and who calls it how often: not for everyone. With
``CITYDATA_METRICS_TOKEN`` set, a scraper sends ``Authorization: Bearer <token>``; without it,
only a scraper on this machine is answered — a peer on loopback that came through no proxy (a
reverse proxy on the same machine forwards ``X-Forwarded-For``, and what it forwards is the
world). Anyone else gets 404, as if there were nothing here."""

from __future__ import annotations

import hmac
import ipaddress
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citydata.clock import moment
from citydata.ops import metrics
from citydata.web.client import peer

router = APIRouter(include_in_schema=False)


def allowed(request: Request) -> bool:
    token = request.app.state.settings.metrics_token
    if token:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(presented.encode(), token.encode())
    try:
        local = ipaddress.ip_address(peer(request.scope)).is_loopback
    except ValueError:
        return False
    forwarded = any(k in request.headers for k in ("x-forwarded-for", "forwarded", "x-real-ip"))
    return local and not forwarded


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    if not allowed(request):
        return Response("Not Found", 404, media_type="text/plain")
    state = request.app.state
    body = await run_in_threadpool(metrics.exposition, state.store, moment(state.clock()))
    return Response(body, 200, media_type=CONTENT_TYPE_LATEST)


class Timing:
    """Counts and times every HTTP request by its route's template (``/api/share/v1/lookup``,
    ``/grid/events/{number}``), never by the raw path: values in paths stay out of the figures,
    and their number stays bounded."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", None) or (
                "/static" if scope["path"].startswith("/static/") else "unmatched"
            )
            method = scope["method"]
            metrics.REQUESTS.labels(method, route, str(status)).inc()
            metrics.LATENCY.labels(method, route).observe(time.perf_counter() - started)
