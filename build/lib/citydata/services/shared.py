"""The service platform reads the base databases as any department does: through the sharing
service, under the approved application of its own unit (市政务服务中心), masked per that grant,
each read audited — naming the case it was for. No approval, no prefill: the platform has no
back door to the bases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.audit.service import append
from citydata.bases.models import MasterValue
from citydata.catalog.service import get_class
from citydata.privacy.masking import mask_value
from citydata.share import gateway
from citydata.share.models import ShareApplication
from citydata.share.service import ShareError, current_status

SERVICE_UNIT = "cszw"  # 长沙市政务服务中心, the platform's own unit
SYSTEM = "一网通办平台"
POPULATION, LEGAL_PERSON = "101001/00000", "101002/00000"


class ServiceError(ValueError):
    """A service rule broken; ``status`` the HTTP code it answers with."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid"):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Reader:
    """Who reads, for the audit: the person at the platform and the case it is for."""

    end_user: str
    case_no: str
    client_ip: str = ""


def platform_caller(session: Session, class_code: str) -> tuple[gateway.Caller, gateway.Resource]:
    """The sharing caller of the platform's approved application for ``class_code``."""
    apps = session.scalars(
        select(ShareApplication)
        .where(
            ShareApplication.consumer_code == SERVICE_UNIT,
            ShareApplication.class_code == class_code,
            ShareApplication.channel == "share",
            ShareApplication.status == "approved",
        )
        .order_by(ShareApplication.id.desc())
    ).all()
    app = next((a for a in apps if current_status(a) == "approved"), None)
    rc = get_class(session, class_code)
    if app is None or rc is None:
        raise ServiceError(
            f"一网通办平台尚未获准共享「{class_code}」：须由市政务服务中心申请并获批准",
            409,
            "not_granted",
        )
    caller = gateway.Caller(
        key_id=f"platform-{app.id}",
        application_id=app.id,
        consumer_code=SERVICE_UNIT,
        system_name=SYSTEM,
        class_code=class_code,
        class_version=rc.version,
        granted=frozenset(app.granted),
        unmasked=frozenset(app.granted_unmasked),
        daily_volume=app.daily_volume,
        rate_per_minute=0,
    )
    return caller, gateway.resource(session, class_code, rc.version)


def _audit(
    session: Session,
    reader: Reader,
    caller: gateway.Caller,
    action: str,
    fields: list[str],
    query: dict[str, Any],
    rows: int,
    subjects: list[int],
) -> None:
    """The read's entry, in the caller's transaction: it commits with what the read was for."""
    append(
        session,
        [
            {
                "at": datetime.now(UTC),
                "request_id": str(uuid.uuid4()),
                "key_id": caller.key_id,
                "consumer_code": caller.consumer_code,
                "system_name": caller.system_name,
                "application_id": caller.application_id,
                "class_code": caller.class_code,
                "action": action,
                "fields": fields,
                "query": query,
                "end_user": reader.end_user,
                "case_id": reader.case_no,
                "client_ip": reader.client_ip,
                "peer_ip": None,
                "rows": rows,
                "subjects": subjects,
                "outcome": "ok",
                "status_code": 200,
                "response_hash": "",
            }
        ],
    )


def lookup(
    session: Session, reader: Reader, class_code: str, key: str, fields: list[str]
) -> tuple[dict[str, Any], list[int]]:
    """One record by key, the granted ones of ``fields`` only, masked per the grant; audited."""
    caller, res = platform_caller(session, class_code)
    wanted = [f for f in dict.fromkeys(fields) if f in caller.granted]
    if not wanted:
        return {}, []
    try:
        found = gateway.lookup(session, caller, res, [key], wanted)
    except ShareError as exc:
        raise ServiceError(str(exc), exc.status, exc.code) from exc
    _audit(
        session,
        reader,
        caller,
        "prefill",
        wanted,
        {"keys": [key]},
        len(found.records),
        found.subjects,
    )
    return (found.records[0] if found.records else {}), found.subjects


def verify(
    session: Session, reader: Reader, class_code: str, key: str, claims: dict[str, str]
) -> bool:
    """一致/不一致 for every claim, no value returned; audited as a verification."""
    caller, res = platform_caller(session, class_code)
    try:
        answer, found, subjects = gateway.verify(session, caller, res, key, claims)
    except ShareError as exc:
        raise ServiceError(str(exc), exc.status, exc.code) from exc
    _audit(session, reader, caller, "verify", sorted(claims), {"key": key}, int(found), subjects)
    return found and all(v == "一致" for v in answer.values())


def value_owner(session: Session, class_code: str, master_ids: list[int], field: str) -> str:
    """The unit whose record a prefilled value came from: for a base, the source chosen for the
    golden record; otherwise the class's provider."""
    if master_ids:
        unit = session.scalar(
            select(MasterValue.unit_code).where(
                MasterValue.master_id == master_ids[0],
                MasterValue.attribute == field,
                MasterValue.chosen.is_(True),
            )
        )
        if unit:
            return unit
    rc = get_class(session, class_code)
    return rc.provider_code if rc else ""


KEY_KINDS = {"id_number": "person", "credit_code": "company"}  # a class's key -> who it names


def key_kind(session: Session, class_code: str) -> str | None:
    """Whose number a class is looked up by (person or company), None when neither."""
    try:
        res = gateway.resource(session, class_code)
    except ShareError:
        return None
    return KEY_KINDS.get(res.key_field or "")


def masked(session: Session, class_code: str, field: str, value: Any) -> str:
    """A value as a report may keep it: personal fields masked as the class masks them."""
    if value is None:
        return ""
    try:
        kind = gateway.resource(session, class_code).masks.get(field)
    except ShareError:
        kind = None
    return (mask_value(value, kind) or "") if kind else str(value)
