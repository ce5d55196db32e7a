"""Batches API: upload a file as a batch (owning steward or administrator), list, show, rejects."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.audit.http import record_read
from citydata.catalog.service import get_class
from citydata.ingest import permissions, service
from citydata.ingest.models import Batch
from citydata.ingest.readers import UnreadableFile, check_upload
from citydata.web.auth import db, require_user
from citydata.web.errors import API_ERRORS
from citydata.web.params import ID_MAX, Offset, RowId

router = APIRouter(prefix="/api/v1", tags=["ingest 归集"], responses=API_ERRORS)


def _authorise(request: Request, user: User, class_code: str) -> None:
    with request.app.state.store.session() as session:
        rc = get_class(session, class_code)
        if rc is None:
            raise HTTPException(404, f"信息资源「{class_code}」不存在")
        if not permissions.may_submit(user, rc.provider_code):
            raise HTTPException(403, "只有管理员或该单位的数据管理员可以提交此信息资源的数据")


def _spool(request: Request, upload: UploadFile, folder: str) -> Path:
    """The upload on disk, refused past the size limit (413) and checked before parsing."""
    name = Path(upload.filename or "").name.strip()
    if name in {"", ".", ".."}:
        name = "upload"
    path = Path(folder) / name
    limits = request.app.state.settings.limits
    written = 0
    with path.open("wb") as f:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > limits.upload_bytes:
                raise HTTPException(413, f"{name}: 文件超过上限 {limits.upload_bytes >> 20} MiB")
            f.write(chunk)
    try:
        check_upload(path, limits)
    except UnreadableFile as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return path


def _ingest(
    request: Request,
    user: User,
    path: Path,
    class_code: str,
    mode: str,
    encoding: str | None,
    **hooks: Any,
) -> service.Report:
    return service.ingest(
        request.app.state.store,
        path,
        class_code,
        None,
        mode,
        encoding or None,
        user.username,
        path.name,
        **hooks,
    )


def receive(
    request: Request,
    user: User,
    upload: UploadFile,
    class_code: str,
    mode: str,
    encoding: str | None,
) -> service.Report:
    """The API's upload: authorise, spool the upload, ingest it, answer with the report."""
    _authorise(request, user, class_code)
    with tempfile.TemporaryDirectory() as folder:
        path = _spool(request, upload, folder)
        try:
            return _ingest(request, user, path, class_code, mode, encoding)
        except service.IngestError as exc:
            raise HTTPException(422, str(exc)) from exc


def receive_in_background(
    request: Request,
    user: User,
    upload: UploadFile,
    class_code: str,
    mode: str,
    encoding: str | None,
) -> int:
    """The upload page's: the file is ingested on a background thread and the batch id comes
    back as soon as the batch exists, so the page can show its progress while it runs."""
    _authorise(request, user, class_code)
    folder = tempfile.mkdtemp(prefix="citydata-upload-")
    try:
        path = _spool(request, upload, folder)
    except HTTPException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        try:
            started["report"] = _ingest(
                request,
                user,
                path,
                class_code,
                mode,
                encoding,
                on_batch=lambda batch_id: (started.setdefault("batch_id", batch_id), ready.set()),
            )
        except Exception as exc:  # reported to the waiting request below
            started["error"] = exc
        finally:
            ready.set()
            shutil.rmtree(folder, ignore_errors=True)

    threading.Thread(target=run, name=f"ingest-{path.name}", daemon=True).start()
    ready.wait()
    if "batch_id" in started:
        return started["batch_id"]
    error = started.get("error")
    if isinstance(error, service.IngestError):
        raise HTTPException(422, str(error))
    if "report" in started:  # a duplicate file: no new batch, point at the earlier one
        return started["report"].batch_id
    raise HTTPException(500, f"处理失败：{error!r}")


@router.post("/batches", status_code=201)
def create_batch(
    request: Request,
    file: UploadFile = File(...),
    class_code: str = Form(..., alias="class"),
    mode: str = Form("append"),
    encoding: str | None = Form(None),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    report = receive(request, user, file, class_code, mode, encoding)
    if report.status == "failed":
        raise HTTPException(422, report.as_dict())
    return report.as_dict()


def batch_scope(user: User) -> str | None:
    """The unit whose batches ``user`` may list (None: every unit's); 403 if none."""
    allowed, unit = permissions.batch_scope(user)
    if not allowed:
        raise HTTPException(403, "批次属于提交单位：只有单位用户、审计员和管理员可以查看")
    return unit


@router.get("/batches")
def list_batches(
    unit: str | None = None,
    class_code: str | None = None,
    offset: Offset = 0,
    limit: int = Query(50, ge=1, le=500),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    """Batches of the caller's own unit (auditors and administrators: every unit's)."""
    own = batch_scope(user)
    if own is not None and unit not in {None, "", own}:
        raise HTTPException(403, "只能查看本单位的批次")
    total, rows = service.list_batches(session, own or unit, class_code, offset, limit)
    return {"count": total, "results": [service.batch_dict(b) for b in rows]}


def visible_batch(session: Session, user: User, batch_id: int) -> tuple[Batch, bool]:
    """(the batch, whether its rejected values may be shown); 404/403 otherwise."""
    batch = session.get(Batch, batch_id) if 0 < batch_id <= ID_MAX else None
    if batch is None:
        raise HTTPException(404, f"批次 {batch_id} 不存在")
    if not permissions.may_see_batch(user, batch):
        raise HTTPException(403, "批次属于提交单位：只有该单位用户、审计员和管理员可以查看")
    return batch, permissions.may_see_values(user, batch)


def shown_rejects(
    request: Request, session: Session, user: User, batch: Batch, values: bool, limit: int
) -> list[dict[str, Any]]:
    """The batch's first rejects; with values (masked, and the read audited) if allowed."""
    rows = service.rejects_shown(session, batch, limit)
    if not values:
        return [{**r, "value": None} for r in rows]
    if rows:
        record_read(
            request,
            session,
            user,
            action="read_rejects",
            class_code=batch.class_code,
            query={"batch": batch.id},
            fields=sorted({r["field"] for r in rows}),
            rows=len(rows),
        )
    return rows


@router.get("/batches/{batch_id}")
def show_batch(
    request: Request,
    batch_id: RowId,
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    """A batch's figures, and its first rejected checks (values masked; only for those who may
    read the class's data)."""
    batch, values = visible_batch(session, user, batch_id)
    return {
        **service.batch_dict(batch),
        "rejections": shown_rejects(request, session, user, batch, values, 100),
    }


@router.get("/batches/{batch_id}/rejects.{fmt}")
def download_rejects(
    request: Request,
    fmt: str,
    batch_id: RowId,
    user: User = Depends(require_user),
    session: Session = Depends(db),
) -> Response:
    """Rejected rows as the department sent them, to fix and send again: its steward and
    administrators only, and the read is audited."""
    batch = session.get(Batch, batch_id)
    if batch is None or fmt not in {"csv", "xlsx"}:
        raise HTTPException(404, "没有这个批次或格式")
    if not permissions.may_download_rejects(user, batch):
        raise HTTPException(403, "只有该单位的数据管理员或管理员可以下载拒收明细")
    record_read(
        request,
        session,
        user,
        action="export_rejects",
        class_code=batch.class_code,
        query={"batch": batch.id, "format": fmt},
        rows=batch.rows_rejected,
    )
    media = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return Response(
        service.rejects_export(session, batch_id, fmt),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-rejects.{fmt}"'},
    )
