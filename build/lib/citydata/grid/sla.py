"""Categories and their time limits. ``categories.toml`` holds the GB/T 30428 tree, each
category's unit and its SLA; the SLA is versioned in the database (an event keeps the version it
was opened under). A limit is counted in hours or days, calendar or working: working time is
08:30–12:00 and 14:30–18:00 (Beijing time, 7 hours) on the State Council's working days."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citydata.grid.models import Sla
from citydata.mechanisms.workdays import add_workdays, is_workday

BEIJING = timedelta(hours=8)
# Working periods of a working day, Beijing time.
PERIODS = ((time(8, 30), time(12, 0)), (time(14, 30), time(18, 0)))
MEASURES = {"wh": "工作小时", "h": "小时", "wd": "工作日", "d": "自然日"}
STAGES = ("dispatch", "handle", "verify")
STAGE_NAMES = {"dispatch": "派遣", "handle": "处置", "verify": "核查"}


@dataclass(frozen=True)
class Category:
    code: str  # B0101, E0505 …
    name: str
    major: str  # B01 …
    major_name: str
    unit: str
    words: tuple[str, ...]
    limits: dict[str, tuple[int, str]]

    @property
    def kind(self) -> str:
        return "部件" if self.code.startswith("B") else "事件"

    @property
    def full_name(self) -> str:
        return f"{self.kind}·{self.major_name}·{self.name}"


@cache
def categories() -> dict[str, Category]:
    spec = tomllib.loads(Path(__file__).with_name("categories.toml").read_text(encoding="utf-8"))
    default = {stage: tuple(spec["sla"][stage]) for stage in STAGES}
    found = {}
    for item in spec["category"]:
        code = item["code"]
        limits = {stage: tuple(item.get(stage, default[stage])) for stage in STAGES}
        for amount, measure in limits.values():
            if measure not in MEASURES or amount <= 0:
                raise ValueError(f"categories.toml：{code} 的时限「{amount} {measure}」无效")
        found[code] = Category(
            code,
            item["name"],
            code[:3],
            spec["majors"][code[:3]],
            item["unit"],
            tuple(item.get("words", [])),
            limits,
        )
    return found


def category(code: str) -> Category | None:
    return categories().get(code)


# ---------------------------------------------------------------- versions


def current(session: Session, code: str, at: datetime | None = None) -> Sla:
    """The SLA version in force for ``code`` at ``at``; the file's limits become version 1 the
    first time a category is used."""
    at = at or datetime.now(UTC)
    found = session.scalar(
        select(Sla)
        .where(Sla.category == code, Sla.effective <= at)
        .order_by(Sla.version.desc())
        .limit(1)
    )
    if found is not None:
        return found
    first = session.scalar(select(Sla).where(Sla.category == code, Sla.version == 1))
    if first is not None:
        return first
    limits = categories()[code].limits
    first = Sla(
        category=code,
        version=1,
        effective=datetime(2000, 1, 1, tzinfo=UTC),
        **{stage: list(limits[stage]) for stage in STAGES},
    )
    session.add(first)
    session.flush()
    return first


def revise(session: Session, code: str, effective: datetime, **limits: list) -> Sla:
    """A new version of ``code``'s limits from ``effective`` on; events already open keep theirs."""
    if category(code) is None:
        raise ValueError(f"未知的类别「{code}」")
    base = current(session, code, effective)
    for stage, (amount, measure) in limits.items():
        if stage not in STAGES or measure not in MEASURES or int(amount) <= 0:
            raise ValueError(f"时限「{stage} = {amount} {measure}」无效")
    latest = session.scalar(select(func.max(Sla.version)).where(Sla.category == code)) or 0
    version = Sla(
        category=code,
        version=latest + 1,
        effective=effective,
        **{stage: list(limits.get(stage, getattr(base, stage))) for stage in STAGES},
    )
    session.add(version)
    session.flush()
    return version


# ---------------------------------------------------------------- the clock


def _local(moment: datetime) -> datetime:
    return (moment.astimezone(UTC) + BEIJING).replace(tzinfo=None)


def _utc(local: datetime) -> datetime:
    return (local - BEIJING).replace(tzinfo=UTC)


def _working_hours_after(start: datetime, hours: float) -> datetime:
    """Walk the working periods from ``start`` (Beijing time) until ``hours`` are spent."""
    left = timedelta(hours=hours)
    day, moment = start.date(), start
    for _ in range(3660):  # ten years of days: a limit is never that long
        if is_workday(day)[0]:
            for begin, end in PERIODS:
                opens = max(datetime.combine(day, begin), moment)
                closes = datetime.combine(day, end)
                if opens >= closes:
                    continue
                if closes - opens >= left:
                    return opens + left
                left -= closes - opens
        day += timedelta(days=1)
        moment = datetime.combine(day, time(0))
    raise ValueError("时限过长")


def deadline(start: datetime, amount: int, measure: str) -> datetime:
    """When a limit of ``amount`` ``measure`` that starts at ``start`` runs out (UTC)."""
    local = _local(start)
    if measure == "h":
        return _utc(local + timedelta(hours=amount))
    if measure == "d":
        return _utc(local + timedelta(days=amount))
    if measure == "wh":
        return _utc(_working_hours_after(local, amount))
    if measure == "wd":  # by the end of the amount-th working day after the start's day
        end_day: date = add_workdays(local.date(), amount)[0]
        return _utc(datetime.combine(end_day, PERIODS[-1][1]))
    raise ValueError(f"未知的时限单位「{measure}」")


def limit_text(limit: list | tuple) -> str:
    amount, measure = limit
    return f"{amount} {MEASURES[measure]}"
