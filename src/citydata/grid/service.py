"""The grid's door for pages, the docked API, Open311 and the CLI: an event as a dict (names,
not codes; reporters' contacts never), the queues, the page actions with their permission
checks, and a docked system's moves on the events of its own unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.catalog.models import Unit
from citydata.db import keyset
from citydata.grid import events, permissions, sla
from citydata.grid.events import OPEN_STATUSES, TRANSITIONS, GridError
from citydata.grid.models import Cell, Event, Reporter, Routing, Step
from citydata.standards.divisions import all_divisions

__all__ = ["GridError", "event_dict", "event_dicts", "queue", "act", "docked_event", "docked_step"]


def division_names() -> dict[str, str]:
    """Code -> today's name of every division the grid may hold (the cells' districts)."""
    region = events.REGION[:4]
    return {d.code: d.name for d in all_divisions() if d.code.startswith(region) and d.end is None}


def unit_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Unit.code, Unit.short_name)).all())


def event_dicts(
    session: Session, found: list[Event], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Events for a queue or a list: the unit names, the cells and the numbers of the events
    they were merged into read once for all of them, not once per event."""
    return _dicts(session, found, now or datetime.now(UTC), unit_names(session))


def _dicts(
    session: Session, found: list[Event], now: datetime, units: dict[str, str]
) -> list[dict[str, Any]]:
    codes = {e.grid_code for e in found}
    cells = {c.grid_code: c for c in session.scalars(select(Cell).where(Cell.grid_code.in_(codes)))}
    merged_ids = {e.duplicate_of for e in found if e.duplicate_of}
    numbers = select(Event.id, Event.event_no).where(Event.id.in_(merged_ids))
    merged = {event_id: number for event_id, number in session.execute(numbers)}
    out = []
    for event in found:
        overdue, late = events.overdue_flags(event, now)
        kind = sla.category(event.category)
        cell = cells.get(event.grid_code)
        out.append(
            {
                "event_no": event.event_no,
                "category": event.category,
                "category_name": kind.full_name if kind else event.category,
                "status": event.status,
                "status_name": TRANSITIONS.label(event.status),
                "source": events.SOURCES.get(event.source, event.source),
                "description": event.description,
                "address": event.address,
                "longitude": event.longitude,
                "latitude": event.latitude,
                "grid_code": event.grid_code,
                "division": event.division,
                "street": cell.street if cell else "",
                "community": cell.community if cell else "",
                "component_id": event.component_id,
                "unit": event.unit_code,
                "unit_name": units.get(event.unit_code or "", ""),
                "reported_at": _iso(event.reported_at),
                "stage": sla.STAGE_NAMES.get(event.stage, ""),
                "due_at": _iso(event.due_at),
                "overdue": overdue,
                "three_times_overdue": late,
                "reworks": event.reworks,
                "duplicate_of": merged.get(event.duplicate_of) if event.duplicate_of else None,
                "suggested": [
                    {"category": c, "name": _category_name(c), "probability": p}
                    for c, p in event.suggested
                ],
            }
        )
    return out


def event_dict(
    session: Session, event: Event, now: datetime | None = None, full: bool = False
) -> dict[str, Any]:
    """One event; ``full`` adds its history, routing decisions, reporters and next steps."""
    units = unit_names(session)
    out = _dicts(session, [event], now or datetime.now(UTC), units)[0]
    if full:
        out["history"] = [
            {
                "status": s.status,
                "status_name": TRANSITIONS.label(s.status),
                "actor": s.actor,
                "unit": s.unit_code,
                "unit_name": units.get(s.unit_code or "", ""),
                "at": _iso(s.at),
                "longitude": s.longitude,
                "latitude": s.latitude,
                "note": s.note,
            }
            for s in events.history(session, event)
        ]
        out["routing"] = [
            {"unit": r.unit_code, "unit_name": units.get(r.unit_code, ""), "rule": r.rule}
            | {"by": r.by, "reason": r.reason, "at": _iso(r.at)}
            for r in session.scalars(
                select(Routing).where(Routing.event_id == event.id).order_by(Routing.id)
            )
        ]
        out["reporters"] = session.scalar(
            select(func.count()).select_from(Reporter).where(Reporter.event_id == event.id)
        )
        out["allowed"] = [
            {"status": s, "name": TRANSITIONS.label(s)}
            for s in sorted(TRANSITIONS.allowed(event.status))
        ]
    return out


BEIJING_ZONE = timezone(sla.BEIJING)


def _iso(moment: datetime | None) -> str | None:
    """Beijing time with its offset: the pages show the city's wall clock, machines get the instant."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(BEIJING_ZONE).isoformat()


def _category_name(code: str) -> str:
    found = sla.category(code)
    return found.name if found else code


# ---------------------------------------------------------------- queues


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    category: str = ""
    overdue: bool = False


def queue(
    session: Session,
    unit_code: str | None,
    wanted: QueueFilter,
    now: datetime,
    cursor: str = "",
    limit: int = 50,
) -> tuple[list[Event], str]:
    """Open events, soonest deadline first (no deadline last), by keyset pages: a unit's, or
    (``unit_code`` None) the dispatcher's whole city."""
    unknown = [s for s in wanted.statuses if s not in TRANSITIONS.labels]
    if unknown:
        raise GridError(f"未知的状态 {unknown}", 400, "bad_status")
    query = select(Event).where(Event.status.in_(sorted(set(wanted.statuses) or OPEN_STATUSES)))
    if unit_code is not None:
        query = query.where(Event.unit_code == unit_code)
    if wanted.category:
        query = query.where(Event.category == wanted.category)
    if wanted.overdue:
        query = query.where(Event.due_at < now)
    due = func.coalesce(Event.due_at, datetime(9999, 1, 1, tzinfo=UTC))
    if cursor:
        after = keyset.decode(cursor)
        try:
            last_due, last_id = datetime.fromisoformat(after[0]), int(after[1])  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            raise GridError("cursor 无效", 400, "bad_cursor") from None
        query = query.where((due > last_due) | ((due == last_due) & (Event.id > last_id)))
    found = list(session.scalars(query.order_by(due, Event.id).limit(limit + 1)))
    more = len(found) > limit
    found = found[:limit]
    next_cursor = ""
    if more:
        last = found[-1]
        moment = last.due_at or datetime(9999, 1, 1, tzinfo=UTC)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        next_cursor = keyset.encode((moment.isoformat(), last.id))
    return found, next_cursor


# ---------------------------------------------------------------- page actions

# action -> (permission, what it does)
ACTIONS = ("register", "merge", "keep_apart", "dispatch", "redispatch", "void", "suspend")
ACTIONS += ("handling", "handled", "verify", "rework", "close")


def act(
    session: Session,
    user: User,
    event: Event,
    action: str,
    at: datetime | None = None,
    note: str = "",
    category: str | None = None,
    unit_code: str | None = None,
    longitude: float | None = None,
    latitude: float | None = None,
) -> Event:
    """One action of a signed-in person on ``event``, if their role allows it."""
    who = user.display_name or user.username
    if action in {"handling", "handled"}:
        if not permissions.may_handle(user, event.unit_code):
            raise GridError("只有承办单位的工作人员可以处置", 403, "forbidden")
        events.step(session, event, action, who, at, note, None, longitude, latitude)
    elif action in {"verify", "rework"}:
        if not permissions.may_inspect(user):
            raise GridError("只有监督员可以核查", 403, "forbidden")
        status = "verified" if action == "verify" else "rework"
        events.step(session, event, status, who, at, note, None, longitude, latitude)
    elif action in ACTIONS:
        if not permissions.may_dispatch(user):
            raise GridError("只有监督指挥中心可以立案、派遣和结案", 403, "forbidden")
        if action == "register":
            events.register(session, event, who, at, category or None)
        elif action == "merge":
            events.merge(session, event, who, at)
        elif action == "keep_apart":
            events.keep_apart(session, event)
        elif action == "dispatch":
            events.dispatch(session, event, who, at)
        elif action == "redispatch":
            events.dispatch(session, event, who, at, unit_code or "", note)
        elif action == "void":
            events.step(session, event, "voided", who, at, note)
        elif action == "suspend":
            events.step(session, event, "suspended", who, at, note)
        elif action == "close":
            events.step(session, event, "closed", who, at, note)
    else:
        raise GridError(f"未知的操作「{action}」", 400, "bad_action")
    return event


# ---------------------------------------------------------------- docked systems

DOCKED_STEPS = frozenset({"handling", "handled"})


def docked_event(session: Session, unit_code: str, event_no: str) -> Event:
    """An event dispatched to the system's unit; another unit's is as unknown as a missing one."""
    event = session.scalar(select(Event).where(Event.event_no == event_no))
    if event is None or event.unit_code != unit_code:
        raise GridError(f"事件「{event_no}」不存在", 404, "not_found")
    return event


def docked_step(
    session: Session,
    unit_code: str,
    system_name: str,
    event_no: str,
    status: str,
    note: str,
    longitude: float | None,
    latitude: float | None,
    at: datetime | None = None,
) -> Event:
    """A handling unit's system reports 处置 or 处置反馈; the centre's steps stay the centre's."""
    event = docked_event(session, unit_code, event_no)
    if status not in DOCKED_STEPS:
        allowed = "、".join(TRANSITIONS.label(s) for s in sorted(DOCKED_STEPS))
        raise GridError(f"业务系统只能报告：{allowed}", 403, "not_yours")
    events.step(session, event, status, system_name, at, note, unit_code, longitude, latitude)
    return event


def steps_of(session: Session, event: Event) -> list[Step]:
    return events.history(session, event)
