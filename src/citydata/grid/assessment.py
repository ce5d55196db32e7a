"""综合评价, computed from the events only (never typed in): per district, cell or unit and
month — 立案数, 按期处置率 (of events handled, those fed back before the handle deadline),
结案率 (of registered events, those closed) and 返工率 (of events handled, those sent back at
least once)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.grid.models import Event, Step
from citydata.grid.sla import BEIJING

DIMENSIONS = {"division": "区县", "grid_code": "单元网格", "unit_code": "处置单位", "month": "月份"}
RATES = {
    "on_time_rate": "按期处置率",
    "closed_rate": "结案率",
    "rework_rate": "返工率",
}


def frame(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """One row per registered event: where, who, when, and what became of it."""
    registered = select(Step.event_id).where(Step.status == "registered")
    query = select(
        Event.id,
        Event.division,
        Event.grid_code,
        Event.unit_code,
        Event.reported_at,
        Event.status,
        Event.handled_late,
        Event.reworks,
    ).where(Event.id.in_(registered))
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
