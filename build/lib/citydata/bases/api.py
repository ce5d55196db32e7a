"""Base databases API (/api/v1/base): master records with provenance and as-of history, search,
and the review queue. Administrators read masters (sharing to departments is the sharing
service's); a review is decided by an administrator or the steward of the row's unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.audit.http import record_read
from citydata.bases import permissions, service
from citydata.bases.models import Master
from citydata.bases.spec import SpecError, spec
from citydata.catalog.service import get_class
from citydata.web.auth import db, require_admin, require_user
from citydata.web.errors import API_ERRORS
from citydata.web.params import ID_MAX, Offset, RowId

router = APIRouter(prefix="/api/v1", tags=["bases 基础库"], responses=API_ERRORS)


def _base(base: str) -> str:
    try:
        return spec(base).code
    except SpecError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/base/{base}/records")
def search(
    request: Request,
    base: str,
    key: str | None = None,
    name: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    session: Session = Depends(db),
    admin: User = Depends(require_admin),
) -> dict[str, Any]:
    code = _base(base)
    found = service.search(session, code, key, name, limit)
    record_read(
        request,
        session,
        admin,
        action="search_masters",
        class_code=spec(code).class_code,
        query={"base": code, "key": key, "name": name},
        rows=len(found),
        subjects=[m.id for m in found],
    )
    return {
        "count": len(found),
        "results": [
            {"id": m.id, "key": m.key, "name": m.name, "version": m.version, "record": m.record}
            for m in found
        ],
    }


def read_master(
    request: Request, session: Session, user: User, base: str, master_id: int, as_of=None
) -> dict[str, Any]:
    """A master record for an administrator, the read audited (API and page alike)."""
    code = _base(base)
    if not permissions.may_read_masters(user):
        raise HTTPException(403, "需要管理员权限")
    master = session.get(Master, master_id) if 0 < master_id <= ID_MAX else None
    if master is None or master.base != code:
        raise HTTPException(404, f"{base} 中没有主记录 {master_id}")
    record_read(
        request,
        session,
        user,
        action="read_master",
        class_code=spec(code).class_code,
        query={"base": code, "master": master_id, "as_of": str(as_of) if as_of else None},
        rows=1,
        subjects=[master.id],
    )
    return service.master_dict(session, master, as_of)


@router.get("/base/{base}/records/{master_id}")
def show(
    request: Request,
    base: str,
    master_id: RowId,
    as_of: datetime | None = None,
    session: Session = Depends(db),
    admin: User = Depends(require_admin),
) -> dict[str, Any]:
    return read_master(request, session, admin, base, master_id, as_of)


def visible_reviews(
    request: Request, session: Session, user: User, base: str, status: str = "pending"
) -> list[dict[str, Any]]:
    """Review pairs show both records in clear: only to the stewards whose rows they are, and
    administrators; the read is audited."""
    code = _base(base)
    allowed, unit = permissions.review_scope(user)
    if not allowed:
        raise HTTPException(403, "只有数据所属单位的数据管理员和管理员可以查看待确认的匹配")
    items = service.reviews(session, code, status, unit=unit)
    if items:
        record_read(
            request,
            session,
            user,
            action="read_reviews",
            class_code=spec(code).class_code,
            query={"base": code, "status": status},
            rows=len(items),
            subjects=sorted({i["master_id"] for i in items if i.get("master_id")}),
        )
    return items


@router.get("/base/{base}/reviews")
def list_reviews(
    request: Request,
    base: str,
    status: str = "pending",
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> list[dict[str, Any]]:
    return visible_reviews(request, session, user, base, status)


def decide(session: Session, user: User, review_id: int, decision: str) -> dict[str, Any]:
    """Shared by the API and the review page."""
    from citydata.bases.models import MatchReview

    if decision not in {"confirm", "reject"}:
        raise HTTPException(400, "decision 必须是 confirm 或 reject")
    review = session.get(MatchReview, review_id)
    if review is None:
        raise HTTPException(404, f"没有待确认的匹配 {review_id}")
    rc = get_class(session, review.class_code)
    if not permissions.may_decide_review(user, rc.provider_code if rc else None):
        raise HTTPException(403, "只有管理员或该数据所属单位的数据管理员可以确认匹配")
    try:
        done = service.decide_review(session, review_id, decision == "confirm", user.username)
    except service.ReviewError as exc:
        raise HTTPException(409, str(exc)) from exc
    return {
        "id": done.id,
        "status": done.status,
        "master_id": done.master_id,
        "decided_by": done.decided_by,
    }


@router.post("/base/{base}/reviews/{review_id}")
def decide_review(
    base: str,
    review_id: RowId,
    decision: str = Body(..., embed=True),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    _base(base)
    return decide(session, user, review_id, decision)


@router.get("/themes/{name}")
def theme(
    name: str,
    offset: Offset = 0,
    limit: int = Query(100, ge=1, le=1000),
    session: Session = Depends(db),
    _admin: User = Depends(require_admin),
) -> dict[str, Any]:
    """A theme database's rows (administrators; departments get them through sharing)."""
    from citydata.bases.themes import ThemeError, theme_rows

    try:
        return theme_rows(session, name, offset, limit)
    except ThemeError as exc:
        raise HTTPException(404, str(exc)) from exc
