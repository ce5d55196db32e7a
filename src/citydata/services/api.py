"""HTTP for docked business systems (``/api/services/v1``): a department's own system, holding
``Authorization: Bearer cdk_<key id>_<secret>``, lists and reads its unit's cases, opens the
cases it received itself, posts status changes and visits, and subscribes to webhooks.

Every write carries an ``Idempotency-Key``: the key is claimed in the write's own transaction
and the answer kept with it, so a retry (a timeout, a lost answer) gets the same answer and
changes nothing, and the same key with another body is refused (422)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from citydata.mechanisms import docked
from citydata.services import service
from citydata.services.cases import QueueFilter, owner
from citydata.services.docking import authenticate
from citydata.services.identity import Applicant
from citydata.services.shared import ServiceError
from citydata.standards import is_valid_credit_code, is_valid_id_number, normalise_id_number
from citydata.web import clock
from citydata.web.errors import documented

router = APIRouter(
    prefix="/api/services/v1",
    tags=["services 一网通办对接接口"],
    responses=documented(400, 401, 403, 404, 409, 422, 429, 503),
)
ERRORS = (ServiceError,)
CaseNo = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z-]+$")]
Text = Annotated[str, Field(max_length=2000)]


_json = docked.json_response


def _read(request: Request, authorization: str, work) -> Response:
    return docked.read(request, authorization, authenticate, ERRORS, work)


def _write(
    request: Request,
    authorization: str,
    key: str | None,
    body: BaseModel | None,
    work,
) -> Response:
    return docked.write(request, authorization, authenticate, ERRORS, key, body, work)


# ---------------------------------------------------------------- reading


Authorization = docked.Authorization
IdempotencyKey = docked.IdempotencyKey


@router.get("/matters", summary="本单位已发布的事项")
def list_matters(request: Request, authorization: Authorization = ""):
    def work(session, system, call):
        found = service.matters.find(session, unit=system.unit_code, limit=1000)
        return _json(200, [service.matters.matter_dict(m) | {"version": m.version} for m in found])

    return _read(request, authorization, work)


@router.get("/cases", summary="本单位的办件（按环节，办理中的按承诺时限先后）")
def list_cases(
    request: Request,
    authorization: Authorization = "",
    stage: Literal["to_accept", "in_progress", "paused", "done"] = "to_accept",
    matter: Annotated[str, Query(max_length=60)] = "",
    channel: Literal["", "online", "window"] = "",
    overdue: bool = False,
    cursor: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    def work(session, system, call):
        f = QueueFilter(stage, matter, channel, overdue)
        rows, next_cursor = service.queue_rows(
            session, call.keys, system.unit_code, f, clock.today(request), cursor, limit
        )
        return _json(200, {"cases": rows, "next_cursor": next_cursor})

    return _read(request, authorization, work)


@router.get("/cases/{case_no}", summary="一个办件：申请人、表单和状态历史")
def get_case(request: Request, case_no: str, authorization: Authorization = ""):
    def work(session, system, call):
        case = service.docked_case(session, system, case_no)
        return _json(
            200, service.case_dict(session, call.keys, case, clock.today(request), full=True)
        )

    return _read(request, authorization, work)


# ---------------------------------------------------------------- writing


class ApplicantIn(BaseModel):
    kind: Literal["person", "company"]
    number: Annotated[
        str, Field(min_length=15, max_length=18, description="身份证号码或统一社会信用代码")
    ]
    name: Annotated[str, Field(min_length=1, max_length=100)]


class CaseIn(BaseModel):
    matter: Annotated[str, Field(min_length=1, max_length=60, description="事项实施编码")]
    applicant: ApplicantIn
    channel: Literal["online", "window"] = "online"
    form: dict[Annotated[str, Field(max_length=64)], Text | int | float] = {}


class StatusIn(BaseModel):
    status: Annotated[str, Field(min_length=1, max_length=20)]
    on: date
    note: Text = ""


class VisitIn(BaseModel):
    on: date
    place: Annotated[str, Field(max_length=100)] = ""


def _applicant(body: ApplicantIn) -> Applicant:
    if body.kind == "person":
        number = normalise_id_number(body.number)
        if not is_valid_id_number(number):
            raise ServiceError("applicant.number 不是有效的身份证号码", 422, "bad_applicant")
    else:
        number = body.number.strip().upper()
        if not is_valid_credit_code(number):
            raise ServiceError("applicant.number 不是有效的统一社会信用代码", 422, "bad_applicant")
    return Applicant(body.kind, number, body.name.strip())


@router.post("/cases", status_code=201, summary="登记本单位系统收到的办件（申请）")
def open_case(
    request: Request,
    body: CaseIn,
    authorization: Authorization = "",
    idempotency_key: IdempotencyKey = None,
):
    def work(session, system, call):
        case = service.open_docked(
            session,
            call.keys,
            system,
            body.matter,
            _applicant(body.applicant),
            body.channel,
            body.form,
            clock.today(request),
        )
        return 201, service.case_dict(session, call.keys, case, clock.today(request))

    return _write(request, authorization, idempotency_key, body, work)


@router.post("/cases/{case_no}/status", status_code=201, summary="办件状态变化（按状态转换表校验）")
def post_status(
    request: Request,
    case_no: str,
    body: StatusIn,
    authorization: Authorization = "",
    idempotency_key: IdempotencyKey = None,
):
    def work(session, system, call):
        case = service.docked_step(
            session, system, case_no, body.status, body.on, clock.today(request), body.note
        )
        return 201, service.case_dict(session, call.keys, case, clock.today(request))

    return _write(request, authorization, idempotency_key, body, work)


@router.post("/cases/{case_no}/visits", status_code=201, summary="申请人到现场一次")
def post_visit(
    request: Request,
    case_no: str,
    body: VisitIn,
    authorization: Authorization = "",
    idempotency_key: IdempotencyKey = None,
):
    def work(session, system, call):
        case = service.docked_case(session, system, case_no)
        service.cases.check_day(body.on, clock.today(request))
        service.cases.visit(session, case, body.on, body.place or system.name, system.name)
        return 201, service.case_dict(session, call.keys, case, clock.today(request))

    return _write(request, authorization, idempotency_key, body, work)


docked.add_subscriptions(router, authenticate, ERRORS, owner, "办件状态")
