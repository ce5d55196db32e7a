"""Catalog API (/api/v1): read for everyone, write for administrators and the owning steward."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.catalog import service
from citydata.catalog.permissions import may_edit_class
from citydata.catalog.schema import CatalogProblems
from citydata.web.auth import db, require_user
from citydata.web.errors import API_ERRORS
from citydata.web.params import Offset

router = APIRouter(prefix="/api/v1", tags=["catalog 目录"], responses=API_ERRORS)


def _problems(exc: CatalogProblems) -> HTTPException:
    return HTTPException(
        422,
        {
            "message": str(exc),
            "problems": [p.__dict__ for p in exc.problems],
        },
    )


@router.get("/units")
def list_units(session: Session = Depends(db)) -> list[dict[str, Any]]:
    return [{**service.unit_dict(u), "classes": n} for u, n in service.list_units(session)]


@router.get("/catalog/classes")
def list_classes(
    unit: str | None = None,
    sharing: str | None = Query(
        None, description="unconditional | conditional | none, or 无条件共享 …"
    ),
    open: str | None = Query(None, description="open | conditional | closed"),
    base: str | None = Query(None, description="population | legal_person | … | none"),
    status: str | None = None,
    q: str | None = Query(None, description="text in code, name or summary"),
    offset: Offset = 0,
    limit: int = Query(50, ge=1, le=1000),
    session: Session = Depends(db),
) -> dict[str, Any]:
    total, rows = service.list_classes(
        session, service.ClassFilter(unit, sharing, open, base, status, q), offset, limit
    )
    return {
        "count": total,
        "offset": offset,
        "limit": limit,
        "results": [service.class_dict(rc, with_fields=False) for rc in rows],
    }


@router.get("/catalog/classes/{code:path}")
def show_class(code: str, session: Session = Depends(db)) -> dict[str, Any]:
    rc = service.get_class(session, code)
    if rc is None:
        raise HTTPException(404, f"信息资源「{code}」不存在")
    return service.class_dict(rc)


def _authorise(user: User, unit_code: str | None) -> None:
    if not may_edit_class(user, unit_code):
        raise HTTPException(403, "只有管理员或该单位的数据管理员可以修改此信息资源")


@router.post("/catalog/classes", status_code=201)
def create_class(
    entry: dict[str, Any] = Body(..., description="one class as in the catalog JSON, with fields"),
    user: User = Depends(require_user),
    session: Session = Depends(db),
) -> dict[str, Any]:
    _authorise(user, entry.get("provider_code"))
    try:
        return service.class_dict(service.save_class(session, entry, create=True))
    except CatalogProblems as exc:
        raise _problems(exc) from exc


@router.put("/catalog/classes/{code:path}")
def update_class(
    code: str,
    entry: dict[str, Any] = Body(...),
    user: User = Depends(require_user),
    session: Session = Depends(db),
) -> dict[str, Any]:
    current = service.get_class(session, code)
    if current is None:
        raise HTTPException(404, f"信息资源「{code}」不存在")
    _authorise(user, current.provider_code)
    _authorise(user, entry.get("provider_code", current.provider_code))
    try:
        return service.class_dict(
            service.save_class(session, {**entry, "code": code}, create=False)
        )
    except CatalogProblems as exc:
        raise _problems(exc) from exc


@router.delete("/catalog/classes/{code:path}")
def retire_class(
    code: str, user: User = Depends(require_user), session: Session = Depends(db)
) -> dict[str, Any]:
    """Retire (停用) a class: it stays in the catalog, with status 'retired', for the record."""
    current = service.get_class(session, code)
    if current is None:
        raise HTTPException(404, f"信息资源「{code}」不存在")
    _authorise(user, current.provider_code)
    return service.class_dict(service.retire_class(session, code))
