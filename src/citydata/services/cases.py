"""办件: a case from its draft to 办结 and 送达.

A case is opened online by a verified account (a draft whose form is prefilled from the base
databases through the sharing service), at a hall window (一窗受理: the window takes any matter
and routes it to its unit; the applicant came in person, so a visit is recorded), or by a
department's docked system. Its statuses are an append-only history whose allowed steps are
``statuses.toml``; the 承诺时限 clock starts at 受理, stops during 补正 and 特别程序, and counts
working days. Each step is told to the unit's docked systems by webhook after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.db import keyset
from citydata.keys import Keys
from citydata.mechanisms import changes, outbox
from citydata.mechanisms.history import TransitionRefused, Transitions
from citydata.mechanisms.workdays import FIRST as CALENDAR_FIRST
from citydata.mechanisms.workdays import add_workdays, workdays_between
from citydata.services import matters as matter_rules
from citydata.services.identity import Applicant, subject_hash
from citydata.services.models import (
    Bundle,
    Case,
    CaseEvent,
    Discrepancy,
    FollowUp,
    Identity,
    Matter,
    Upload,
    Visit,
)
from citydata.services.shared import Reader, ServiceError, key_kind, lookup, masked, value_owner

TRANSITIONS = Transitions.load(Path(__file__).with_name("statuses.toml"))
REGION = "430100"  # 长沙市: the first six digits of every case number
FINISHED = frozenset({"granted", "refused"})
PAUSES = {"supplement_start": "supplement_end", "special_start": "special_end"}
ENDS = {end: start for start, end in PAUSES.items()}
DONE = frozenset({"granted", "refused", "delivered", "not_accepted", "withdrawn"})
BAD_RATING = 2  # 1–2 is 差评: a follow-up task opens
FOLLOW_UP_WORKDAYS = 15
VALUE_MAX = 500
CHANNELS = {"online": "网上申请", "window": "窗口申请"}
SOURCES = {"platform": "一网通办平台", "docked": "部门业务系统"}
STAGES = {
    "draft": "草稿",
    "to_accept": "待受理",
    "in_progress": "办理中",
    "paused": "补正或特别程序中",
    "done": "已办结",
}


def owner(unit_code: str) -> str:
    """Whose webhooks hear of a unit's cases: its docked systems'."""
    return f"services:{unit_code}"


# ---------------------------------------------------------------- opening


def published_matter(session: Session, impl_code: str) -> Matter:
    found = matter_rules.published(session, impl_code)
    if found is None:
        raise ServiceError(f"事项「{impl_code}」不存在或未发布", 404, "unknown_matter")
    return found


def new_case(
    session: Session,
    keys: Keys,
    matter: Matter,
    applicant: Applicant,
    channel: str,
    source: str,
    today: date,
    bundle: Bundle | None = None,
    bundle_case: str | None = None,
) -> Case:
    if matter.applicant not in {applicant.kind, "both"}:
        who = matter_rules.APPLICANTS[matter.applicant]
        raise ServiceError(f"事项「{matter.name}」的服务对象为{who}", 403, "wrong_applicant")
    case = Case(
        case_no=uuid.uuid4().hex,  # numbered from its id below
        matter_id=matter.id,
        bundle_code=bundle.code if bundle else None,
        bundle_case=bundle_case,
        unit_code=matter.unit_code,
        applicant_kind=applicant.kind,
        applicant_hash=subject_hash(keys, applicant.subject),
        applicant_subject=keys.encrypt(applicant.subject),
        applicant_name=applicant.name,
        applicant_user_id=applicant.user_id,
        channel=channel,
        source=source,
        status="draft",
        stage="draft",
        form={},
        prefilled={},
    )
    session.add(case)
    session.flush()
    # 办件编号: the city's division code, the day, and a number no other case has.
    case.case_no = f"{REGION}{today:%Y%m%d}{case.id:010d}"
    return case


def prefill(session: Session, reader: Reader, applicant: Applicant, form: list[dict]) -> dict:
    """The form's prefilled fields as the platform reads them: one audited read per class."""
    wanted: dict[str, list[tuple[str, str]]] = {}
    for field in form:
        source = field.get("prefill") or ""
        if source:
            class_code, _, name = source.rpartition(".")
            wanted.setdefault(class_code, []).append((field["name"], name))
    found: dict[str, dict[str, Any]] = {}
    for class_code, pairs in wanted.items():
        if key_kind(session, class_code) != applicant.kind:
            continue  # a company's record cannot be looked up by a person's number
        record, masters = lookup(
            session, reader, class_code, applicant.subject, [p[1] for p in pairs]
        )
        for name, source_field in pairs:
            if record.get(source_field) is not None:
                found[name] = {
                    "value": str(record[source_field]),
                    "class": class_code,
                    "field": source_field,
                    "master": masters[0] if masters else None,
                }
    return found


def _union_form(matters: list[Matter]) -> list[dict]:
    seen: dict[str, dict] = {}
    for matter in matters:
        for field in matter.form:
            seen.setdefault(field["name"], dict(field))
    return list(seen.values())


def start(
    session: Session,
    keys: Keys,
    user: User,
    applicant: Applicant,
    impl_code: str,
    today: date,
    client_ip: str = "",
) -> Case:
    """An online application's draft, its form prefilled; the account's open draft of the same
    matter if there is one (so reloading the page reads nothing twice)."""
    matter = published_matter(session, impl_code)
    existing = session.scalar(
        select(Case).where(
            Case.applicant_user_id == user.id,
            Case.matter_id == matter.id,
            Case.status == "draft",
            Case.bundle_case.is_(None),
            Case.applicant_kind == applicant.kind,
        )
    )
    if existing is not None:
        return existing
    case = new_case(session, keys, matter, applicant, "online", "platform", today)
    reader = Reader(end_user=user.username, case_no=case.case_no, client_ip=client_ip)
    case.prefilled = prefill(session, reader, applicant, matter.form)
    case.form = {name: held["value"] for name, held in case.prefilled.items()}
    return case


def start_bundle(
    session: Session,
    keys: Keys,
    user: User,
    applicant: Applicant,
    bundle_code: str,
    today: date,
    client_ip: str = "",
) -> list[Case]:
    """一件事一次办: one draft per matter of the bundle, linked by the first one's number, one
    form for all of them, prefilled once."""
    bundle = session.get(Bundle, bundle_code)
    if bundle is None:
        raise ServiceError(f"一件事「{bundle_code}」不存在", 404, "unknown_bundle")
    matters = [published_matter(session, code) for code in bundle.matters]
    existing = bundle_drafts(session, user, bundle_code)
    if existing:
        return existing
    cases: list[Case] = []
    for matter in matters:
        first = cases[0].case_no if cases else None
        case = new_case(
            session, keys, matter, applicant, "online", "platform", today, bundle, first
        )
        cases.append(case)
    cases[0].bundle_case = cases[0].case_no
    reader = Reader(end_user=user.username, case_no=cases[0].case_no, client_ip=client_ip)
    prefilled = prefill(session, reader, applicant, _union_form(matters))
    for case, matter in zip(cases, matters, strict=True):
        names = {f["name"] for f in matter.form}
        case.prefilled = {k: v for k, v in prefilled.items() if k in names}
        case.form = {k: v["value"] for k, v in case.prefilled.items()}
    return cases


def bundle_drafts(session: Session, user: User, bundle_code: str) -> list[Case]:
    first = session.scalar(
        select(Case.bundle_case).where(
            Case.applicant_user_id == user.id,
            Case.bundle_code == bundle_code,
            Case.status == "draft",
        )
    )
    return linked(session, first) if first else []


def linked(session: Session, bundle_case: str) -> list[Case]:
    return list(
        session.scalars(select(Case).where(Case.bundle_case == bundle_case).order_by(Case.id))
    )


# ---------------------------------------------------------------- the form


def matter_of(session: Session, case: Case) -> Matter:
    return session.get(Matter, case.matter_id)


def save(session: Session, cases: list[Case], values: dict[str, Any]) -> list[Discrepancy]:
    """The applicant's answers for one case or a bundle's cases. Locked prefilled fields must
    keep the value read from the base (checked here, at every save, whatever the page did);
    a changed unlocked one is kept and reported to the department the value came from."""
    if any(c.status != "draft" for c in cases):
        raise ServiceError("已提交的办件不能再修改表单", 409, "submitted")
    matters = [matter_of(session, c) for c in cases]
    form = {f["name"]: f for f in _union_form(matters)}
    unknown = sorted(set(values) - set(form))
    if unknown:
        raise ServiceError(f"表单没有这些字段：{'、'.join(unknown)}", 422, "unknown_field")
    prefilled: dict[str, dict] = {}
    for case in cases:
        prefilled |= case.prefilled
    clean: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ServiceError(f"「{form[name]['label']}」应为文本", 422, "bad_value")
        text = str(value).strip()
        if len(text) > VALUE_MAX or any(ord(c) < 32 for c in text):
            raise ServiceError(f"「{form[name]['label']}」过长或含控制字符", 422, "bad_value")
        held = prefilled.get(name)
        if form[name].get("locked") and held is not None and text != held["value"]:
            raise ServiceError(
                f"「{form[name]['label']}」由基础库预填并锁定，不能修改（如有误请联系数据提供部门）",
                422,
                "locked_field",
            )
        clean[name] = text
    for case, matter in zip(cases, matters, strict=True):
        names = {f["name"] for f in matter.form}
        case.form = {**case.form, **{k: v for k, v in clean.items() if k in names}}
    return _report(session, cases[0], prefilled, clean)


def _report(
    session: Session, case: Case, prefilled: dict, values: dict[str, str]
) -> list[Discrepancy]:
    """One open report per corrected field, against the first case (a bundle reports once)."""
    reports = []
    for name, text in values.items():
        held = prefilled.get(name)
        if held is None:
            continue
        found = session.scalar(
            select(Discrepancy).where(
                Discrepancy.case_id == case.id, Discrepancy.field == held["field"]
            )
        )
        if text == held["value"] or not text:
            if found is not None and found.status == "open":
                session.delete(found)  # put back as the base has it: nothing to report
            continue
        claimed = masked(session, held["class"], held["field"], text)
        if found is None:
            found = Discrepancy(
                case_id=case.id,
                field=held["field"],
                class_code=held["class"],
                master_id=held["master"],
                provider_code=value_owner(
                    session,
                    held["class"],
                    [held["master"]] if held["master"] else [],
                    held["field"],
                ),
                held=masked(session, held["class"], held["field"], held["value"]),
                claimed=claimed,
            )
            session.add(found)
        else:
            found.claimed = claimed
        reports.append(found)
    return reports


def missing_materials(session: Session, case: Case) -> list[str]:
    """Required materials not replaced by shared data and not uploaded yet."""
    matter = matter_of(session, case)
    uploaded = set(session.scalars(select(Upload.material).where(Upload.case_id == case.id)))
    return [
        m.name
        for m in matter.materials
        if m.need == "required" and not matter_rules.exempt(m) and m.name not in uploaded
    ]


def submit(session: Session, cases: list[Case], by: str, today: date) -> None:
    """申请: every field answered, every required paper there; all of a bundle or none."""
    for case in cases:
        matter = matter_of(session, case)
        empty = [
            f["label"]
            for f in matter.form
            if not f.get("optional") and not case.form.get(f["name"])
        ]
        if empty:
            raise ServiceError(f"请填写：{'、'.join(empty)}", 422, "incomplete")
        missing = missing_materials(session, case)
        if missing:
            raise ServiceError(
                f"「{matter.name}」缺少材料：{'、'.join(missing)}", 422, "missing_material"
            )
    for case in cases:
        step(session, case, "submitted", by, today, today)


# ---------------------------------------------------------------- steps and the clock


def _stage(case: Case) -> str:
    if case.status == "draft":
        return "draft"
    if case.status in DONE:
        return "done"
    if case.status in PAUSES:
        return "paused"
    return "in_progress" if case.accepted_on else "to_accept"


def check_day(on: date, today: date) -> None:
    """A step's day: not ahead of today, and inside the working-day calendar."""
    if on > today:
        raise ServiceError(f"日期 {on} 晚于今天（{today}）", 422, "bad_date")
    if on < CALENDAR_FIRST:
        raise ServiceError(f"日期 {on} 早于 {CALENDAR_FIRST}", 422, "bad_date")


def step(
    session: Session,
    case: Case,
    new: str,
    by: str,
    on: date,
    today: date,
    note: str = "",
    unit_code: str = "",
) -> CaseEvent:
    """One step, if the transition table allows it after the case's current status. ``today`` is
    the city's day on the app's clock (never the machine's: a UTC server is a day behind Changsha
    from 00:00 to 08:00)."""
    current = None if case.status == "draft" else case.status
    try:
        TRANSITIONS.check(current, new)
    except TransitionRefused as exc:
        raise ServiceError(f"办件 {case.case_no}：{exc}", 409, "transition_refused") from exc
    check_day(on, today)
    last = session.scalar(select(func.max(CaseEvent.on)).where(CaseEvent.case_id == case.id))
    if last is not None and on < last:
        raise ServiceError(f"日期 {on} 早于上一步（{last}）", 422, "bad_date")
    matter = matter_of(session, case)
    if new == "submitted":
        case.submitted_on = on
    elif new == "accepted" and case.accepted_on is None:
        case.accepted_on = on
        case.deadline = add_workdays(on, matter.promised_days)[0]
    elif new in PAUSES and case.accepted_on is not None:
        case.paused_since = on
    elif new in ENDS and case.paused_since is not None:
        case.paused_days += workdays_between(case.paused_since, on)
        case.paused_since = None
        case.deadline = add_workdays(case.accepted_on, matter.promised_days + case.paused_days)[0]
    elif new in FINISHED:
        case.finished_on, case.result = on, new
    case.status = new
    case.stage = _stage(case)
    event = CaseEvent(
        case_id=case.id,
        status=new,
        on=on,
        by=by[:64],
        unit_code=unit_code or case.unit_code,
        note=note[:2000],
    )
    session.add(event)
    changes.mark(session, "services")  # a case moved: the figures of the cases are stale
    outbox.enqueue(
        session,
        owner(case.unit_code),
        "case.status",
        {"case_no": case.case_no, "matter": matter.impl_code, "status": new, "on": on.isoformat()},
    )
    return event


def overdue(case: Case, today: date) -> bool:
    """Past its 承诺时限: finished after it, or still running beyond it (a pause stops it)."""
    if case.deadline is None or case.stage == "paused":
        return False
    return (case.finished_on or today) > case.deadline


def visit(session: Session, case: Case, on: date, place: str, by: str) -> Visit:
    """The applicant came in person: 一次办率 counts these."""
    found = Visit(case_id=case.id, on=on, place=place[:100], by=by[:64])
    session.add(found)
    case.visits += 1
    changes.mark(session, "services")
    return found


def history(session: Session, case: Case) -> list[CaseEvent]:
    return list(
        session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        )
    )


# ---------------------------------------------------------------- 好差评


def rate(session: Session, case: Case, score: int, reason: str, today: date) -> FollowUp | None:
    """After 办结, once: 1–5 with a reason; 差评 (1–2) opens a follow-up due in 15 working days."""
    if case.finished_on is None:
        raise ServiceError("办结后才能评价", 409, "not_finished")
    if case.rating is not None:
        raise ServiceError("此办件已评价", 409, "rated")
    if not isinstance(score, int) or not 1 <= score <= 5:
        raise ServiceError("评价应为 1–5 分", 422, "bad_rating")
    if score <= BAD_RATING and not reason.strip():
        raise ServiceError("差评请写明原因", 422, "bad_rating")
    case.rating, case.rating_reason = score, reason.strip()[:1000]
    changes.mark(session, "services")
    if score > BAD_RATING:
        return None
    follow = FollowUp(
        case_id=case.id, unit_code=case.unit_code, due=add_workdays(today, FOLLOW_UP_WORKDAYS)[0]
    )
    session.add(follow)
    return follow


# ---------------------------------------------------------------- finding cases


def by_number(session: Session, case_no: str) -> Case:
    case = session.scalar(select(Case).where(Case.case_no == case_no))
    if case is None:
        raise ServiceError(f"办件「{case_no}」不存在", 404, "unknown_case")
    return case


@dataclass(frozen=True)
class QueueFilter:
    stage: str = "to_accept"
    matter: str = ""  # an implementation code
    channel: str = ""
    overdue: bool = False


def queue(
    session: Session,
    unit_code: str,
    f: QueueFilter,
    today: date,
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> list[Case]:
    """A unit's cases at one stage. Running cases come earliest deadline first, so the overdue
    lead; the others oldest first. ``after``: the last row's (deadline, id) or (id,)."""
    if f.stage not in STAGES:
        raise ServiceError(f"stage 应为 {'、'.join(STAGES)} 之一", 422, "bad_filter")
    query = select(Case).where(Case.unit_code == unit_code, Case.stage == f.stage)
    if f.matter:
        ids = select(Matter.id).where(Matter.impl_code == f.matter).scalar_subquery()
        query = query.where(Case.matter_id.in_(ids))
    if f.channel:
        query = query.where(Case.channel == f.channel)
    by_deadline = f.stage == "in_progress"
    if f.overdue:
        if not by_deadline:
            raise ServiceError("只有办理中的办件可以按超期筛选", 422, "bad_filter")
        query = query.where(Case.deadline < today)
    order = [Case.deadline, Case.id] if by_deadline else [Case.id]
    if after is not None:
        query = query.where(keyset.after(order, after))
    return list(session.scalars(query.order_by(*order).limit(limit)))


def cursor_of(case: Case, stage: str) -> str:
    """The opaque position after ``case`` in its queue."""
    if stage == "in_progress":
        return keyset.encode([case.deadline.isoformat(), case.id])
    return keyset.encode([case.id])


def position(cursor: str, stage: str) -> tuple[Any, ...]:
    """What ``cursor_of`` encoded, checked (422 when it is not one of ours)."""
    values = keyset.decode(cursor) or []
    try:
        if stage == "in_progress" and len(values) == 2:
            return (date.fromisoformat(values[0]), _row_id(values[1]))
        if stage != "in_progress" and len(values) == 1:
            return (_row_id(values[0]),)
    except (TypeError, ValueError):
        pass
    raise ServiceError("cursor 无效", 422, "bad_cursor")


def _row_id(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < keyset.INT64:
        raise ValueError(value)
    return value


def of_applicant(session: Session, keys: Keys, user: User, limit: int = 200) -> list[Case]:
    """An account's cases: those it opened and those opened for its identities elsewhere."""
    hashes = list(session.scalars(select(Identity.subject_hash).where(Identity.user_id == user.id)))
    query = select(Case).where(
        (Case.applicant_user_id == user.id) | Case.applicant_hash.in_(hashes)
    )
    return list(session.scalars(query.order_by(Case.id.desc()).limit(limit)))


def may_follow(session: Session, user: User | None, case: Case) -> bool:
    """The applicant's own account (or one of its identities)."""
    if user is None:
        return False
    if case.applicant_user_id == user.id:
        return True
    return bool(
        session.scalar(
            select(Identity.id).where(
                Identity.user_id == user.id, Identity.subject_hash == case.applicant_hash
            )
        )
    )
