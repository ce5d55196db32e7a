"""The platform's figures, computed from the cases themselves every time (never typed in):

- 网上申请率: cases applied for online / cases applied for (by month applied);
- 全程网办率: of the finished cases of matters that can be done wholly online, those applied for
  online and finished with no visit in person;
- 一次办率: finished cases whose applicant came in person at most once;
- 即办件比例: finished cases decided on the day they were accepted;
- 按时办结率: finished on or before the 承诺时限 (pauses added);
- 平均办理时长: working days from 受理 to 办结, 补正 and 特别程序 not counted;
- 满意率: ratings of 4–5 among the rated; 差评 counts the 1–2 ratings.

Per matter, unit, level or month (finished cases by the month they were finished). The seed's
target for 网办率 and 一次办率 is 97 %. One read of the case table into Arrow, then Polars."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citydata.catalog.models import Unit
from citydata.mechanisms.workdays import workday_numbers
from citydata.services.matters import LEVELS
from citydata.services.models import Case, Matter

TARGET = 0.97
DIMENSIONS = {"all": "全市", "unit": "单位", "level": "层级", "matter": "事项", "month": "月份"}
RATES = {
    "online_application": "网上申请率",
    "fully_online": "全程网办率",
    "one_visit": "一次办率",
    "instant": "即办件比例",
    "on_time": "按时办结率",
    "satisfaction": "满意率",
}

SCHEMA = {
    "matter": pl.String,
    "matter_name": pl.String,
    "unit": pl.String,
    "level": pl.String,
    "can_online": pl.Boolean,
    "channel": pl.String,
    "submitted_on": pl.Date,
    "accepted_on": pl.Date,
    "finished_on": pl.Date,
    "deadline": pl.Date,
    "paused_days": pl.Int32,
    "visits": pl.Int32,
    "rating": pl.Int32,
}


def cases_frame(session: Session) -> pl.DataFrame:
    """One row per submitted case, with what the figures need."""
    query = (
        select(
            Matter.impl_code,
            Matter.name,
            Case.unit_code,
            Matter.level,
            Matter.fully_online,
            Case.channel,
            Case.submitted_on,
            Case.accepted_on,
            Case.finished_on,
            Case.deadline,
            Case.paused_days,
            Case.visits,
            Case.rating,
        )
        .join(Matter, Matter.id == Case.matter_id)
        .where(Case.submitted_on.is_not(None))
    )
    result = session.execute(query)
    columns = list(zip(*result.all(), strict=False)) or [[] for _ in SCHEMA]
    return pl.DataFrame(dict(zip(SCHEMA, columns, strict=True)), schema=SCHEMA)


def _finished(frame: pl.DataFrame) -> pl.DataFrame:
    done = frame.filter(pl.col("finished_on").is_not_null() & pl.col("accepted_on").is_not_null())
    return done.with_columns(
        (
            workday_numbers(done["finished_on"])
            - workday_numbers(done["accepted_on"])
            - done["paused_days"]
        )
        .clip(lower_bound=0)
        .alias("workdays"),
        pl.col("finished_on").dt.strftime("%Y-%m").alias("month"),
    )


def _key(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    if by == "all":
        return frame.with_columns(pl.lit("全市").alias("key"))
    if by == "month" and "month" not in frame.columns:
        return frame.with_columns(pl.col("submitted_on").dt.strftime("%Y-%m").alias("key"))
    return frame.with_columns(pl.col(by).alias("key"))


def _share(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def compute(frame: pl.DataFrame, by: str = "all", month: str = "") -> pl.DataFrame:
    """The figures per ``by`` (all, unit, level, matter, month), for one month if given."""
    if by not in DIMENSIONS:
        raise ValueError(f"by 应为 {'、'.join(DIMENSIONS)} 之一")
    applied = frame.with_columns(pl.col("submitted_on").dt.strftime("%Y-%m").alias("month"))
    finished = _finished(frame)
    if month:
        applied = applied.filter(pl.col("month") == month)
        finished = finished.filter(pl.col("month") == month)
    apps = (
        _key(applied, by)
        .group_by("key")
        .agg(
            pl.len().alias("applied"),
            (pl.col("channel") == "online").sum().alias("applied_online"),
        )
    )
    online_ok = (pl.col("channel") == "online") & (pl.col("visits") == 0)
    done = (
        _key(finished, by)
        .group_by("key")
        .agg(
            pl.len().alias("finished"),
            pl.col("can_online").sum().alias("finished_can_online"),
            (pl.col("can_online") & online_ok).sum().alias("finished_fully_online"),
            (pl.col("visits") <= 1).sum().alias("finished_one_visit"),
            (pl.col("workdays") == 0).sum().alias("finished_instant"),
            pl.col("deadline").is_not_null().sum().alias("with_deadline"),
            (pl.col("finished_on") <= pl.col("deadline")).sum().alias("finished_on_time"),
            pl.col("workdays").mean().alias("average_workdays"),
            pl.col("rating").is_not_null().sum().alias("rated"),
            (pl.col("rating") >= 4).sum().alias("satisfied"),
            (pl.col("rating") <= 2).sum().alias("bad_ratings"),
            pl.col("rating").mean().alias("average_rating"),
        )
    )
    both = apps.join(done, on="key", how="full", coalesce=True)
    counts = [c for c in both.columns if c not in {"key", "average_workdays", "average_rating"}]
    both = both.with_columns(pl.col(counts).fill_null(0))
    return both.with_columns(
        _share(pl.col("applied_online"), pl.col("applied")).alias("online_application"),
        _share(pl.col("finished_fully_online"), pl.col("finished_can_online")).alias(
            "fully_online"
        ),
        _share(pl.col("finished_one_visit"), pl.col("finished")).alias("one_visit"),
        _share(pl.col("finished_instant"), pl.col("finished")).alias("instant"),
        _share(pl.col("finished_on_time"), pl.col("with_deadline")).alias("on_time"),
        _share(pl.col("satisfied"), pl.col("rated")).alias("satisfaction"),
    ).sort("key")


def report(session: Session, by: str = "all", month: str = "") -> list[dict[str, Any]]:
    """The figures as rows for pages and the CLI, each with a readable name beside its key."""
    table = compute(cases_frame(session), by, month)
    names: dict[str, str] = {}
    if by == "unit":
        names = dict(session.execute(select(Unit.code, Unit.short_name)).all())
    elif by == "matter":
        names = dict(
            session.execute(
                select(Matter.impl_code, func.max(Matter.name)).group_by(Matter.impl_code)
            ).all()
        )
    elif by == "level":
        names = LEVELS
    rows = table.to_dicts()
    for row in rows:
        row["name"] = names.get(row["key"], row["key"])
    return rows
