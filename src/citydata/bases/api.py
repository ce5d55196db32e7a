"""Base databases API (/api/v1/base): master records with provenance and as-of history, search,
and the review queue. Administrators read masters (sharing to departments is the sharing
service's); a review is decided by an administrator or the steward of the row's unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.service import can_write_unit
from citydata.bases import service
from citydata.bases.models import Master
from citydata.bases.spec import SpecError, spec
from citydata.catalog.service import get_class
from citydata.web.auth import db, require_admin, require_user

router = APIRouter(prefix="/api/v1", tags=["bases 基础库"])


def _base(base: str) -> str:
    try:
        return spec(base).code
    except SpecError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/base/{base}/records")
def search(
    base: str,
    key: str | None = None,
    name: str | None = None,
    limit: int = 50,
    session: Session = Depends(db),
    _admin: User = Depends(require_admin),
) -> dict[str, Any]:
    found = service.search(session, _base(base), key, name, min(limit, 500))
    return {
        "count": len(found),
        "results": [
            {"id": m.id, "key": m.key, "name": m.name, "version": m.version, "record": m.record}
            for m in found
        ],
    }


@router.get("/base/{base}/records/{master_id}")
def show(
    base: str,
    master_id: int,
    as_of: datetime | None = None,
    session: Session = Depends(db),
    _admin: User = Depends(require_admin),
) -> dict[str, Any]:
    master = session.get(Master, master_id)
    if master is None or master.base != _base(base):
        raise HTTPException(404, f"{base} 中没有主记录 {master_id}")
    return service.master_dict(session, master, as_of)


@router.get("/base/{base}/reviews")
def list_reviews(
    base: str,
    status: str = "pending",
    session: Session = Depends(db),
    _user: User = Depends(require_user),
) -> list[dict[str, Any]]:
    return service.reviews(session, _base(base), status)


def decide(session: Session, user: User, review_id: int, decision: str) -> dict[str, Any]:
    """Shared by the API and the review page."""
    from citydata.bases.models import MatchReview

    if decision not in {"confirm", "reject"}:
        raise HTTPException(400, "decision 必须是 confirm 或 reject")
    review = session.get(MatchReview, review_id)
    if review is None:
        raise HTTPException(404, f"没有待确认的匹配 {review_id}")
    rc = get_class(session, review.class_code)
    if not can_write_unit(user, rc.provider_code if rc else ""):
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
    review_id: int,
    decision: str = Body(..., embed=True),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    _base(base)
    return decide(session, user, review_id, decision)


@router.get("/themes/{name}")
def theme(
    name: str,
    offset: int = 0,
    limit: int = 100,
    session: Session = Depends(db),
    _admin: User = Depends(require_admin),
) -> dict[str, Any]:
    """A theme database's rows (administrators; departments get them through sharing)."""
    from citydata.bases.themes import ThemeError, theme_rows

    try:
        return theme_rows(session, name, max(offset, 0), min(max(limit, 1), 1000))
    except ThemeError as exc:
        raise HTTPException(404, str(exc)) from exc
