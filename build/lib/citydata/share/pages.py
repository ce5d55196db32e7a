"""Pages: list applications (overdue ones flagged), apply for a class, decide, issue a
credential (its secret shown once), and the auditor's "who read this record?"."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from citydata.accounts.permissions import may_audit
from citydata.audit import service as audit
from citydata.bases.service import search as search_masters
from citydata.catalog.service import get_class
from citydata.share import permissions, service
from citydata.share.models import STATUS
from citydata.share.service import ShareError
from citydata.web.auth import check_csrf, signed_in
from citydata.web.params import RowId
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


@router.get("/share")
def share_list(request: Request, status: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        apps = [service.application_dict(a) for a in service.applications(session, user, status)]
        allowed, unit = permissions.usage_scope(user)
        usage = audit.usage(session, date.today() - timedelta(days=30), unit) if allowed else []
        return render(
            request,
            "share_list.html",
            user,
            apps=apps,
            status=status,
            statuses=STATUS,
            overdue=[a for a in apps if a["overdue"]],
            usage=usage[:50],
        )


@router.get("/share/apply")
def apply_form(request: Request, class_code: str):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        rc = get_class(session, class_code)
        if rc is None:
            raise HTTPException(404, f"信息资源「{class_code}」不存在")
        return render(request, "share_apply.html", user, rc=rc, error=None)


@router.post("/share/apply")
def apply_submit(
    request: Request,
    class_code: str = Form(...),
    fields: list[str] = Form(default=[]),
    unmasked: list[str] = Form(default=[]),
    purpose: str = Form(""),
    legal_basis: str = Form(""),
    system_name: str = Form(""),
    days: int = Form(365),
    daily_volume: int = Form(10000),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            app = service.apply(
                session,
                user,
                consumer_code=user.unit_code or "",
                class_code=class_code,
                fields=fields,
                unmasked=unmasked,
                purpose=purpose,
                legal_basis=legal_basis,
                system_name=system_name,
                valid_until=date.today() + timedelta(days=days),
                daily_volume=daily_volume,
            )
        except ShareError as exc:
            rc = get_class(session, class_code)
            return render(request, "share_apply.html", user, rc=rc, error=str(exc), status_code=400)
        return RedirectResponse(f"/share/{app.id}", status_code=303)


def _detail(request: Request, session, user, application_id: int, **extra):
    app = service.open_application(session, application_id, user)
    return render(
        request,
        "share_detail.html",
        user,
        app=service.application_dict(app),
        decisions=service.decisions(session, app.id),
        credentials=service.credentials(session, app.id),
        may_decide=permissions.may_decide(user, app) and app.status == "pending",
        may_issue=permissions.may_apply(user, app.consumer_code)
        and service.current_status(app) == "approved",
        **extra,
    )


@router.get("/share/{application_id}")
def share_detail(request: Request, application_id: RowId):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            return _detail(request, session, user, application_id)
        except ShareError as exc:
            raise HTTPException(exc.status, str(exc)) from exc


@router.post("/share/{application_id}/decision")
def share_decide(
    request: Request,
    application_id: RowId,
    action: str = Form(...),
    reason: str = Form(""),
    fields: list[str] = Form(default=[]),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            service.decide(session, user, application_id, action, reason, fields or None)
        except ShareError as exc:
            return _detail(request, session, user, application_id, error=str(exc))
    return RedirectResponse(f"/share/{application_id}", status_code=303)


@router.post("/share/{application_id}/credentials")
def share_issue(request: Request, application_id: RowId, csrf: str = Form("")):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            issued = service.issue_credential(session, user, application_id)
        except ShareError as exc:
            return _detail(request, session, user, application_id, error=str(exc))
        return _detail(request, session, user, application_id, secret=issued.secret)


@router.get("/audit")
def audit_page(request: Request, id_number: str = "", master: str = "", unit: str = ""):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        if not may_audit(user):
            raise HTTPException(403, "需要审计员或管理员权限")
        master_id = int(master) if master.isdigit() else None
        if id_number:
            found = search_masters(session, "population", id_number)
            master_id = found[0].id if found else -1
        entries = audit.search(session, master_id, unit or None, limit=200)
        report = audit.verify(session)
        return render(
            request,
            "audit.html",
            user,
            entries=[audit.entry_dict(e) for e in entries],
            report=report,
            id_number=id_number,
            master=master,
            unit=unit,
        )
