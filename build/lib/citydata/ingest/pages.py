"""Pages: batches (list, upload, detail) and the quality board."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse

from citydata.ingest import permissions, service
from citydata.ingest.api import (
    batch_scope,
    receive_in_background,
    shown_rejects,
    visible_batch,
)
from citydata.web.auth import check_csrf, current_user, signed_in
from citydata.web.params import RowId
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


@router.get("/batches")
def batches_page(request: Request, unit: str = "", page: int = Query(1, ge=1, le=1 << 20)):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        own = batch_scope(user)
        if own is not None:
            unit = own
        total, rows = service.list_batches(session, unit or None, None, (page - 1) * 50, 50)
        return render(request, "batches.html", user, rows=rows, total=total, page=page, unit=unit)


@router.post("/batches/upload")
def upload(
    request: Request,
    file: UploadFile = File(...),
    class_code: str = Form(...),
    mode: str = Form("append"),
    encoding: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
    batch_id = receive_in_background(request, user, file, class_code.strip(), mode, encoding)
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)


@router.get("/batches/{batch_id}")
def batch_page(request: Request, batch_id: RowId):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        batch, values = visible_batch(session, user, batch_id)
        rejects = shown_rejects(request, session, user, batch, values, 200)
        return render(
            request,
            "batch_detail.html",
            user,
            b=batch,
            rejects=rejects,
            values=values,
            may_download=permissions.may_download_rejects(user, batch),
            rule_names=service.RULE_NAMES,
        )


@router.get("/quality")
def quality_page(request: Request):
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        return render(request, "quality.html", user, scores=service.quality_scores(session))
