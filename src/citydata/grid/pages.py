"""Pages of 一格通管 (``/grid``), for the city's staff: the queue (the 监督指挥中心 sees the whole
city, a unit its own events), an event with its timeline, photo, place on the map and the
actions its role allows, a report form for inspectors, the map of events over the city's own
cells, and the assessment (综合评价)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from citydata.grid import assessment, events, mapping, permissions, photos, service, sla
from citydata.grid.events import TRANSITIONS, GridError, Report
from citydata.grid.mapping import Box, MapFilter
from citydata.web import clock
from citydata.web.auth import check_csrf, signed_in
from citydata.web.i18n import translate
from citydata.web.render import language, render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)
STATIC = Path(__file__).parent / "static"  # gridmap.js, served at /static/grid/


def _page(request: Request, name: str, user, status_code: int = 200, **context):
    return render(
        request,
        name,
        user,
        status_code=status_code,
        statuses=TRANSITIONS.labels,
        categories=sla.categories(),
        may_dispatch=permissions.may_dispatch(user),
        **context,
    )


def _refused(request: Request, user, exc: GridError):
    return _page(request, "grid_error.html", user, exc.status, error=str(exc))


def _staff(request: Request, session):
    user = signed_in(request, session)
    if not permissions.may_see(user):
        raise GridError("只有各单位的工作人员可以查看城市管理事件", 403, "forbidden")
    return user


@router.get("/grid")
def queue(
    request: Request, status: str = "", category: str = "", overdue: bool = False, cursor: str = ""
):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            _staff(request, session)
            unit = None if permissions.may_dispatch(user) else user.unit_code
            wanted = service.QueueFilter((status[:12],) if status else (), category[:8], overdue)
            found, next_cursor = service.queue(
                session, unit, wanted, clock.now(request), cursor[:200], 50
            )
        except GridError as exc:
            return _refused(request, user, exc)
        rows = service.event_dicts(session, found, clock.now(request))
        return _page(
            request,
            "grid_queue.html",
            user,
            rows=rows,
            next_cursor=next_cursor,
            status=status,
            category=category,
            overdue=overdue,
            unit=unit,
        )


@router.get("/grid/events/{event_no}")
def event_page(request: Request, event_no: str, error: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            _staff(request, session)
            event = events.by_no(session, event_no[:24])
        except GridError as exc:
            return _refused(request, user, exc)
        shown = service.event_dict(session, event, clock.now(request), full=True)
        margin = 0.01
        box = Box(
            event.longitude - margin,
            event.latitude - margin * 0.8,
            event.longitude + margin,
            event.latitude + margin * 0.8,
        )
        drawing = mapping.draw(
            session, box, MapFilter(), clock.now(request), service.division_names()
        )
        return _page(
            request,
            "grid_event.html",
            user,
            event=shown,
            has_photo=bool(event.photo_key),
            drawing=drawing,
            focus=event.event_no,
            may_handle=permissions.may_handle(user, event.unit_code),
            may_inspect=permissions.may_inspect(user),
            units=service.unit_names(session),
            error=error[:200],
        )


@router.post("/grid/events/{event_no}/act")
def act(
    request: Request,
    event_no: str,
    action: str = Form(""),
    note: str = Form(""),
    category: str = Form(""),
    unit: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            event = events.by_no(session, event_no[:24])
            service.act(
                session,
                user,
                event,
                action[:20],
                clock.now(request),
                note[:2000],
                category[:8] or None,
                unit[:32] or None,
            )
        except GridError as exc:
            session.rollback()
            return _refused(request, user, exc)
    return RedirectResponse(f"/grid/events/{event_no}", status_code=303)


@router.get("/grid/events/{event_no}/photo")
def photo(request: Request, event_no: str):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            _staff(request, session)
            event = events.by_no(session, event_no[:24])
        except GridError as exc:
            return _refused(request, user, exc)
        if not event.photo_key:
            return _refused(request, user, GridError("该事件没有照片", 404, "no_photo"))
        key = event.photo_key
    file = photos.storage(request.app.state.settings.data_dir).open(key)
    head = file.read(8)
    file.seek(0)
    kind = "image/png" if head.startswith(b"\x89PNG") else "image/jpeg"
    return StreamingResponse(file, media_type=kind)


@router.get("/grid/report")
def report_form(request: Request):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        return _page(request, "grid_report.html", user, error=None, given={})


@router.post("/grid/report")
def report(
    request: Request,
    description: str = Form(""),
    longitude: str = Form(""),
    latitude: str = Form(""),
    category: str = Form(""),
    address: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    given = {"description": description, "longitude": longitude, "latitude": latitude}
    given |= {"category": category, "address": address}
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            if not permissions.may_inspect(user):
                raise GridError("只有监督员可以在此上报", 403, "forbidden")
            try:
                lon, lat = float(longitude), float(latitude)
            except ValueError:
                raise GridError("经纬度须为数值", 400, "bad_location") from None
            event = events.report(
                session,
                request.app.state.keys,
                Report(
                    description[:2000],
                    lon,
                    lat,
                    category[:8] or None,
                    "inspector",
                    "page",
                    address[:200],
                    reporter_name=user.display_name or user.username,
                ),
                user.display_name or user.username,
                clock.now(request),
            )
        except GridError as exc:
            session.rollback()
            return _page(request, "grid_report.html", user, exc.status, error=str(exc), given=given)
        number = event.event_no
    return RedirectResponse(f"/grid/events/{number}", status_code=303)


def _filter(
    category: str, status: str, unit: str, since: str, until: str, overdue: bool
) -> MapFilter:
    def day(text: str) -> datetime | None:
        if not text:
            return None
        try:
            # a day in Changsha begins at 00:00 Beijing time
            return datetime.fromisoformat(text[:10]).replace(tzinfo=UTC) - sla.BEIJING
        except ValueError:
            raise GridError(f"日期「{text[:20]}」须形如 2026-01-31", 400, "bad_date") from None

    return MapFilter(
        tuple(c for c in category.split(",") if c)[:50],
        tuple(s for s in status.split(",") if s)[:20],
        unit[:32],
        day(since),
        day(until),
        overdue,
    )


@router.get("/grid/map")
def map_page(
    request: Request,
    category: str = "",
    status: str = "open",
    unit: str = "",
    since: str = "",
    until: str = "",
    overdue: bool = False,
    bbox: str = "",
):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            _staff(request, session)
            _filter(category, status, unit, since, until, overdue)  # refused here, not in JS
            if bbox:
                Box.parse(bbox[:100])
        except GridError as exc:
            return _refused(request, user, exc)
        filters = {"category": category, "status": status, "unit": unit, "since": since}
        filters |= {"until": until, "overdue": "true" if overdue else ""}
        return _page(
            request,
            "grid_map.html",
            user,
            has_cells=mapping.extent(session) is not None,
            query=urlencode({k: v for k, v in filters.items() if v}),
            labels={
                "events": translate("个事件", language(request)),
                "overdue": translate("超期", language(request)),
                "clustered": translate("点位过多，按单元网格汇总显示", language(request)),
                "failed": translate("地图数据载入失败", language(request)),
            },
            f=filters | {"overdue": overdue, "bbox": bbox},
            units=service.unit_names(session),
            map_approval=request.app.state.settings.map_approval,
        )


@router.get("/grid/cells.geojson")
def cells_geojson(request: Request, bbox: str = ""):
    """The unit grid cells (in a box, or all) with their street and community."""
    with request.app.state.store.session() as session:
        try:
            _staff(request, session)
            found = mapping.cells_geojson(session, Box.parse(bbox[:100]) if bbox else None)
        except GridError as exc:
            return _json_refusal(exc)
    return Response(orjson.dumps(found), media_type="application/geo+json")


@router.get("/grid/districts.geojson")
def districts_geojson(request: Request):
    """Each district's outline from the spatial base, with its name."""
    with request.app.state.store.session() as session:
        try:
            _staff(request, session)
            found = mapping.districts_geojson(session, service.division_names())
        except GridError as exc:
            return _json_refusal(exc)
    return Response(orjson.dumps(found), media_type="application/geo+json")


def _json_refusal(exc: GridError) -> Response:
    body = {"detail": str(exc)}
    return Response(orjson.dumps(body), exc.status, media_type="application/json")


@router.get("/grid/map.geojson")
def map_geojson(
    request: Request,
    bbox: str,
    category: str = "",
    status: str = "",
    unit: str = "",
    since: str = "",
    until: str = "",
    overdue: bool = False,
):
    """GeoJSON of the events in a box (for any map client), filtered in SQL."""
    with request.app.state.store.session() as session:
        try:
            _staff(request, session)
            found = mapping.events_geojson(
                session,
                Box.parse(bbox[:100]),
                _filter(category, status, unit, since, until, overdue),
                clock.now(request),
            )
        except GridError as exc:
            return _json_refusal(exc)
    return Response(orjson.dumps(found), media_type="application/geo+json")


@router.get("/grid/assessment")
def assessment_page(request: Request, by: str = "division", since: str = "", until: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            _staff(request, session)
            dimension = by if by in assessment.DIMENSIONS else "division"
            window = _filter("", "", "", since, until, False)
            table = assessment.assess(
                assessment.frame(session, window.since, window.until), [dimension]
            )
        except GridError as exc:
            return _refused(request, user, exc)
        names = service.unit_names(session) | service.division_names()
        return _page(
            request,
            "grid_assessment.html",
            user,
            rows=[r | {"label": assessment.label(r, dimension, names)} for r in table.to_dicts()],
            by=dimension,
            dimensions=assessment.DIMENSIONS,
            rates=assessment.RATES,
            since=since,
            until=until,
        )
