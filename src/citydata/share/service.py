"""Applications and approvals, and the credentials of the business systems that call.

无条件共享 is approved at once; 有条件共享 waits for the provider's steward, who must answer within
a number of working days; 不予共享 is refused with the class's legal basis. Every step is kept in
``share_decisions``; nothing is deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.permissions import may_audit
from citydata.catalog.models import ResourceClass, Unit
from citydata.catalog.service import get_class
from citydata.db.base import utcnow
from citydata.mechanisms import changes
from citydata.mechanisms import credentials as credentials_kit
from citydata.mechanisms.workdays import add_workdays
from citydata.privacy.masking import class_fields, grant_masks
from citydata.share.models import STATUS, ShareApplication, ShareCredential, ShareDecision
from citydata.share.permissions import may_apply, may_decide, may_see

RESPONSE_WORKDAYS = 10  # the national sharing rules' answer period for 有条件共享
CREDENTIAL_PREFIX = "cds"
ROTATION_GRACE = credentials_kit.ROTATION_GRACE


class ShareError(ValueError):
    """A request that breaks a sharing rule; ``code`` is stable for API clients."""

    def __init__(
        self, message: str, code: str = "invalid", status: int = 400, retry_after: int = 0
    ):
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after  # seconds, for 429


def _denied(message: str) -> ShareError:
    return ShareError(message, "forbidden", 403)


# ---------------------------------------------------------------- applications


def current_status(app: ShareApplication, today: date | None = None) -> str:
    if app.status == "approved" and app.valid_until < (today or date.today()):
        return "expired"
    return app.status


def is_overdue(app: ShareApplication, today: date | None = None) -> bool:
    return (
        app.status == "pending"
        and app.due_date is not None
        and app.due_date < (today or date.today())
    )


def _record(
    session: Session, app: ShareApplication, action: str, by: str, reason: str = ""
) -> None:
    session.add(
        ShareDecision(
            application_id=app.id,
            action=action,
            by=by,
            reason=reason,
            fields=list(app.granted if action in {"approve", "auto_approve"} else app.fields),
        )
    )
    changes.mark(session, "share")


def _checked_fields(rc: ResourceClass, fields: list[str], unmasked: list[str]) -> None:
    known = [f.name for f in rc.fields]
    unknown = [f for f in [*fields, *unmasked] if f not in known]
    if not fields:
        raise ShareError("至少申请一个信息项", "no_fields")
    if unknown:
        raise ShareError(
            f"「{rc.code}」没有信息项 {'、'.join(unknown)}；可选：{'、'.join(known)}",
            "unknown_field",
        )
    if set(unmasked) - set(fields):
        raise ShareError("不脱敏的信息项必须也在申请的信息项中", "unmasked_not_requested")


def apply(
    session: Session,
    user: User,
    *,
    consumer_code: str,
    class_code: str,
    fields: list[str],
    purpose: str,
    legal_basis: str,
    system_name: str,
    valid_until: date,
    unmasked: list[str] | None = None,
    daily_volume: int = 10000,
    today: date | None = None,
    response_workdays: int = RESPONSE_WORKDAYS,
) -> ShareApplication:
    today = today or date.today()
    unmasked = list(dict.fromkeys(unmasked or []))
    fields = list(dict.fromkeys(fields))
    if session.get(Unit, consumer_code) is None:
        raise ShareError(f"单位「{consumer_code}」不在目录中", "unknown_unit", 404)
    if not may_apply(user, consumer_code):
        raise _denied(f"只有「{consumer_code}」的用户或管理员可以替该单位申请")
    rc = get_class(session, class_code)
    if rc is None or rc.status == "retired":
        raise ShareError(f"信息资源「{class_code}」不存在或已停用", "unknown_class", 404)
    if rc.provider_code == consumer_code:
        raise ShareError("本单位的数据无需申请共享", "own_class")
    _checked_fields(rc, fields, unmasked)
    for text, what in ((purpose, "用途"), (legal_basis, "依据"), (system_name, "调用系统")):
        if not text.strip():
            raise ShareError(f"必须写明{what}", "missing_" + what)
    if valid_until <= today:
        raise ShareError("有效期必须晚于今天", "valid_until")
    if daily_volume < 1:
        raise ShareError("预计日调用量至少为 1", "daily_volume")
    app = ShareApplication(
        consumer_code=consumer_code,
        class_code=class_code,
        provider_code=rc.provider_code,
        fields=fields,
        unmasked=unmasked,
        purpose=purpose.strip(),
        legal_basis=legal_basis.strip(),
        system_name=system_name.strip(),
        valid_until=valid_until,
        daily_volume=daily_volume,
        applicant=user.username,
        status="pending",
    )
    person = _beyond_automatic(rc, app, today)
    return _submit(
        session, app, rc.share_type, rc.share_condition, today, response_workdays, person
    )


# 无条件共享 is approved by the system only for the ordinary case: personal fields masked, no
# sensitive personal information, the usual validity and volume. Anything more is a person's
# decision, whatever the class's attribute says.
AUTO_VALIDITY = timedelta(days=366)
AUTO_DAILY_VOLUME = 10_000


def _beyond_automatic(rc: ResourceClass, app: ShareApplication, today: date) -> str:
    """Why an application cannot be approved by the system ("" when it can)."""
    sensitive = [f.name for f in rc.fields if f.name in app.fields and f.sensitivity == "sensitive"]
    if app.unmasked:
        return f"申请不脱敏：{'、'.join(app.unmasked)}"
    if sensitive:
        return f"含敏感个人信息：{'、'.join(sensitive)}"
    if app.valid_until > today + AUTO_VALIDITY:
        return "有效期超过一年"
    if app.daily_volume > AUTO_DAILY_VOLUME:
        return f"日调用量超过 {AUTO_DAILY_VOLUME}"
    return ""


OPEN_SYSTEM = "开放数据门户"


def apply_open(
    session: Session,
    user: User,
    *,
    class_code: str,
    purpose: str,
    valid_until: date,
    today: date | None = None,
    response_workdays: int = RESPONSE_WORKDAYS,
) -> ShareApplication:
    """有条件开放: a registered user asks for a conditionally open dataset's data — the same
    application, decided by the provider's steward, routed by the class's open attribute. Only
    public fields can ever be asked for: personal data is not open data."""
    today = today or date.today()
    rc = get_class(session, class_code)
    if rc is None or rc.status == "retired" or rc.open_type == "closed":
        raise ShareError(f"数据集「{class_code}」不存在或不开放", "unknown_class", 404)
    if not purpose.strip():
        raise ShareError("必须写明用途", "missing_用途")
    if valid_until <= today:
        raise ShareError("有效期必须晚于今天", "valid_until")
    public = [f.name for f in rc.fields if f.sensitivity == "public"]
    app = ShareApplication(
        channel="open",
        consumer_code=None,
        class_code=class_code,
        provider_code=rc.provider_code,
        fields=public,
        unmasked=[],
        purpose=purpose.strip(),
        legal_basis=rc.open_condition or "开放数据",
        system_name=OPEN_SYSTEM,
        valid_until=valid_until,
        daily_volume=1000,
        applicant=user.username,
        status="pending",
    )
    return _submit(session, app, rc.open_type, rc.open_condition, today, response_workdays)


def released_to(
    session: Session, user: User | None, class_code: str, today: date | None = None
) -> bool:
    """Has ``user`` an approved, unexpired open-data application for ``class_code``?"""
    if user is None:
        return False
    found = session.scalars(
        select(ShareApplication).where(
            ShareApplication.channel == "open",
            ShareApplication.class_code == class_code,
            ShareApplication.applicant == user.username,
            ShareApplication.status == "approved",
        )
    ).all()
    return any(current_status(app, today) == "approved" for app in found)


# What an attribute of the class means for an application: approved at once, or refused.
# Anything else (有条件共享 / 有条件开放) waits for the provider's answer.
_AT_ONCE = {"unconditional": "无条件共享", "open": "普遍开放"}
_REFUSED = {"none": "不予共享", "closed": "不予开放"}


def _submit(
    session: Session,
    app: ShareApplication,
    attribute: str,
    condition: str,
    today: date,
    workdays: int,
    person: str = "",
) -> ShareApplication:
    """Keep a new application, its submission, and what the class's attribute says next
    (``person``: why it must go to a person even so)."""
    session.add(app)
    session.flush()
    _record(session, app, "submit", app.applicant)
    _route(session, app, attribute, condition, today, workdays, person)
    return app


def _route(
    session: Session,
    app: ShareApplication,
    attribute: str,
    condition: str,
    today: date,
    workdays: int,
    person: str = "",
) -> None:
    """What the class's sharing attribute (or, for open data, its open attribute) says happens
    next."""
    if attribute in _AT_ONCE and not person:
        app.granted, app.granted_unmasked = list(app.fields), list(app.unmasked)
        _close(app, "approved", "system", f"{_AT_ONCE[attribute]}，自动批准")
        _record(session, app, "auto_approve", "system", app.reason)
    elif attribute in _REFUSED:
        _close(app, "refused", "system", f"{_REFUSED[attribute]}：{condition}")
        _record(session, app, "refuse", "system", app.reason)
    else:
        app.status = "pending"
        if attribute in _AT_ONCE:  # would have been automatic, but for ``person``
            app.reason = f"{_AT_ONCE[attribute]}，但{person}，须经提供方审核"
        app.due_date, _ = add_workdays(today, workdays)


def _close(app: ShareApplication, status: str, by: str, reason: str) -> None:
    app.status, app.decided_by, app.decided_at, app.reason = status, by, utcnow(), reason


def open_application(session: Session, application_id: int, user: User) -> ShareApplication:
    app = session.get(ShareApplication, application_id)
    if app is None or not may_see(user, app):
        raise ShareError(f"没有共享申请 {application_id}", "not_found", 404)
    return app


def decide(
    session: Session,
    user: User,
    application_id: int,
    action: str,
    reason: str = "",
    fields: list[str] | None = None,
    unmasked: list[str] | None = None,
) -> ShareApplication:
    """approve (optionally fewer fields, fewer in clear), reject or ask for more — by the
    provider's steward or an administrator, on a pending application."""
    app = open_application(session, application_id, user)
    if not may_decide(user, app):
        raise _denied("只有提供方单位的数据管理员或管理员可以审核")
    if app.status != "pending":
        raise ShareError(
            f"申请 {app.id} 当前为「{STATUS[app.status]}」，不能审核", "not_pending", 409
        )
    if action == "approve":
        granted = list(fields) if fields is not None else list(app.fields)
        clear = list(unmasked) if unmasked is not None else list(app.unmasked)
        if not granted or set(granted) - set(app.fields):
            raise ShareError("批准的信息项必须是申请的信息项的非空子集", "fields_exceed")
        if set(clear) - set(app.unmasked) or set(clear) - set(granted):
            raise ShareError("批准不脱敏的信息项必须是申请不脱敏且已批准的信息项", "fields_exceed")
        _check_joint(session, app.class_code, granted, clear)
        app.granted, app.granted_unmasked = granted, clear
        _close(app, "approved", user.username, reason)
    elif action in {"reject", "ask"}:
        if not reason.strip():
            raise ShareError("驳回或要求补充材料必须写明理由", "reason_required")
        _close(app, "rejected" if action == "reject" else "more_info", user.username, reason)
    else:
        raise ShareError("action 应为 approve、reject 或 ask", "bad_action")
    _record(session, app, action, user.username, reason)
    return app


def _check_joint(session: Session, class_code: str, granted: list[str], clear: list[str]) -> None:
    """An approval whose clear fields would give away a masked one is refused: the approver
    grants both in clear or neither (masks are judged jointly, see masking.joint_masks)."""
    rc = get_class(session, class_code)
    every, masks = class_fields(rc.code, rc.fields)
    masked = grant_masks(every, masks, granted, clear)
    clashing = [f for f in clear if f in masked]
    if clashing:
        hidden = [f for f in masked if f not in clashing and f in masks]
        raise ShareError(
            f"不脱敏交付 {'、'.join(clashing)} 会暴露脱敏的 {'、'.join(hidden) or '其他信息项'}："
            "请一并批准不脱敏，或都脱敏",
            "joint_mask",
        )


def resubmit(
    session: Session,
    user: User,
    application_id: int,
    purpose: str | None = None,
    legal_basis: str | None = None,
    today: date | None = None,
    response_workdays: int = RESPONSE_WORKDAYS,
) -> ShareApplication:
    """The applicant answers a request for more: the application is pending again, with a new
    answer period."""
    app = open_application(session, application_id, user)
    if not may_apply(user, app.consumer_code):
        raise _denied("只有申请单位可以补充材料")
    if app.status != "more_info":
        raise ShareError("只有「需补充材料」的申请可以重新提交", "not_more_info", 409)
    app.purpose = (purpose or app.purpose).strip()
    app.legal_basis = (legal_basis or app.legal_basis).strip()
    app.status, app.reason = "pending", ""
    app.due_date, _ = add_workdays(today or date.today(), response_workdays)
    _record(session, app, "resubmit", user.username)
    return app


def revoke(session: Session, user: User, application_id: int, reason: str) -> ShareApplication:
    app = open_application(session, application_id, user)
    if not (may_decide(user, app) or may_apply(user, app.consumer_code)):
        raise _denied("只有提供方、申请方或管理员可以撤销")
    if app.status != "approved":
        raise ShareError("只有已批准的申请可以撤销", "not_approved", 409)
    if not reason.strip():
        raise ShareError("撤销必须写明理由", "reason_required")
    _close(app, "revoked", user.username, reason)
    _record(session, app, "revoke", user.username, reason)
    return app


def applications(
    session: Session, user: User, status: str | None = None, class_code: str | None = None
) -> list[ShareApplication]:
    query = select(ShareApplication).order_by(ShareApplication.id.desc())
    if not may_audit(user):
        # A user without a unit sees only his own: "no unit" must never match "no consumer"
        # (every open-data application has none).
        own = [ShareApplication.applicant == user.username]
        if user.unit_code is not None:
            own += [
                ShareApplication.consumer_code == user.unit_code,
                ShareApplication.provider_code == user.unit_code,
            ]
        query = query.where(or_(*own))
    if class_code:
        query = query.where(ShareApplication.class_code == class_code)
    found = list(session.scalars(query))
    return [a for a in found if status in {None, "", current_status(a)}]


def decisions(session: Session, application_id: int) -> list[ShareDecision]:
    return list(
        session.scalars(
            select(ShareDecision)
            .where(ShareDecision.application_id == application_id)
            .order_by(ShareDecision.id)
        )
    )


def application_dict(app: ShareApplication, today: date | None = None) -> dict:
    status = current_status(app, today)
    return {
        "id": app.id,
        "consumer": app.consumer_code,
        "provider": app.provider_code,
        "class_code": app.class_code,
        "fields": app.fields,
        "unmasked": app.unmasked,
        "granted": app.granted,
        "granted_unmasked": app.granted_unmasked,
        "purpose": app.purpose,
        "legal_basis": app.legal_basis,
        "system_name": app.system_name,
        "daily_volume": app.daily_volume,
        "valid_until": app.valid_until.isoformat(),
        "status": status,
        "status_label": STATUS[status],
        "due_date": app.due_date.isoformat() if app.due_date else None,
        "overdue": is_overdue(app, today),
        "reason": app.reason,
        "applicant": app.applicant,
        "created_at": app.created_at.isoformat(),
        "decided_by": app.decided_by,
    }


# ---------------------------------------------------------------- credentials


@dataclass
class IssuedCredential:
    credential: ShareCredential
    secret: str  # shown once, never stored


def _check_networks(ip_allow: list[str]) -> list[str]:
    try:
        return credentials_kit.networks(ip_allow)
    except ValueError as exc:
        raise ShareError(f"IP 白名单有误：{exc}", "ip_allow") from exc


def issue_credential(
    session: Session,
    user: User,
    application_id: int,
    ip_allow: list[str] | None = None,
    rate_per_minute: int = 6000,
) -> IssuedCredential:
    app = open_application(session, application_id, user)
    if not may_apply(user, app.consumer_code):
        raise _denied("只有申请单位或管理员可以为调用系统开通凭证")
    if current_status(app) != "approved":
        raise ShareError("只有有效的已批准申请可以开通凭证", "not_approved", 409)
    if app.channel != "share":
        raise ShareError("开放数据申请不开通共享接口凭证", "open_channel", 409)
    key_id = credentials_kit.new_key_id()
    secret = credentials_kit.new_secret(CREDENTIAL_PREFIX, key_id)
    credential = ShareCredential(
        application_id=app.id,
        key_id=key_id,
        secret_hash=credentials_kit.digest(secret),
        ip_allow=_check_networks(ip_allow or []),
        rate_per_minute=rate_per_minute,
        created_by=user.username,
    )
    session.add(credential)
    session.flush()
    return IssuedCredential(credential, secret)


def _credential(
    session: Session, user: User, key_id: str
) -> tuple[ShareCredential, ShareApplication]:
    credential = session.scalar(select(ShareCredential).where(ShareCredential.key_id == key_id))
    if credential is None:
        raise ShareError(f"没有凭证「{key_id}」", "not_found", 404)
    return credential, open_application(session, credential.application_id, user)


def rotate_credential(
    session: Session, user: User, key_id: str, grace: timedelta = ROTATION_GRACE
) -> IssuedCredential:
    """A new secret; the old one keeps working for ``grace`` so the system can switch over."""
    credential, app = _credential(session, user, key_id)
    if not may_apply(user, app.consumer_code):
        raise _denied("只有申请单位或管理员可以轮换凭证")
    if credential.revoked_at is not None:
        raise ShareError("凭证已吊销", "revoked", 409)
    now = utcnow()
    secret = credentials_kit.rotate(credential, CREDENTIAL_PREFIX, credential.key_id, now, grace)
    credential.rotated_at = now
    return IssuedCredential(credential, secret)


def revoke_credential(session: Session, user: User, key_id: str) -> ShareCredential:
    credential, app = _credential(session, user, key_id)
    if not (may_apply(user, app.consumer_code) or may_decide(user, app)):
        raise _denied("只有申请单位、提供方或管理员可以吊销凭证")
    credential.revoked_at = credential.revoked_at or utcnow()
    return credential


def credentials(session: Session, application_id: int) -> list[ShareCredential]:
    return list(
        session.scalars(
            select(ShareCredential)
            .where(ShareCredential.application_id == application_id)
            .order_by(ShareCredential.id)
        )
    )
