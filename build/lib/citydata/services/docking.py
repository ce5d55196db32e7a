"""自建业务系统对接: a department's own system holds a credential (``cdk_<key id>_<secret>``,
the same machinery as the sharing API's), sees and moves the cases of its unit's matters only,
and hears of every step by webhook (``mechanisms.outbox``: after commit, no personal data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit
from citydata.catalog.models import Unit
from citydata.mechanisms import credentials
from citydata.services.models import DockedSystem
from citydata.services.shared import ServiceError

PREFIX = "cdk"


@dataclass(frozen=True)
class Issued:
    system: DockedSystem
    secret: str  # shown once


def register(
    session: Session, user: User, unit_code: str, name: str, ip_allow: list[str] | None = None
) -> Issued:
    """A docked system of ``unit_code``: its administrator or the unit's steward registers it."""
    if session.get(Unit, unit_code) is None:
        raise ServiceError(f"单位「{unit_code}」不存在", 404, "unknown_unit")
    if not can_write_unit(user, unit_code):
        raise ServiceError("只有本单位的数据管理员或平台管理员可以登记业务系统", 403, "forbidden")
    if not name.strip() or len(name) > 100:
        raise ServiceError("系统名称必填，最多 100 个字符", 422, "bad_name")
    try:
        allow = credentials.networks(ip_allow or [])
    except ValueError as exc:
        raise ServiceError(f"IP 白名单有误：{exc}", 422, "bad_ip_allow") from exc
    key_id = credentials.new_key_id()
    secret = credentials.new_secret(PREFIX, key_id)
    system = DockedSystem(
        unit_code=unit_code,
        name=name.strip(),
        key_id=key_id,
        secret_hash=credentials.digest(secret),
        ip_allow=allow,
        created_by=user.username,
    )
    session.add(system)
    session.flush()
    return Issued(system, secret)


def _own(session: Session, user: User, key_id: str) -> DockedSystem:
    system = session.scalar(select(DockedSystem).where(DockedSystem.key_id == key_id))
    if system is None:
        raise ServiceError(f"业务系统凭证「{key_id}」不存在", 404, "not_found")
    if not can_write_unit(user, system.unit_code):
        raise ServiceError("无权管理该业务系统", 403, "forbidden")
    return system


def rotate(session: Session, user: User, key_id: str) -> Issued:
    """A new secret; the old one works for 24 hours more, so the system can be redeployed."""
    system = _own(session, user, key_id)
    now = datetime.now(UTC)
    secret = credentials.rotate(system, PREFIX, key_id, now, credentials.ROTATION_GRACE)
    return Issued(system, secret)


def revoke(session: Session, user: User, key_id: str) -> DockedSystem:
    system = _own(session, user, key_id)
    system.revoked_at = system.revoked_at or datetime.now(UTC)
    return system


def systems(session: Session, unit_code: str | None = None) -> list[DockedSystem]:
    query = select(DockedSystem).order_by(DockedSystem.id)
    if unit_code:
        query = query.where(DockedSystem.unit_code == unit_code)
    return list(session.scalars(query))


def authenticate(
    session: Session, authorization: str, client_ip: str, now: datetime | None = None
) -> DockedSystem:
    """The system a request's credential names, or 401/403 — the same answer for an unknown key
    and a wrong secret, so keys cannot be told apart."""
    presented = credentials.parse(PREFIX, authorization or "")
    refused = ServiceError("无效或已吊销的业务系统凭证", 401, "bad_credential")
    if presented is None:
        raise refused
    system = session.scalar(select(DockedSystem).where(DockedSystem.key_id == presented.key_id))
    now = now or datetime.now(UTC)
    if system is None or system.revoked_at is not None:
        raise refused
    if not credentials.matches(system, presented.whole, now):
        raise refused
    if not credentials.ip_allowed(system, client_ip):
        raise ServiceError("调用地址不在该系统的 IP 白名单内", 403, "ip_not_allowed")
    return system
