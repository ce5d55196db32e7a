"""Pages: look a master up and see where each value came from; decide uncertain matches."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from citydata.audit.http import record_read
from citydata.bases import permissions, service
from citydata.bases.api import decide, read_master, visible_reviews
from citydata.bases.models import Master
from citydata.bases.spec import SpecError, spec, specs
from citydata.web.auth import check_csrf, signed_in
from citydata.web.params import RowId
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


def _admin(request: Request, session):
    user = signed_in(request, session)
    if not permissions.may_read_masters(user):
        raise HTTPException(403, "需要管理员权限")
    return user


@router.get("/base/{base}")
def base_page(request: Request, base: str, key: str = "", name: str = ""):
    try:
        bspec = spec(base)
    except SpecError as exc:
        raise HTTPException(404, str(exc)) from exc
    with request.app.state.store.session() as session:
        user = _admin(request, session)
        found = service.search(session, base, key or None, name or None) if key or name else []
        if found:
            record_read(
                request,
                session,
                user,
                action="search_masters",
                class_code=bspec.class_code,
                query={"base": base, "key": key, "name": name},
                rows=len(found),
                subjects=[m.id for m in found],
            )
        pending = service.pending_reviews(session, base)
        glance = service.overview(session, bspec)
        return render(
            request,
            "base_search.html",
            user,
            bspec=bspec,
            glance=glance,
            completeness=_completeness_chart(glance),
            found=found,
            key=key,
            name_query=name,
            pending=pending,
            bases=specs(),
        )


def _completeness_chart(glance: dict) -> dict:
    """The base's picture: how complete each attribute of its published table is."""
    rows = glance["completeness"]
    return {
        "kind": "hbar",
        "x": [r["label"] for r in rows],
        "keys": [r["attribute"] for r in rows],
        "series": [{"name": "填充率", "data": [r["share"] for r in rows]}],
        "unit": "rate",
        "empty": "尚未发布",
    }


@router.get("/base/{base}/reviews")
def reviews_page(request: Request, base: str):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        items = visible_reviews(request, session, user, base)
        return render(request, "base_reviews.html", user, bspec=spec(base), items=items)


@router.post("/base/{base}/reviews/{review_id}")
def review_decision(
    request: Request,
    base: str,
    review_id: RowId,
    decision: str = Form(...),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        decide(session, user, review_id, decision)
    return RedirectResponse(f"/base/{base}/reviews", status_code=303)


@router.get("/base/{base}/{master_id}")
def master_page(request: Request, base: str, master_id: RowId, as_of: str = ""):
    with request.app.state.store.session() as session:
        user = _admin(request, session)
        try:
            moment = datetime.fromisoformat(as_of) if as_of else None
        except ValueError as exc:
            raise HTTPException(422, "as_of 应为 ISO 日期时间，如 2026-06-30T00:00:00") from exc
        data = read_master(request, session, user, base, master_id, moment)
        if moment is not None:
            master = session.get(Master, master_id)
            data["provenance"] = service.master_dict(session, master)["provenance"]
        return render(request, "base_master.html", user, bspec=spec(base), m=data, as_of=as_of)
