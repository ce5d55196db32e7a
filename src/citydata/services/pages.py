"""Citizens' pages (``/services``): find a matter by name or life event, see its materials with
免提交 marked, register with a verified identity, apply with the prefilled form (a bundle with
one form), upload, follow the case and rate it. The staff's pages are ``services.staff_pages``."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from citydata.accounts.pages import sign_in
from citydata.services import service
from citydata.services.cases import CHANNELS, STAGES, TRANSITIONS
from citydata.services.matters import APPLICANTS, FORMS, KINDS, LEVELS, NEEDS
from citydata.services.matters import CHANNELS as WAYS
from citydata.services.models import Case
from citydata.services.service import ServiceError, keeps_writes
from citydata.services.uploads import MAX_BYTES, DiskStorage
from citydata.web import clock
from citydata.web.auth import check_csrf, cookie_user, signed_in
from citydata.web.client import client_ip
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)
TERMS = {
    "kinds": KINDS,
    "levels": LEVELS,
    "ways": WAYS,
    "needs": NEEDS,
    "forms": FORMS,
    "applicants": APPLICANTS,
    "channels": CHANNELS,
    "stages": STAGES,
}


def storage(request: Request) -> DiskStorage:
    return DiskStorage(request.app.state.settings.data_dir / "uploads")


def settle(session: Session, exc: ServiceError) -> None:
    """A refused step leaves nothing half-done — but a failed identity check still counts."""
    if keeps_writes(exc):
        session.commit()
    else:
        session.rollback()


def page(request: Request, name: str, user, status_code: int = 200, **context):
    return render(request, name, user, status_code=status_code, terms=TERMS, **context)


# ---------------------------------------------------------------- finding a matter


@router.get("/services")
def home(request: Request, q: str = "", event: str = ""):
    with request.app.state.store.session() as session:
        user = cookie_user(request, session)
        found = service.matters.find(session, text=q[:50], life_event=event[:20], limit=100)
        events = sorted(
            {e for m in service.matters.find(session, limit=5000) for e in m.life_events}
        )
        mine = service.cases.of_applicant(session, request.app.state.keys, user, 20) if user else []
        verified = service.identity.identity_of(session, user) is not None
        return page(
            request,
            "services_home.html",
            user,
            matters=found,
            bundles=service.bundles(session),
            events=events,
            q=q,
            event=event,
            mine=[
                service.case_dict(session, request.app.state.keys, c, clock.today(request))
                for c in mine
            ],
            verified=verified,
            units=service.unit_names(session),
            counts=service.counts(session),
        )


@router.get("/services/matters/{impl_code}")
def matter_page(request: Request, impl_code: str):
    with request.app.state.store.session() as session:
        user = cookie_user(request, session)
        matter = service.matters.published(session, impl_code)
        if matter is None:
            return page(
                request,
                "services_error.html",
                user,
                404,
                error=f"事项「{impl_code}」不存在或未发布",
            )
        return page(
            request,
            "services_matter.html",
            user,
            matter=matter,
            unit=service.unit_names(session).get(matter.unit_code, matter.unit_code),
            exempt={m.name for m in matter.materials if service.matters.exempt(m)},
            no_upload=service.matters.no_upload_needed(matter),
        )


@router.get("/services/bundles/{code}")
def bundle_page(request: Request, code: str):
    with request.app.state.store.session() as session:
        user = cookie_user(request, session)
        bundle = next((b for b in service.bundles(session) if b.code == code), None)
        if bundle is None:
            return page(request, "services_error.html", user, 404, error=f"一件事「{code}」不存在")
        matters = service.bundle_matters(session, bundle)
        return page(
            request,
            "services_bundle.html",
            user,
            bundle=bundle,
            matters=matters,
            units=service.unit_names(session),
            no_upload=all(service.matters.no_upload_needed(m) for m in matters),
        )


# ---------------------------------------------------------------- 实名认证


@router.get("/services/register")
def register_form(request: Request):
    return page(request, "services_register.html", None, error=None, values={})


@router.post("/services/register")
def register(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    name: str = Form(""),
    id_number: str = Form(""),
    phone: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    address = client_ip(request)
    values = {"username": username, "name": name}
    with request.app.state.store.session() as session:
        try:
            user = service.identity.register_person(
                session,
                request.app.state.keys,
                username=username[:64],
                password=password[:200],
                name=name[:50],
                id_number=id_number[:40],
                phone=phone[:40],
                client_ip=address,
            )
        except ServiceError as exc:
            settle(session, exc)
            return page(
                request, "services_register.html", None, exc.status, error=str(exc), values=values
            )
        sign_in(request, session, user, address)
    return RedirectResponse("/services", status_code=303)


@router.get("/services/company")
def company_form(request: Request):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        found = service.identity.identity_of(session, user, "company")
        return page(request, "services_company.html", user, company=found, error=None)


@router.post("/services/company")
def company(
    request: Request,
    credit_code: str = Form(""),
    company_name: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            service.identity.add_company(
                session,
                request.app.state.keys,
                user,
                credit_code=credit_code[:40],
                company_name=company_name[:100],
                client_ip=client_ip(request),
            )
        except ServiceError as exc:
            settle(session, exc)
            return page(
                request, "services_company.html", user, exc.status, company=None, error=str(exc)
            )
    return RedirectResponse("/services", status_code=303)


# ---------------------------------------------------------------- applying


@router.post("/services/matters/{impl_code}/apply")
def apply(request: Request, impl_code: str, as_company: str = Form(""), csrf: str = Form("")):
    check_csrf(request, csrf)
    keys = request.app.state.keys
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            matter = service.cases.published_matter(session, impl_code)
            kind = "company" if matter.applicant == "company" or as_company else "person"
            applicant = service.identity.applicant(session, keys, user, kind)
            case = service.cases.start(
                session, keys, user, applicant, impl_code, clock.today(request), client_ip(request)
            )
        except ServiceError as exc:
            settle(session, exc)
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        number = case.case_no
    return RedirectResponse(f"/services/cases/{number}/edit", status_code=303)


@router.post("/services/bundles/{code}/apply")
def apply_bundle(request: Request, code: str, csrf: str = Form("")):
    check_csrf(request, csrf)
    keys = request.app.state.keys
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            applicant = service.identity.applicant(session, keys, user, "person")
            found = service.cases.start_bundle(
                session, keys, user, applicant, code, clock.today(request), client_ip(request)
            )
        except ServiceError as exc:
            settle(session, exc)
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        number = found[0].case_no
    return RedirectResponse(f"/services/cases/{number}/edit", status_code=303)


def _drafts(session: Session, user, case_no: str) -> list[Case]:
    """The case, or all of its bundle's cases (one form answers them all)."""
    case = service.own_case(session, user, case_no)
    return service.cases.linked(session, case.bundle_case) if case.bundle_case else [case]


def _edit_page(
    request: Request, session: Session, user, found: list[Case], error: str = "", status: int = 200
):
    matters = [service.cases.matter_of(session, c) for c in found]
    fields: dict[str, dict] = {}
    for m in matters:
        for f in m.form:
            fields.setdefault(f["name"], f)
    values: dict[str, str] = {}
    prefilled: dict[str, dict] = {}
    for c in found:
        values |= c.form
        prefilled |= c.prefilled
    return page(
        request,
        "services_apply.html",
        user,
        status,
        cases=list(zip(found, matters, strict=True)),
        first=found[0],
        fields=list(fields.values()),
        values=values,
        prefilled=prefilled,
        uploads={c.case_no: service.uploads.uploads(session, c) for c in found},
        missing={c.case_no: service.cases.missing_materials(session, c) for c in found},
        max_mb=MAX_BYTES >> 20,
        error=error,
    )


@router.get("/services/cases/{case_no}/edit")
def edit(request: Request, case_no: str):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            found = _drafts(session, user, case_no)
        except ServiceError as exc:
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        if any(c.status != "draft" for c in found):
            return RedirectResponse(f"/services/cases/{case_no}", status_code=303)
        return _edit_page(request, session, user, found)


@router.post("/services/cases/{case_no}/edit")
async def save(request: Request, case_no: str):
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    action = str(form.get("action", "save"))
    values = {k[2:]: str(v) for k, v in form.multi_items() if k.startswith("f:")}
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            found = _drafts(session, user, case_no)
            service.cases.save(session, found, values)
            if action == "submit":
                service.cases.submit(session, found, user.username, clock.today(request))
        except ServiceError as exc:
            session.rollback()
            user = signed_in(request, session)
            try:
                found = _drafts(session, user, case_no)
            except ServiceError:
                return page(request, "services_error.html", user, exc.status, error=str(exc))
            return _edit_page(request, session, user, found, str(exc), exc.status)
    target = (
        f"/services/cases/{case_no}" if action == "submit" else f"/services/cases/{case_no}/edit"
    )
    return RedirectResponse(target, status_code=303)


@router.post("/services/cases/{case_no}/upload")
def upload(
    request: Request,
    case_no: str,
    material: str = Form(""),
    file: UploadFile = File(...),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            case = service.own_case(session, user, case_no)
            chunks = iter(lambda: file.file.read(1 << 16), b"")
            service.uploads.attach(
                session, storage(request), case, material, file.filename or "", chunks
            )
        except ServiceError as exc:
            session.rollback()
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        first = case.bundle_case or case.case_no
    return RedirectResponse(f"/services/cases/{first}/edit", status_code=303)


# ---------------------------------------------------------------- following, rating


@router.get("/services/cases/{case_no}")
def follow(request: Request, case_no: str):
    keys = request.app.state.keys
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            case = service.own_case(session, user, case_no)
        except ServiceError as exc:
            return page(request, "services_error.html", user, exc.status, error=str(exc))
        return page(
            request,
            "services_case.html",
            user,
            case=service.case_dict(session, keys, case, clock.today(request), full=True),
            linked=service.bundle_view(session, keys, case, clock.today(request)),
            labels=TRANSITIONS.labels,
        )


@router.post("/services/cases/{case_no}/rate")
def rate(
    request: Request,
    case_no: str,
    score: int = Form(0),
    reason: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        try:
            case = service.own_case(session, user, case_no)
            service.cases.rate(session, case, score, reason[:1000], clock.today(request))
        except ServiceError as exc:
            session.rollback()
            return page(request, "services_error.html", user, exc.status, error=str(exc))
    return RedirectResponse(f"/services/cases/{case_no}", status_code=303)


@router.get("/services/metrics")
def metrics_page(request: Request, by: str = "unit", month: str = ""):
    with request.app.state.store.session() as session:
        user = cookie_user(request, session)
        if by not in service.metrics.DIMENSIONS:
            by = "unit"
        rows = service.metrics.report(session, by, month[:7])
        overall = service.metrics.report(session, "all", month[:7])
        return page(
            request,
            "services_metrics.html",
            user,
            rows=rows,
            overall=overall[0] if overall else None,
            by=by,
            month=month[:7],
            dimensions=service.metrics.DIMENSIONS,
            rates=service.metrics.RATES,
            target=service.metrics.TARGET,
        )
