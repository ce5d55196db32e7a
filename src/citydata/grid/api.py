"""HTTP for docked department systems (``/api/grid/v1``): the same credential (``cdk_…``),
``Idempotency-Key`` and webhook machinery as the service platform's docking — one mechanism. A
system sees the events dispatched to its unit, reports 处置 and 处置反馈, files events its unit
found itself, and subscribes to the steps of its unit's events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from citydata.grid import events, service
from citydata.grid.events import GridError, Report
from citydata.mechanisms import docked
from citydata.services.docking import authenticate
from citydata.services.shared import ServiceError
from citydata.web import clock
from citydata.web.errors import documented

router = APIRouter(
    prefix="/api/grid/v1",
    tags=["grid 一格通管对接接口"],
    responses=documented(400, 401, 403, 404, 409, 422, 429),
)
ERRORS = (GridError, ServiceError)
Authorization = docked.Authorization
IdempotencyKey = docked.IdempotencyKey
EventNo = Annotated[str, Field(min_length=1, max_length=24, pattern=r"^[0-9]+$")]
Text = Annotated[str, Field(max_length=2000)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]


def _read(request: Request, authorization: str, work):
    return docked.read(request, authorization, authenticate, ERRORS, work)


def _write(request: Request, authorization: str, key: str | None, body, work):
    return docked.write(request, authorization, authenticate, ERRORS, key, body, work)


@router.get("/events", summary="派遣给本单位的事件（按时限先后）")
def list_events(
    request: Request,
    authorization: Authorization = "",
    status: Literal["", "dispatched", "handling", "rework", "handled"] = "",
    overdue: bool = False,
    cursor: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    def work(session, system, call):
        now = clock.now(request)
        wanted = service.QueueFilter(
            (status,) if status else ("dispatched", "handling", "rework"), "", overdue
        )
        found, next_cursor = service.queue(session, system.unit_code, wanted, now, cursor, limit)
        rows = service.event_dicts(session, found, now)
        return docked.json_response(200, {"events": rows, "next_cursor": next_cursor})

    return _read(request, authorization, work)


@router.get("/events/{event_no}", summary="一个事件及其流转记录")
def get_event(request: Request, event_no: str, authorization: Authorization = ""):
    def work(session, system, call):
        event = service.docked_event(session, system.unit_code, event_no)
        return docked.json_response(
            200, service.event_dict(session, event, clock.now(request), True)
        )

    return _read(request, authorization, work)


class StepIn(BaseModel):
    status: Literal["handling", "handled"]
    note: Text = ""
    longitude: Longitude | None = None
    latitude: Latitude | None = None


@router.post("/events/{event_no}/steps", status_code=201, summary="报告处置或处置反馈")
def post_step(
    request: Request,
    event_no: str,
    body: StepIn,
    authorization: Authorization = "",
    idempotency_key: IdempotencyKey = None,
):
    def work(session, system, call):
        event = service.docked_step(
            session,
            system.unit_code,
            system.name,
            event_no,
            body.status,
            body.note,
            body.longitude,
            body.latitude,
            clock.now(request),
        )
        return 201, service.event_dict(session, event, clock.now(request))

    return _write(request, authorization, idempotency_key, body, work)


class ReportIn(BaseModel):
    category: Annotated[str, Field(min_length=5, max_length=5)]
    description: Text = ""
    longitude: Longitude
    latitude: Latitude
    address: Annotated[str, Field(max_length=200)] = ""
    component_id: Annotated[str, Field(min_length=16, max_length=16)] | None = None


@router.post("/reports", status_code=201, summary="本单位发现的事件（信息收集）")
def post_report(
    request: Request,
    body: ReportIn,
    authorization: Authorization = "",
    idempotency_key: IdempotencyKey = None,
):
    def work(session, system, call):
        given = Report(
            description=body.description,
            longitude=body.longitude,
            latitude=body.latitude,
            category=body.category,
            source="department",
            channel="docked",
            address=body.address,
            component_id=body.component_id,
            reporter_name=system.name,
        )
        event = events.report(session, call.keys, given, system.name, clock.now(request))
        return 201, service.event_dict(session, event, clock.now(request))

    return _write(request, authorization, idempotency_key, body, work)


docked.add_subscriptions(router, authenticate, ERRORS, events.owner, "事件流转")
