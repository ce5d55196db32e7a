"""一格通管: events open, overdue and closed per district on the map, the categories rising this
week, and the handling units' on-time rates as ``grid.assessment`` computes them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, select

from citydata.brain.queries import Context, Payload, query, top
from citydata.brain.queries.aggregation import unit_names
from citydata.brain.queries.bases import division_names
from citydata.db.base import as_utc
from citydata.grid import assessment
from citydata.grid.events import OPEN_STATUSES
from citydata.grid.models import Cell, Event
from citydata.grid.sla import category

CLOSED = "closed"


@query("grid.districts")
def districts(ctx: Context) -> Payload:
    """Per district: events not yet closed, of them past their stage's deadline, and closed."""
    is_open = Event.status.in_(sorted(OPEN_STATUSES))
    found = ctx.session.execute(
        select(
            Event.division,
            func.sum(case((is_open, 1), else_=0)),
            func.sum(case((is_open & (Event.due_at < ctx.now), 1), else_=0)),
            func.sum(case((Event.status == CLOSED, 1), else_=0)),
        ).group_by(Event.division)
    ).all()
    boxes = {
        d: [round(v, 5) for v in box]
        for d, *box in ctx.session.execute(
            select(
                Cell.division,
                func.min(Cell.min_x),
                func.min(Cell.min_y),
                func.max(Cell.max_x),
                func.max(Cell.max_y),
            ).group_by(Cell.division)
        ).all()
    }
    names = division_names()
    regions = [
        {
            "key": division,
            "name": names.get(division, division),
            "value": int(opened or 0),
            "details": {
                "未结": int(opened or 0),
                "超期": int(late or 0),
                "已结案": int(closed or 0),
            },
            "bbox": ",".join(str(v) for v in boxes.get(division, [])),
        }
        for division, opened, late, closed in sorted(found, key=lambda r: r[0] or "")
        if division
    ]
    return {
        "kind": "map",
        "map": "districts",
        "regions": regions,
        "measure": "未结事件",
        "unit": "count",
    }


@query("grid.rising")
def rising(ctx: Context) -> Payload:
    """Reports per category in the last seven days against the seven before. The week ends at
    the latest report (or now, if earlier): a quiet feed shows as an old 数据截至, not as calm."""
    latest = as_utc(ctx.session.scalar(select(func.max(Event.reported_at))))
    end = min(ctx.now, latest + timedelta(seconds=1)) if latest else ctx.now
    week = timedelta(days=7)
    found = ctx.session.execute(
        select(
            Event.category,
            func.sum(case((Event.reported_at >= end - week, 1), else_=0)),
            func.count(),
        )
        .where(Event.reported_at >= end - 2 * week, Event.reported_at < end)
        .group_by(Event.category)
    ).all()
    this = {code: int(n) for code, n, _ in found}
    last = {code: int(total) - int(n) for code, n, total in found}
    rise = {code: this[code] - last[code] for code in this}
    growing = {c: r for c, r in rise.items() if r > 0}
    chosen = top(growing or this, 8)
    return {
        "kind": "hbar",
        "x": [(category(c).name if category(c) else c) for c in chosen],
        "keys": chosen,
        "series": [
            {"name": "本周", "data": [this.get(c, 0) for c in chosen]},
            {"name": "上周", "data": [last.get(c, 0) for c in chosen]},
        ],
        "unit": "count",
        "week": {"from": (end - week).isoformat(), "to": end.isoformat()},
    }


@query("grid.units")
def units(ctx: Context) -> Payload:
    table = assessment.assess(
        ctx.shared("grid_frame", lambda: assessment.frame(ctx.session)), ["unit_code"]
    )
    rows = [r for r in table.to_dicts() if r["handled"] and r["unit_code"]]
    rows.sort(key=lambda r: (r["on_time_rate"], r["unit_code"]))
    rows = rows[:12]
    names = unit_names(ctx)
    return {
        "kind": "hbar",
        "x": [names.get(r["unit_code"], r["unit_code"]) for r in rows],
        "keys": [r["unit_code"] for r in rows],
        "series": [
            {"name": assessment.RATES["on_time_rate"], "data": [r["on_time_rate"] for r in rows]},
            {"name": assessment.RATES["closed_rate"], "data": [r["closed_rate"] for r in rows]},
        ],
        "unit": "rate",
        "handled": [r["handled"] for r in rows],
    }
