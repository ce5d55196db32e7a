"""Staff pages (``/services/staff``): a unit's queue (to accept; running ones with the overdue
first), one case with the steps the transition table allows from where it is, the bundle view,
visits, the hall's 一窗受理, and the discrepancy reports the unit's data caused."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from citydata.services import service
from citydata.services.cases import TRANSITIONS, QueueFilter
from citydata.services.pages import page, settle
from citydata.services.permissions import is_staff, may_handle
from citydata.services.service import STAFF_STEPS, ServiceError
from citydata.web import clock
from citydata.web.auth import check_csrf, signed_in
from citydata.web.client import client_ip
from citydata.web.params import RowId

router = APIRouter(include_in_schema=False)


def _unit(user, asked: str) -> str:
    """The unit whose queue is shown: one's own; an administrator picks any."""
    if user.role == "admin" and asked:
        return asked
    return user.unit_code or asked


@router.get("/services/staff")
def queue(
    request: Request,
    stage: str = "to_accept",
    matter: str = "",
    overdue: bool = False,
    unit: str = "",
    cursor: str = "",
):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        code = _unit(user, unit[:32])
        if not is_staff(user) or not code or not may_handle(user, code):
            return page(
                request,
                "services_error.html",
                user,
                403,
                error="只有各单位的工作人员可以查看办件队列",
            )
        f = QueueFilter(
            stage if stage in STAFF_STEPS or stage == "done" else "to_accept",
            matter[:60],
            "",
            overdue,
        )
        try:
            rows, next_cursor = service.queue_rows(
                session, request.app.state.keys, code, f, clock.today(request), cursor[:200]
            )
        except ServiceError as exc:
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        return page(
            request,
            "services_staff.html",
            user,
            rows=rows,
            next_cursor=next_cursor,
            f=f,
            unit=code,
            units=service.unit_names(session),
            follow_ups=service.follow_ups(session, code),
        )


@router.get("/services/staff/cases/{case_no}")
def case_page(request: Request, case_no: str, error: str = ""):
    keys = request.app.state.keys
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            case = service.staff_case(session, user, case_no)
        except ServiceError as exc:
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        steps = sorted(TRANSITIONS.allowed(case.status if case.status != "draft" else None))
        return page(
            request,
            "services_staff_case.html",
            user,
            case=service.case_dict(session, keys, case, clock.today(request), full=True),
            linked=service.bundle_view(session, keys, case, clock.today(request)),
            steps=[(s, TRANSITIONS.label(s)) for s in steps if s != "withdrawn"],
            uploads=service.uploads.uploads(session, case),
            error=error[:200],
        )


@router.post("/services/staff/cases/{case_no}/act")
def act(
    request: Request,
    case_no: str,
    status: str = Form(""),
    note: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            service.act(
                session,
                user,
                case_no,
                status[:20],
                clock.today(request),
                clock.today(request),
                note[:2000],
            )
        except ServiceError as exc:
            session.rollback()
            return page(request, "services_error.html", user, exc.status, error=str(exc))
    return RedirectResponse(f"/services/staff/cases/{case_no}", status_code=303)


@router.post("/services/staff/cases/{case_no}/visit")
def visit(request: Request, case_no: str, place: str = Form(""), csrf: str = Form("")):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            service.record_visit(session, user, case_no, clock.today(request), place[:100])
        except ServiceError as exc:
            session.rollback()
            return page(request, "services_error.html", user, exc.status, error=str(exc))
    return RedirectResponse(f"/services/staff/cases/{case_no}", status_code=303)


@router.get("/services/window")
def window_form(request: Request, matter: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        found = service.matters.published(session, matter[:60]) if matter else None
        return page(
            request, "services_window.html", user, matter=found, code=matter[:60], error=None
        )


@router.post("/services/window")
async def window(request: Request):
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    code = str(form.get("matter", ""))[:60]
    values = {k[2:]: str(v) for k, v in form.multi_items() if k.startswith("f:")}
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            case = service.take_at_window(
                session,
                request.app.state.keys,
                user,
                code,
                str(form.get("id_number", ""))[:40],
                str(form.get("name", ""))[:50],
                values,
                clock.today(request),
                client_ip=client_ip(request),
            )
        except ServiceError as exc:
            settle(session, exc)
            found = service.matters.published(session, code)
            return page(
                request,
                "services_window.html",
                user,
                exc.status,
                matter=found,
                code=code,
                error=str(exc),
            )
        number = case.case_no
    return RedirectResponse(f"/services/staff/cases/{number}", status_code=303)


@router.get("/services/staff/discrepancies")
def discrepancies(request: Request, unit: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        code = _unit(user, unit[:32])
        if not code or not may_handle(user, code):
            return page(
                request,
                "services_error.html",
                user,
                403,
                error="只有数据提供单位的工作人员可以查看",
            )
        return page(
            request,
            "services_discrepancies.html",
            user,
            reports=service.discrepancies(session, code),
            unit=code,
            units=service.unit_names(session),
        )


@router.post("/services/staff/discrepancies/{report_id}/close")
def close(request: Request, report_id: RowId, csrf: str = Form("")):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            service.close_discrepancy(session, user, report_id)
        except ServiceError as exc:
            session.rollback()
            return page(request, "services_error.html", user, exc.status, error=str(exc))
    return RedirectResponse("/services/staff/discrepancies", status_code=303)
