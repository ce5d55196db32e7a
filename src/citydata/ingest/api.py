"""Batches API: upload a file as a batch (owning steward or administrator), list, show, rejects."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.service import can_write_unit
from citydata.catalog.service import get_class
from citydata.ingest import service
from citydata.ingest.models import Batch
from citydata.web.auth import db, require_user

router = APIRouter(prefix="/api/v1", tags=["ingest 归集"])


def _authorise(request: Request, user: User, class_code: str) -> None:
    with request.app.state.store.session() as session:
        rc = get_class(session, class_code)
        if rc is None:
            raise HTTPException(404, f"信息资源「{class_code}」不存在")
        if not can_write_unit(user, rc.provider_code):
            raise HTTPException(403, "只有管理员或该单位的数据管理员可以提交此信息资源的数据")


def _spool(upload: UploadFile, folder: str) -> Path:
    path = Path(folder) / Path(upload.filename or "upload").name
    with path.open("wb") as f:
        while chunk := upload.file.read(1 << 20):
            f.write(chunk)
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
        path = _spool(upload, folder)
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
    path = _spool(upload, folder)
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
        except Exception as exc:  # noqa: BLE001 - reported to the waiting request below
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


@router.get("/batches")
def list_batches(
    unit: str | None = None,
    class_code: str | None = None,
    offset: int = 0,
    limit: int = 50,
    session: Session = Depends(db),
) -> dict[str, Any]:
    total, rows = service.list_batches(session, unit, class_code, offset, min(limit, 500))
    return {"count": total, "results": [service.batch_dict(b) for b in rows]}


@router.get("/batches/{batch_id}")
def show_batch(batch_id: int, session: Session = Depends(db)) -> dict[str, Any]:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise HTTPException(404, f"批次 {batch_id} 不存在")
    return {
        **service.batch_dict(batch),
        "rejections": service.rejects_frame(session, batch_id).head(100).to_dicts(),
    }


@router.get("/batches/{batch_id}/rejects.{fmt}")
def download_rejects(
    batch_id: int, fmt: str, user: User = Depends(require_user), session: Session = Depends(db)
) -> Response:
    """Rejected rows hold the department's raw values: its steward, administrators and auditors only."""
    batch = session.get(Batch, batch_id)
    if batch is None or fmt not in {"csv", "xlsx"}:
        raise HTTPException(404, "没有这个批次或格式")
    if not (can_write_unit(user, batch.unit_code) or user.role == "auditor"):
        raise HTTPException(403, "只有该单位的数据管理员、管理员或审计员可以下载拒收明细")
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
