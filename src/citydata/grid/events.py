"""An event from 信息收集 to 结案. A report is placed in its cell (a point outside every cell is
refused), gets the SLA version in force and, for a citizen's words, the classifier's proposals;
a report within 50 m of an open event of the same category is offered as that event. Steps are
an append-only history whose allowed moves are ``statuses.toml``; each step recomputes the
running stage's deadline (派遣, 处置, 核查) and its "three times over" mark, and tells the
handling unit's docked systems by webhook after commit."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citydata.bases.models import Master
from citydata.catalog.models import Unit
from citydata.grid import cells, classify, routing, sla
from citydata.grid.models import Event, Reporter, Routing, Sla, Step
from citydata.keys import Keys
from citydata.mechanisms import changes, outbox
from citydata.mechanisms.history import TransitionRefused, Transitions

TRANSITIONS = Transitions.load(Path(__file__).with_name("statuses.toml"))
REGION = "430100"
NEAR_METRES = 50.0
OPEN_STATUSES = frozenset(TRANSITIONS.labels) - TRANSITIONS.final
SOURCES = {"citizen": "市民", "inspector": "监督员", "department": "部门", "sensor": "感知设备"}
CHANNELS = {"open311": "Open311", "page": "平台页面", "docked": "部门业务系统"}
# Which stage's clock a status starts (the stage's limit counts from that step).
STAGE_AFTER = {
    "registered": "dispatch",
    "dispatched": "handle",
    "rework": "handle",
    "handled": "verify",
}
TEXT_MAX = 2000


class GridError(ValueError):
    """A refusal the caller can act on: ``status`` is the HTTP code, ``code`` a stable name."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid"):
        super().__init__(message)
        self.status = status
        self.code = code


def owner(unit_code: str) -> str:
    """Whose webhooks hear of a unit's events: its docked systems'."""
    return f"grid:{unit_code}"


# ---------------------------------------------------------------- reports


@dataclass(frozen=True)
class Report:
    description: str
    longitude: float
    latitude: float
    category: str | None = None  # None: the classifier proposes, the dispatcher decides
    source: str = "citizen"
    channel: str = "page"
    address: str = ""
    component_id: str | None = None
    reporter_name: str = ""
    reporter_contact: str = ""
    client_id: int | None = None
    photo_key: str | None = None
    photo_sha256: str | None = None


def _metres(lon1: float, lat1: float, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine, metres)."""
    p1, p2 = math.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6_371_000 * np.arcsin(np.sqrt(a))


def near(
    session: Session, category: str, longitude: float, latitude: float, exclude: int | None = None
) -> Event | None:
    """The nearest open event of ``category`` within 50 m: a box in SQL (indexed), then the
    true distance for the few inside it."""
    dlat = NEAR_METRES / 111_000
    dlon = dlat / max(math.cos(math.radians(latitude)), 0.01)
    found = session.scalars(
        select(Event).where(
            Event.category == category,
            Event.latitude.between(latitude - dlat, latitude + dlat),
            Event.longitude.between(longitude - dlon, longitude + dlon),
            Event.status.in_(OPEN_STATUSES),
            Event.duplicate_of.is_(None),
            Event.id != (exclude or 0),
        )
    ).all()
    if not found:
        return None
    metres = _metres(
        longitude,
        latitude,
        np.array([e.longitude for e in found]),
        np.array([e.latitude for e in found]),
    )
    best = int(np.argmin(metres))
    return found[best] if metres[best] <= NEAR_METRES else None


def _check(report: Report) -> None:
    if report.source not in SOURCES:
        raise GridError(
            f"来源「{report.source}」无效：须为 {'、'.join(SOURCES)}", 422, "bad_source"
        )
    if not report.description.strip() and report.category is None and not report.component_id:
        raise GridError("请描述问题、选择类别或给出部件标识码", 422, "no_description")
    if len(report.description) > TEXT_MAX or len(report.address) > 200:
        raise GridError(f"描述最多 {TEXT_MAX} 个字符，地址最多 200 个字符", 422, "too_long")
    for value, name, low, high in (
        (report.longitude, "经度", -180, 180),
        (report.latitude, "纬度", -90, 90),
    ):
        if (
            not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise GridError(f"{name}「{value}」无效", 400, "bad_location")
    if report.category is not None and sla.category(report.category) is None:
        raise GridError(f"类别「{report.category}」不存在", 404, "unknown_category")
    if report.component_id is not None and (
        len(report.component_id) != 16 or not report.component_id.isdigit()
    ):
        raise GridError(
            "部件标识码须为 16 位数字（行政区划 6 位 + 大类 2 位 + 小类 2 位 + 序号 6 位）",
            422,
            "bad_component",
        )


def _component_category(session: Session, component_id: str, category: str | None) -> str:
    """The category a named component's 部件标识码 says (digits 7–10 are its 大类 and 小类): a
    report about a component is about that kind of thing, so a 部件 category given beside it
    must be the same, and the component must be one the city-component base holds."""
    said = f"B{component_id[6:10]}"
    kind = sla.category(said)
    if kind is None:
        raise GridError(
            f"部件标识码「{component_id}」中的类别 {component_id[6:10]} 不在部件分类中",
            422,
            "bad_component",
        )
    if category is not None and category.startswith("B") and category != said:
        raise GridError(
            f"部件标识码「{component_id}」是{kind.name}（{said}），与所报类别 {category} 不符",
            422,
            "component_mismatch",
        )
    known = session.scalar(
        select(Master.id).where(
            Master.base == "city_component",
            Master.key == component_id,
            Master.merged_into.is_(None),
            Master.version > 0,
        )
    )
    if known is None:
        raise GridError(
            f"部件标识码「{component_id}」不在城市部件基础库中", 422, "unknown_component"
        )
    return category or said


def report(
    session: Session,
    keys: Keys,
    given: Report,
    actor: str,
    at: datetime | None = None,
    grid: cells.Locator | None = None,
) -> Event:
    """信息收集: a new event, placed, classified and checked for a duplicate nearby."""
    _check(given)
    at = at or datetime.now(UTC)
    placed = cells.cell_of(grid or cells.locator(session), given.longitude, given.latitude)
    if placed is None:
        raise GridError(
            f"点位（{given.longitude}, {given.latitude}）不在本市任何单元网格内",
            422,
            "outside_city",
        )
    cell, division = placed
    proposals: list = []
    model = classify.latest(session) if given.description.strip() else None
    if model is not None:
        proposals = [list(p) for p in model.propose([given.description])[0]]
    code = given.category
    if given.component_id is not None:
        code = _component_category(session, given.component_id, code)
    if code is None:
        best = proposals[0] if proposals else None
        code = best[0] if best and best[1] >= classify.THRESHOLD else "E0601"
    event = Event(
        event_no=f"t{uuid.uuid4().hex[:20]}",  # until the id is known
        token=uuid.uuid4().hex,
        category=code,
        sla_id=sla.current(session, code, at).id,
        source=given.source,
        channel=given.channel,
        description=given.description.strip(),
        address=given.address.strip(),
        longitude=float(given.longitude),
        latitude=float(given.latitude),
        grid_code=cell,
        division=division,
        component_id=given.component_id,
        photo_key=given.photo_key,
        photo_sha256=given.photo_sha256,
        suggested=proposals,
        reported_at=at,
        updated_at=at,
    )
    nearby = near(session, code, event.longitude, event.latitude)
    event.duplicate_of = nearby.id if nearby else None
    session.add(event)
    session.flush()
    event.event_no = f"{REGION}{(at + sla.BEIJING).strftime('%Y%m%d')}{event.id:08d}"
    session.add(
        Reporter(
            event_id=event.id,
            via_event_id=event.id,
            kind=given.source,
            name=given.reporter_name[:100],
            contact=keys.encrypt(given.reporter_contact) if given.reporter_contact else "",
            client_id=given.client_id,
        )
    )
    _append(session, event, "reported", actor, at, None, event.longitude, event.latitude, "")
    return event


# ---------------------------------------------------------------- steps


def _append(
    session: Session,
    event: Event,
    status: str,
    actor: str,
    at: datetime,
    unit_code: str | None,
    longitude: float | None,
    latitude: float | None,
    note: str,
) -> Step:
    step = Step(
        event_id=event.id,
        status=status,
        actor=actor[:100],
        unit_code=unit_code,
        longitude=longitude,
        latitude=latitude,
        note=note[:TEXT_MAX],
        at=at,
    )
    session.add(step)
    changes.mark(session, "grid")  # an event moved: the figures of the events are stale
    return step


def limits_of(version: Sla) -> dict[str, tuple[int, str]]:
    return {stage: tuple(getattr(version, stage)) for stage in sla.STAGES}


def advance(event: Any, status: str, at: datetime, limits: dict[str, tuple[int, str]]) -> None:
    """What a step does to an event's derived fields (status, the running stage's clock, 返工,
    结案): the one place that says it, for live steps and for a history loaded at once."""
    if status == "handled":
        due = event.due_at
        event.handled_late = bool(due and _aware(at) > _aware(due))
    if status == "rework":
        event.reworks = (event.reworks or 0) + 1
    if status in STAGE_AFTER:
        stage = STAGE_AFTER[status]
        amount, measure = limits[stage]
        event.stage, event.stage_started = stage, at
        event.due_at = sla.deadline(at, amount, measure)
        event.late_at = sla.deadline(at, 3 * amount, measure)
    elif status != "handling":
        event.stage, event.stage_started, event.due_at, event.late_at = "", None, None, None
    if status == "closed":
        event.closed_at = at
    event.status, event.updated_at = status, at


def step(
    session: Session,
    event: Event,
    status: str,
    actor: str,
    at: datetime | None = None,
    note: str = "",
    unit_code: str | None = None,
    longitude: float | None = None,
    latitude: float | None = None,
) -> Step:
    """One move of ``event``, if the table allows it from its current status."""
    at = at or datetime.now(UTC)
    try:
        TRANSITIONS.check(event.status, status)
    except TransitionRefused as exc:
        raise GridError(str(exc), 409, "transition_refused") from exc
    if len(note) > TEXT_MAX:
        raise GridError(f"说明最多 {TEXT_MAX} 个字符", 422, "too_long")
    if status in {"rework", "voided", "suspended"} and not note.strip():
        raise GridError(f"「{TRANSITIONS.label(status)}」须说明理由", 422, "reason_required")
    if status in TRANSITIONS.final:
        _tell_reporters(session, event, at)
    advance(event, status, at, limits_of(session.get(Sla, event.sla_id)))
    found = _append(
        session, event, status, actor, at, unit_code or event.unit_code, longitude, latitude, note
    )
    if event.unit_code:
        outbox.enqueue(
            session,
            owner(event.unit_code),
            "event.step",
            {"event_no": event.event_no, "status": status, "at": at.isoformat()},
        )
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tell_reporters(session: Session, event: Event, at: datetime) -> None:
    session.execute(
        update(Reporter)
        .where(Reporter.event_id == event.id, Reporter.told_at.is_(None))
        .values(told_at=at)
    )


def register(
    session: Session,
    event: Event,
    actor: str,
    at: datetime | None = None,
    category: str | None = None,
) -> Step:
    """立案, with the dispatcher's category (the classifier only proposed one). A report still
    offered as a duplicate must be merged or kept apart first."""
    if event.duplicate_of is not None and event.status == "reported":
        raise GridError("该上报疑似重复：请先合并或确认为新事件", 409, "duplicate_pending")
    if category is not None and category != event.category:
        if sla.category(category) is None:
            raise GridError(f"类别「{category}」不存在", 404, "unknown_category")
        event.category = category
        event.sla_id = sla.current(session, category, at).id
    return step(session, event, "registered", actor, at)


def keep_apart(session: Session, event: Event) -> None:
    """The dispatcher finds the report is not the nearby event: it goes on as its own."""
    if event.status != "reported":
        raise GridError("只有信息收集阶段的上报可以确认为新事件", 409, "not_reported")
    event.duplicate_of = None


def merge(session: Session, event: Event, actor: str, at: datetime | None = None) -> Event:
    """The report is the nearby event: it is voided as a duplicate, its reporters join that
    event (and are told its outcome)."""
    into = session.get(Event, event.duplicate_of) if event.duplicate_of else None
    if into is None:
        raise GridError("该上报没有待合并的事件", 409, "nothing_to_merge")
    if into.status not in OPEN_STATUSES:
        raise GridError(
            f"事件 {into.event_no} 已{TRANSITIONS.label(into.status)}，不能合并", 409, "closed"
        )
    session.execute(update(Reporter).where(Reporter.event_id == event.id).values(event_id=into.id))
    step(session, event, "voided", actor, at, note=f"重复上报，已并入事件 {into.event_no}")
    return into


def dispatch(
    session: Session,
    event: Event,
    actor: str,
    at: datetime | None = None,
    unit_code: str | None = None,
    reason: str = "",
) -> Step:
    """派遣 by the rules, or to ``unit_code`` by the dispatcher (改派, with a reason)."""
    at = at or datetime.now(UTC)
    if unit_code is None:
        unit_code, rule = routing.route(event.category, event.division, event.grid_code, at)
    else:
        if session.get(Unit, unit_code) is None:
            raise GridError(f"单位「{unit_code}」不存在", 404, "unknown_unit")
        if not reason.strip():
            raise GridError("人工改派须说明理由", 422, "reason_required")
        rule = "人工派遣"
    event.unit_code = unit_code
    session.add(
        Routing(event_id=event.id, unit_code=unit_code, rule=rule, by=actor, reason=reason, at=at)
    )
    return step(session, event, "dispatched", actor, at, note=reason or rule, unit_code=unit_code)


def by_no(session: Session, event_no: str) -> Event:
    found = session.scalar(select(Event).where(Event.event_no == event_no))
    if found is None:
        raise GridError(f"事件「{event_no}」不存在", 404, "not_found")
    return found


def history(session: Session, event: Event) -> list[Step]:
    return list(session.scalars(select(Step).where(Step.event_id == event.id).order_by(Step.id)))


def overdue_flags(event: Event, now: datetime) -> tuple[bool, bool]:
    """(overdue, three times over) for the running stage."""
    if event.due_at is None:
        return False, False
    return _aware(now) > _aware(event.due_at), bool(
        event.late_at and _aware(now) > _aware(event.late_at)
    )
