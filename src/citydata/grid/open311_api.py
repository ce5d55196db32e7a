"""``/open311/v2``: GeoReport v2 in JSON and XML (the format is the path's suffix, as the spec
has it). Reading is public — a request shows no reporter — and posting needs an ``api_key``.
Errors are the spec's list of ``{code, description}`` with the HTTP status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.grid import events, open311, photos, sla
from citydata.grid.events import GridError, Report
from citydata.grid.models import Event
from citydata.grid.service import unit_names
from citydata.web import clock
from citydata.web.client import client_ip
from citydata.web.errors import documented

# The spec answers in the format the path names, errors included: both media types, always.
_ERROR_LIST = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["code", "description"],
    },
}
_XML = {"schema": {"type": "string"}}


def _both(description: str, json_schema: dict | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": json_schema or {}}, "text/xml": _XML},
    }


router = APIRouter(
    prefix="/open311/v2",
    tags=["open311 GeoReport v2"],
    responses={
        200: _both("成功"),
        400: _both("请求有误（Open311 错误列表）", _ERROR_LIST),
        403: _both("api_key 无效", _ERROR_LIST),
        404: _both("不存在（Open311 错误列表）", _ERROR_LIST),
        413: _both("照片过大", _ERROR_LIST),
        415: _both("照片不是 JPEG 或 PNG", _ERROR_LIST),
        429: _both("请求过于频繁", _ERROR_LIST),
        **documented(422),
    },
)
Format = Literal["json", "xml"]
Jurisdiction = Annotated[str, Query(max_length=100)]
SPAN = timedelta(days=90)
LIST_MAX = 1000


def _answer(fmt: str, root: str, content: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(root, content), status, media_type="text/xml")
    return Response(orjson.dumps(content), status, media_type="application/json")


def _error(fmt: str, exc: GridError) -> Response:
    return _answer(fmt, "errors", [{"code": exc.status, "description": str(exc)}], exc.status)


def _jurisdiction(value: str) -> None:
    if value and value != open311.JURISDICTION:
        raise GridError(f"jurisdiction_id 须为 {open311.JURISDICTION}", 404, "unknown_jurisdiction")


@router.get("/discovery.{fmt}", summary="Open311 发现文档")
def discovery(request: Request, fmt: Format):
    base = str(request.base_url).rstrip("/") + "/open311/v2/"
    content = {
        "changeset": "2026-12-01T00:00:00Z",
        "contact": "长沙市城市管理和综合执法局 数字城管监督指挥中心",
        "key_service": "向长沙市数据资源管理局申请 api_key",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": "2026-12-01T00:00:00Z",
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }
    return _answer(fmt, "discovery", content)


@router.get("/services.{fmt}", summary="可上报的问题类别（GB/T 30428 部件和事件小类）")
def list_services(fmt: Format, jurisdiction_id: Jurisdiction = ""):
    try:
        _jurisdiction(jurisdiction_id)
    except GridError as exc:
        return _error(fmt, exc)
    return _answer(fmt, "services", open311.services())


@router.get("/services/{service_code}.{fmt}", summary="类别的附加属性")
def service_definition(
    service_code: Annotated[str, Path(max_length=20)],
    fmt: Format,
    jurisdiction_id: Jurisdiction = "",
):
    try:
        _jurisdiction(jurisdiction_id)
        return _answer(fmt, "service_definition", open311.definition(service_code))
    except GridError as exc:
        return _error(fmt, exc)


def _requests(session: Session, events_found: list[Event]) -> list[dict]:
    """The events as Open311 requests; a merged report speaks for the event it joined."""
    units = unit_names(session)
    merged_ids = {e.duplicate_of for e in events_found if e.status == "voided" and e.duplicate_of}
    merged = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(merged_ids)))}
    return [
        open311.request_dict(
            e,
            units.get((merged.get(e.duplicate_of or 0) or e).unit_code or "", ""),
            merged.get(e.duplicate_of or 0) if e.status == "voided" else None,
        )
        for e in events_found
    ]


@router.get("/requests.{fmt}", summary="查询上报（按编号、类别、时间、状态）")
def list_requests(
    request: Request,
    fmt: Format,
    service_request_id: Annotated[str, Query(max_length=2000)] = "",
    service_code: Annotated[str, Query(max_length=500)] = "",
    start_date: Annotated[str, Query(max_length=40)] = "",
    end_date: Annotated[str, Query(max_length=40)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    jurisdiction_id: Jurisdiction = "",
):
    try:
        _jurisdiction(jurisdiction_id)
        query = select(Event)
        if service_request_id:  # overrides every other parameter, as the spec says
            numbers = [n.strip() for n in service_request_id.split(",") if n.strip()][:LIST_MAX]
            query = query.where(Event.event_no.in_(numbers))
        else:
            now = clock.now(request)
            end = open311.parse_w3(end_date, "end_date") if end_date else now
            start = open311.parse_w3(start_date, "start_date") if start_date else end - SPAN
            if end - start > SPAN or end < start:
                raise GridError("start_date 与 end_date 之间至多 90 天", 400, "bad_date")
            query = query.where(Event.reported_at >= start, Event.reported_at <= end)
            if service_code:
                query = query.where(Event.category.in_(service_code.split(",")))
            if status:
                wanted = set(status.split(","))
                if not wanted <= {"open", "closed"}:
                    raise GridError("status 须为 open 或 closed", 400, "bad_status")
                if wanted == {"open"}:
                    query = query.where(Event.status.not_in(open311.CLOSED))
                elif wanted == {"closed"}:
                    query = query.where(Event.status.in_(open311.CLOSED))
        with request.app.state.store.session() as session:
            found = list(session.scalars(query.order_by(Event.id.desc()).limit(LIST_MAX)))
            answers = _requests(session, found)
        return _answer(fmt, "service_requests", answers)
    except GridError as exc:
        return _error(fmt, exc)


@router.get("/requests/{service_request_id}.{fmt}", summary="一条上报")
def get_request(
    request: Request,
    service_request_id: Annotated[str, Path(max_length=40)],
    fmt: Format,
    jurisdiction_id: Jurisdiction = "",
):
    try:
        _jurisdiction(jurisdiction_id)
        with request.app.state.store.session() as session:
            found = session.scalar(select(Event).where(Event.event_no == service_request_id))
            if found is None:
                raise GridError(
                    f"service_request_id「{service_request_id}」不存在", 404, "not_found"
                )
            answers = _requests(session, [found])
        return _answer(fmt, "service_requests", answers)
    except GridError as exc:
        return _error(fmt, exc)


@router.get("/tokens/{token}.{fmt}", summary="由 token 查上报编号")
def get_token(
    request: Request,
    token: Annotated[str, Path(max_length=40)],
    fmt: Format,
    jurisdiction_id: Jurisdiction = "",
):
    try:
        _jurisdiction(jurisdiction_id)
        with request.app.state.store.session() as session:
            found = session.scalar(select(Event.event_no).where(Event.token == token))
        if found is None:
            raise GridError(f"token「{token}」不存在", 404, "not_found")
        return _answer(fmt, "service_requests", [{"service_request_id": found, "token": token}])
    except GridError as exc:
        return _error(fmt, exc)


def _number(form: Any, name: str) -> float | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GridError(f"{name}「{value}」不是数值", 400, "bad_location") from None


def _text(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name) or ""
    if not isinstance(value, str):
        raise GridError(f"{name} 须为文本", 400, "bad_field")
    if len(value) > limit:
        raise GridError(f"{name} 最多 {limit} 个字符", 400, "too_long")
    return value


@router.post(
    "/requests.{fmt}",
    summary="上报问题（须 api_key；表单编码，照片可作为 media 文件附上）",
    status_code=201,
    responses={201: _both("已收到")},
)
async def post_request(request: Request, fmt: Format):
    try:
        form = await request.form(max_files=1, max_fields=100)
    except Exception:  # a body that is not a form at all
        return _error(
            fmt,
            GridError(
                "请求体须为 application/x-www-form-urlencoded 或 multipart/form-data",
                400,
                "bad_body",
            ),
        )
    try:
        _jurisdiction(_text(form, "jurisdiction_id", 100))
        code = _text(form, "service_code", 20)
        if not code:
            raise GridError("service_code 必填", 400, "missing_service_code")
        if sla.category(code) is None:
            raise GridError(f"service_code「{code}」不存在", 404, "unknown_service")
        lat, lon = _number(form, "lat"), _number(form, "long")
        if lat is None or lon is None:
            raise GridError(
                "须提供 lat 和 long（本市按单元网格定位，不接受只有地址）", 400, "missing_location"
            )
        contact = " ".join(v for v in (_text(form, "email", 200), _text(form, "phone", 40)) if v)
        name = f"{_text(form, 'last_name', 50)}{_text(form, 'first_name', 50)}"
        component = _text(form, f"attribute[{open311.COMPONENT_ATTRIBUTE}]", 16) or None
        media = form.get("media")
        data_dir = request.app.state.settings.data_dir
        ip = client_ip(request)
        now = clock.now(request)

        def work() -> Event:
            with request.app.state.store.session() as session:
                client = open311.authenticate(session, _text(form, "api_key", 200), ip)
                photo = None
                if media is not None and not isinstance(media, str):
                    photo = photos.keep(photos.storage(data_dir), iter([media.file.read()]))
                given = Report(
                    description=_text(form, "description"),
                    longitude=lon,
                    latitude=lat,
                    category=code,
                    source="citizen",
                    channel="open311",
                    address=_text(form, "address_string", 200),
                    component_id=component,
                    reporter_name=name,
                    reporter_contact=contact,
                    client_id=client.id,
                    photo_key=photo.key if photo else None,
                    photo_sha256=photo.sha256 if photo else None,
                )
                try:
                    return events.report(
                        session, request.app.state.keys, given, f"Open311：{client.name}", now
                    )
                except GridError:
                    if photo:
                        photos.storage(data_dir).delete(photo.key)
                    raise

        event = await run_in_threadpool(work)
    except GridError as exc:
        return _error(fmt, exc)
    notice = "已收到，监督指挥中心将核实立案"
    if event.duplicate_of:
        notice = "附近已有同类事件在处理，核实后将合并，处理结果会一并告知"
    answer = [{"service_request_id": event.event_no, "service_notice": notice, "account_id": None}]
    return _answer(fmt, "service_requests", answer, 201)
