"""The service platform's one door for pages, the docking API and the CLI: matters, identities,
cases from every channel, the staff's steps, docked systems, figures. The rules live in the
modules beside it (matters, identity, cases, uploads, docking, metrics, publishing); this
module joins them the way each caller needs.

A refused operation raises ``ServiceError``; callers roll its writes back, except a refused
identity check, whose failure count and audited read must stay (``keeps_writes``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.catalog.models import Unit
from citydata.keys import Keys
from citydata.services import cases, docking, identity, matters, metrics, uploads  # noqa: F401
from citydata.services.cases import QueueFilter, by_number, linked, matter_of, overdue
from citydata.services.identity import Applicant
from citydata.services.models import Bundle, Case, Discrepancy, DockedSystem, FollowUp, Matter
from citydata.services.permissions import may_handle, may_take_at_window
from citydata.services.shared import POPULATION, Reader, ServiceError, verify

__all__ = ["ServiceError", "cases", "docking", "identity", "matters", "metrics", "uploads"]

STAFF_STEPS = {  # what a unit's staff may do from each stage of a case, as buttons
    "to_accept": ["accepted", "not_accepted", "supplement_start"],
    "in_progress": [
        "handling",
        "approving",
        "supplement_start",
        "special_start",
        "granted",
        "refused",
    ],
    "paused": ["supplement_end", "special_end"],
}


def keeps_writes(exc: ServiceError) -> bool:
    """A refusal whose writes (a failure counted, a verification audited) must be committed."""
    return exc.code in {"not_verified", "throttled"}


# ---------------------------------------------------------------- cases, as callers see them


def case_dict(session: Session, keys: Keys, case: Case, today: date, full: bool = False) -> dict:
    matter = matter_of(session, case)
    out = {
        "case_no": case.case_no,
        "matter": matter.impl_code,
        "matter_name": matter.name,
        "matter_version": matter.version,
        "unit": case.unit_code,
        "bundle": case.bundle_code,
        "bundle_case": case.bundle_case,
        "channel": case.channel,
        "source": case.source,
        "status": case.status,
        "status_name": "草稿" if case.status == "draft" else cases.TRANSITIONS.label(case.status),
        "stage": case.stage,
        "submitted_on": case.submitted_on,
        "accepted_on": case.accepted_on,
        "deadline": case.deadline,
        "finished_on": case.finished_on,
        "result": case.result,
        "overdue": overdue(case, today),
        "visits": case.visits,
        "rating": case.rating,
    }
    if full:
        out["applicant"] = {
            "kind": case.applicant_kind,
            "name": case.applicant_name,
            "number": keys.decrypt(case.applicant_subject),
        }
        out["form"] = dict(case.form)
        out["history"] = [
            {"status": e.status, "on": e.on, "by": e.by, "unit": e.unit_code, "note": e.note}
            for e in cases.history(session, case)
        ]
    return out


def own_case(session: Session, user: User | None, case_no: str) -> Case:
    """A case its applicant may see (404 for anyone else: a number tells nothing)."""
    case = session.scalar(select(Case).where(Case.case_no == case_no))
    if case is None or not cases.may_follow(session, user, case):
        raise ServiceError(f"办件「{case_no}」不存在", 404, "unknown_case")
    return case


def staff_case(session: Session, user: User, case_no: str) -> Case:
    case = by_number(session, case_no)
    if not may_handle(user, case.unit_code):
        raise ServiceError("只有承办单位的工作人员可以办理此办件", 403, "forbidden")
    return case


def act(
    session: Session, user: User, case_no: str, status: str, on: date, today: date, note: str = ""
) -> Case:
    """A staff step on a case of the user's unit."""
    case = staff_case(session, user, case_no)
    cases.step(
        session, case, status, user.username, on, today, note, user.unit_code or case.unit_code
    )
    return case


def record_visit(session: Session, user: User, case_no: str, on: date, place: str) -> Case:
    case = staff_case(session, user, case_no)
    cases.visit(session, case, on, place or "窗口", user.username)
    return case


def take_at_window(
    session: Session,
    keys: Keys,
    clerk: User,
    impl_code: str,
    id_number: str,
    name: str,
    values: dict[str, Any],
    today: date,
    place: str = "市民之家综合窗口",
    client_ip: str = "",
) -> Case:
    """一窗受理: the applicant is present with an ID card; the clerk checks it against the
    population base, opens the case for the matter's unit, enters the form and submits it; the
    visit is recorded."""
    matter = cases.published_matter(session, impl_code)
    if not may_take_at_window(clerk, matter.unit_code):
        raise ServiceError("只有政务服务中心窗口或承办单位的工作人员可以受理", 403, "forbidden")
    number = (id_number or "").strip().upper()
    reader = Reader(end_user=clerk.username, case_no="一窗受理", client_ip=client_ip)
    if not number or not verify(session, reader, POPULATION, number, {"name": name.strip()}):
        raise ServiceError("申请人身份核验未通过：姓名与身份证号码不一致", 400, "not_verified")
    applicant = Applicant("person", number, name.strip())
    case = cases.new_case(session, keys, matter, applicant, "window", "platform", today)
    reader = Reader(end_user=clerk.username, case_no=case.case_no, client_ip=client_ip)
    case.prefilled = cases.prefill(session, reader, applicant, matter.form)
    case.form = {k: v["value"] for k, v in case.prefilled.items()}
    cases.save(session, [case], values)
    cases.visit(session, case, today, place, clerk.username)
    cases.submit(session, [case], clerk.username, today)
    return case


# ---------------------------------------------------------------- docked systems


def docked_case(session: Session, system: DockedSystem, case_no: str) -> Case:
    case = session.scalar(select(Case).where(Case.case_no == case_no))
    if case is None or case.unit_code != system.unit_code:
        raise ServiceError(f"办件「{case_no}」不存在", 404, "unknown_case")
    return case


def open_docked(
    session: Session,
    keys: Keys,
    system: DockedSystem,
    impl_code: str,
    applicant: Applicant,
    channel: str,
    values: dict[str, Any],
    today: date,
) -> Case:
    """A case the unit's own system received (its own portal, its own window): the system
    authenticated the applicant; the platform keeps the case with the others."""
    matter = cases.published_matter(session, impl_code)
    if matter.unit_code != system.unit_code:
        raise ServiceError(f"事项「{impl_code}」不属于本单位", 403, "not_your_matter")
    if channel not in cases.CHANNELS:
        raise ServiceError("channel 应为 online 或 window", 422, "bad_channel")
    case = cases.new_case(session, keys, matter, applicant, channel, "docked", today)
    cases.save(session, [case], values)
    if channel == "window":
        cases.visit(session, case, today, system.name, system.name)
    cases.step(session, case, "submitted", system.name, today, today)
    return case


def docked_step(
    session: Session,
    system: DockedSystem,
    case_no: str,
    status: str,
    on: date,
    today: date,
    note: str = "",
) -> Case:
    case = docked_case(session, system, case_no)
    cases.step(session, case, status, system.name, on, today, note, system.unit_code)
    return case


# ---------------------------------------------------------------- what a unit's data caused


def discrepancies(session: Session, unit_code: str | None, status: str = "open") -> list[dict]:
    """Corrections applicants made to values that came from ``unit_code``'s records."""
    query = (
        select(Discrepancy, Case.case_no)
        .join(Case, Case.id == Discrepancy.case_id)
        .where(Discrepancy.status == status)
        .order_by(Discrepancy.id.desc())
        .limit(500)
    )
    if unit_code:
        query = query.where(Discrepancy.provider_code == unit_code)
    return [
        {
            "id": d.id,
            "case_no": case_no,
            "class_code": d.class_code,
            "field": d.field,
            "master_id": d.master_id,
            "provider": d.provider_code,
            "held": d.held,
            "claimed": d.claimed,
            "at": d.at,
            "status": d.status,
        }
        for d, case_no in session.execute(query)
    ]


def close_discrepancy(session: Session, user: User, report_id: int) -> Discrepancy:
    found = session.get(Discrepancy, report_id)
    if found is None or not may_handle(user, found.provider_code):
        raise ServiceError(f"报告 {report_id} 不存在", 404, "not_found")
    found.status = "closed"
    return found


def follow_ups(session: Session, unit_code: str | None) -> list[FollowUp]:
    query = select(FollowUp).where(FollowUp.status == "open").order_by(FollowUp.due)
    if unit_code:
        query = query.where(FollowUp.unit_code == unit_code)
    return list(session.scalars(query.limit(500)))


# ---------------------------------------------------------------- the portal's lists


def bundles(session: Session) -> list[Bundle]:
    return list(session.scalars(select(Bundle).order_by(Bundle.code)))


def bundle_matters(session: Session, bundle: Bundle) -> list[Matter]:
    found = [matters.published(session, code) for code in bundle.matters]
    return [m for m in found if m is not None]


def unit_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Unit.code, Unit.short_name)).all())


def counts(session: Session) -> dict[str, int]:
    return {
        "matters": session.scalar(
            select(func.count()).select_from(Matter).where(Matter.status == "published")
        )
        or 0,
        "cases": session.scalar(select(func.count()).select_from(Case)) or 0,
    }


def bundle_view(session: Session, keys: Keys, case: Case, today: date) -> list[dict]:
    """The cases linked with ``case`` by its bundle, for the staff's bundle view."""
    if not case.bundle_case:
        return []
    return [case_dict(session, keys, c, today) for c in linked(session, case.bundle_case)]


def queue_rows(
    session: Session,
    keys: Keys,
    unit_code: str,
    f: QueueFilter,
    today: date,
    cursor: str = "",
    limit: int = 50,
) -> tuple[list[dict], str | None]:
    after = cases.position(cursor, f.stage) if cursor else None
    found = cases.queue(session, unit_code, f, today, after, limit + 1)
    more = len(found) > limit
    found = found[:limit]
    rows = [
        case_dict(session, keys, c, today) | {"applicant_name": c.applicant_name} for c in found
    ]
    return rows, (cases.cursor_of(found[-1], f.stage) if more and found else None)
