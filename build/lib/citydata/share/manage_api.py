"""HTTP for people managing sharing (``/api/v1/share``, ``/api/v1/audit``): applications,
decisions, credentials, usage and the audit log. The sharing API itself is ``share.api``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.permissions import may_audit
from citydata.audit import service as audit
from citydata.share import permissions, service
from citydata.share.service import ShareError
from citydata.web.auth import db, require_user
from citydata.web.errors import API_ERRORS
from citydata.web.params import ID_MAX, RowId

router = APIRouter(prefix="/api/v1", tags=["share 共享管理"], responses=API_ERRORS)


# ---------------------------------------------------------------- managing applications


def _checked(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ShareError as exc:
        raise HTTPException(exc.status, {"code": exc.code, "message": str(exc)}) from exc


Name = Annotated[str, Field(max_length=64)]
Text = Annotated[str, Field(max_length=2000)]


class ApplicationIn(BaseModel):
    """A unit's application for some fields of one class (申请共享)."""

    consumer: Name | None = Field(None, description="申请单位（缺省：本人所在单位）")
    class_code: Name
    fields: list[Name] = Field(..., max_length=500)
    unmasked: list[Name] = Field([], max_length=500, description="申请不脱敏的信息项")
    purpose: Text
    legal_basis: Text
    system_name: Annotated[str, Field(max_length=100)]
    valid_until: date
    daily_volume: int = Field(10_000, ge=1, le=1_000_000_000)


@router.post("/share/applications", status_code=201)
def create_application(
    payload: ApplicationIn,
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    app = _checked(
        service.apply,
        session,
        user,
        consumer_code=payload.consumer or user.unit_code or "",
        class_code=payload.class_code,
        fields=payload.fields,
        unmasked=payload.unmasked,
        purpose=payload.purpose,
        legal_basis=payload.legal_basis,
        system_name=payload.system_name,
        valid_until=payload.valid_until,
        daily_volume=payload.daily_volume,
    )
    return service.application_dict(app)


@router.get("/share/applications")
def list_applications(
    status: str | None = None,
    class_code: str | None = None,
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> list[dict[str, Any]]:
    return [
        service.application_dict(a) for a in service.applications(session, user, status, class_code)
    ]


@router.get("/share/applications/{application_id}")
def show_application(
    application_id: RowId, session: Session = Depends(db), user: User = Depends(require_user)
) -> dict[str, Any]:
    app = _checked(service.open_application, session, application_id, user)
    return {
        **service.application_dict(app),
        "decisions": [
            {
                "action": d.action,
                "by": d.by,
                "at": d.at.isoformat(),
                "reason": d.reason,
                "fields": d.fields,
            }
            for d in service.decisions(session, app.id)
        ],
        "credentials": [
            {
                "key_id": c.key_id,
                "created_at": c.created_at.isoformat(),
                "rotated_at": c.rotated_at.isoformat() if c.rotated_at else None,
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                "ip_allow": c.ip_allow,
            }
            for c in service.credentials(session, app.id)
        ],
    }


class DecisionIn(BaseModel):
    action: Literal["approve", "reject", "ask"]
    reason: Text = ""
    fields: list[Name] | None = Field(
        None, max_length=500, description="批准的信息项（缺省：全部）"
    )
    unmasked: list[Name] | None = Field(None, max_length=500)


@router.post("/share/applications/{application_id}/decision")
def decide(
    application_id: RowId,
    payload: DecisionIn,
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    app = _checked(
        service.decide,
        session,
        user,
        application_id,
        payload.action,
        payload.reason,
        payload.fields,
        payload.unmasked,
    )
    return service.application_dict(app)


class ResubmitIn(BaseModel):
    purpose: Text | None = None
    legal_basis: Text | None = None


@router.post("/share/applications/{application_id}/resubmit")
def resubmit(
    application_id: RowId,
    payload: ResubmitIn = Body(default_factory=ResubmitIn),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    app = _checked(
        service.resubmit, session, user, application_id, payload.purpose, payload.legal_basis
    )
    return service.application_dict(app)


@router.post("/share/applications/{application_id}/revoke")
def revoke(
    application_id: RowId,
    reason: Text = Body(..., embed=True),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    return service.application_dict(_checked(service.revoke, session, user, application_id, reason))


def _issued(issued: service.IssuedCredential) -> dict[str, Any]:
    return {
        "key_id": issued.credential.key_id,
        "secret": issued.secret,
        "note": "密钥只显示这一次，请妥善保存；平台只保存其哈希",
    }


class CredentialIn(BaseModel):
    ip_allow: list[Annotated[str, Field(max_length=64)]] = Field(
        [], max_length=100, description="允许的来源地址或网段；空：不限"
    )
    rate_per_minute: int = Field(6000, ge=1, le=1_000_000)


@router.post("/share/applications/{application_id}/credentials", status_code=201)
def issue_credential(
    application_id: RowId,
    payload: CredentialIn = Body(default_factory=CredentialIn),
    session: Session = Depends(db),
    user: User = Depends(require_user),
) -> dict[str, Any]:
    issued = _checked(
        service.issue_credential,
        session,
        user,
        application_id,
        payload.ip_allow,
        payload.rate_per_minute,
    )
    return _issued(issued)


@router.post("/share/credentials/{key_id}/rotate")
def rotate_credential(
    key_id: str, session: Session = Depends(db), user: User = Depends(require_user)
) -> dict[str, Any]:
    return _issued(_checked(service.rotate_credential, session, user, key_id))


@router.post("/share/credentials/{key_id}/revoke")
def revoke_credential(
    key_id: str, session: Session = Depends(db), user: User = Depends(require_user)
) -> dict[str, Any]:
    credential = _checked(service.revoke_credential, session, user, key_id)
    return {"key_id": credential.key_id, "revoked_at": credential.revoked_at.isoformat()}


# ---------------------------------------------------------------- audit


def _auditor(user: User = Depends(require_user)) -> User:
    if not may_audit(user):
        raise HTTPException(403, "需要审计员或管理员权限")
    return user


@router.get("/audit")
def search_audit(
    master_id: int | None = Query(None, ge=1, le=ID_MAX),
    consumer: str | None = None,
    class_code: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    session: Session = Depends(db),
    _user: User = Depends(_auditor),
) -> list[dict[str, Any]]:
    found = audit.search(session, master_id, consumer, class_code, limit=limit)
    return [audit.entry_dict(e) for e in found]


@router.get("/audit/verify")
def verify_audit(session: Session = Depends(db), _user: User = Depends(_auditor)) -> dict[str, Any]:
    report = audit.verify(session)
    return {"ok": report.ok, "entries": report.entries, "problems": report.problems}


@router.get("/share/usage")
def usage(
    since: date | None = None, session: Session = Depends(db), user: User = Depends(require_user)
) -> list[dict[str, Any]]:
    """Sharing calls per day, consumer unit and class: all units for auditors and
    administrators, a unit's own for its staff."""
    allowed, unit = permissions.usage_scope(user)
    if not allowed:
        raise HTTPException(403, "只有单位用户、审计员或管理员可以查看共享用量")
    return audit.usage(session, since, unit)
