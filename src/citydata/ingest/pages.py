"""Pages: batches (list, upload, detail) and the quality board."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse

from citydata.ingest import service
from citydata.ingest.api import receive_in_background
from citydata.ingest.models import Batch
from citydata.web.auth import check_csrf, current_user, signed_in
from citydata.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/batches")
def batches_page(request: Request, unit: str = "", page: int = 1):  # noqa: ANN201
    page = max(page, 1)
    with request.app.state.store.session() as session:
        user = current_user(request, session)
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
):  # noqa: ANN201
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
    batch_id = receive_in_background(request, user, file, class_code.strip(), mode, encoding)
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)


@router.get("/batches/{batch_id}")
def batch_page(batch_id: int, request: Request):  # noqa: ANN201
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise HTTPException(404, f"批次 {batch_id} 不存在")
        rejects = service.rejects_frame(session, batch_id).head(200).to_dicts()
        return render(
            request,
            "batch_detail.html",
            user,
            b=batch,
            rejects=rejects,
            rule_names=service.RULE_NAMES,
        )


@router.get("/quality")
def quality_page(request: Request):  # noqa: ANN201
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        return render(request, "quality.html", user, scores=service.quality_scores(session))
