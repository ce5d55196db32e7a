"""综合评价, computed from the events only (never typed in): per district, street, community,
cell or unit and month — 立案数, 按期处置率 (of events handled, those fed back before the handle deadline),
结案率 (of registered events, those closed) and 返工率 (of events handled, those sent back at
least once)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.grid.models import Cell, Event, Step
from citydata.grid.sla import BEIJING

DIMENSIONS = {
    "division": "区县",
    "street": "街道",
    "community": "社区",
    "grid_code": "单元网格",
    "unit_code": "处置单位",
    "month": "月份",
}
# A street's name is unique only within its district, a community's within its street.
WITHIN = {"street": ["division", "street"], "community": ["division", "street", "community"]}
RATES = {
    "on_time_rate": "按期处置率",
    "closed_rate": "结案率",
    "rework_rate": "返工率",
}


def frame(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """One row per registered event: where (its cell's street and community as they are now),
    who, when, and what became of it."""
    registered = select(Step.event_id).where(Step.status == "registered")
    query = (
        select(
            Event.id,
            Event.division,
            Event.grid_code,
            Event.unit_code,
            Event.reported_at,
            Event.status,
            Event.handled_late,
            Event.reworks,
            Cell.street,
            Cell.community,
        )
        .outerjoin(Cell, Cell.grid_code == Event.grid_code)
        .where(Event.id.in_(registered))
    )
    if since:
        query = query.where(Event.reported_at >= since)
    if until:
        query = query.where(Event.reported_at < until)
    rows = session.execute(query).all()
    schema = {
        "id": pl.Int64,
        "division": pl.String,
        "grid_code": pl.String,
        "unit_code": pl.String,
        "reported_at": pl.Datetime("us"),
        "status": pl.String,
        "handled_late": pl.Boolean,
        "reworks": pl.Int64,
        "street": pl.String,
        "community": pl.String,
    }
    events = pl.DataFrame(
        [tuple(r[:4]) + (r[4].replace(tzinfo=None),) + tuple(r[5:]) for r in rows],
        schema=schema,
        orient="row",
    )
    return events.with_columns(
        month=(pl.col("reported_at") + pl.duration(hours=BEIJING.seconds // 3600)).dt.strftime(
            "%Y-%m"
        )
    )


def assess(events: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    for dimension in by:
        if dimension not in DIMENSIONS:
            raise ValueError(f"未知的维度「{dimension}」")
    by = list(dict.fromkeys(key for d in by for key in WITHIN.get(d, [d])))
    handled = pl.col("handled_late").is_not_null()
    summary = events.group_by(by or pl.lit("全市").alias("scope")).agg(
        registered=pl.len(),
        handled=handled.sum(),
        on_time=(handled & ~pl.col("handled_late").fill_null(True)).sum(),
        closed=(pl.col("status") == "closed").sum(),
        reworked=(handled & (pl.col("reworks") > 0)).sum(),
    )
    return summary.with_columns(
        on_time_rate=_rate("on_time", "handled"),
        closed_rate=_rate("closed", "registered"),
        rework_rate=_rate("reworked", "handled"),
    ).sort(by or "scope")


def _rate(part: str, whole: str) -> pl.Expr:
    return pl.when(pl.col(whole) > 0).then((pl.col(part) / pl.col(whole)).round(4))


def label(row: dict, by: str, names: dict[str, str]) -> str:
    """What a reader sees for a row's scope: names (区县 and unit names from ``names``), the
    street and community after their district's."""
    if by in WITHIN:
        district = names.get(row["division"] or "", row["division"] or "—")
        return " ".join([district, *(row[key] or "—" for key in WITHIN[by][1:])])
    value = row[by] or ""
    return names.get(value, value or "—")
