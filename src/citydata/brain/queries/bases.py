"""基础库: masters and their source rows per base, sources per master, conflicting values, open
review pairs, the population by district and age band on the map, legal persons by industry."""

from __future__ import annotations

import polars as pl
from sqlalchemy import func, inspect, select

from citydata.bases import overview
from citydata.bases.publish import base_table
from citydata.bases.spec import spec, specs
from citydata.brain.queries import Context, Payload, query
from citydata.standards.divisions import all_divisions

AGE_BANDS = (("0–17岁", 0, 17), ("18–34岁", 18, 34), ("35–59岁", 35, 59), ("60–79岁", 60, 79))
OLDEST = "80岁及以上"
REASONS = {"match": "匹配不确定", "key_conflict": "证件号码与本人不符"}


def division_names() -> dict[str, str]:
    """Every division's name, today's where a code was reused."""
    names: dict[str, str] = {}
    for d in all_divisions():
        if d.end is None or d.code not in names:
            names[d.code] = d.name
    return names


def _base_names() -> tuple[list[str], list[str]]:
    found = specs()
    return [b.name for b in found.values()], list(found)


@query("bases.masters")
def masters(ctx: Context) -> Payload:
    counts = overview.masters_per_base(ctx.session)
    names, keys = _base_names()
    return {
        "kind": "bar",
        "x": names,
        "keys": keys,
        "series": [
            {"name": "主记录", "data": [counts[k]["masters"] for k in keys]},
            {"name": "来源记录", "data": [counts[k]["rows"] for k in keys]},
        ],
        "unit": "count",
    }


@query("bases.sources")
def sources(ctx: Context) -> Payload:
    per = overview.sources_per_master(ctx.session)
    names, keys = _base_names()
    return {
        "kind": "stack",
        "x": names,
        "keys": keys,
        "series": [
            {
                "name": f"{bucket} 个来源",
                "key": bucket,
                "data": [per[k][bucket] for k in keys],
                "stack": "masters",
            }
            for bucket in overview.SOURCE_BUCKETS
        ],
        "unit": "count",
    }


@query("bases.conflicts")
def conflicts(ctx: Context) -> Payload:
    every = overview.conflicts(ctx.session)
    found = every[:10]
    return {
        "kind": "hbar",
        "x": [f"{spec(r['base']).name}·{r['label']}" for r in found],
        "keys": [r["base"] for r in found],
        "series": [{"name": "来源不一致的主记录", "data": [r["masters"] for r in found]}],
        "unit": "count",
        "figures": [
            {
                "key": "total",
                "label": "来源不一致的取值",
                "value": sum(r["masters"] for r in every),
            }
        ],
    }


@query("bases.reviews")
def reviews(ctx: Context) -> Payload:
    found = overview.reviews_open(ctx.session)
    names, keys = _base_names()
    return {
        "kind": "stack",
        "x": names,
        "keys": keys,
        "series": [
            {
                "name": label,
                "key": reason,
                "data": [found.get(k, {}).get(reason, 0) for k in keys],
                "stack": "reviews",
            }
            for reason, label in REASONS.items()
        ],
        "unit": "count",
        "figures": [
            {
                "key": "pending",
                "label": "待确认的匹配",
                "value": sum(sum(r.values()) for r in found.values()),
            }
        ],
    }


def _has(ctx: Context, name: str) -> bool:
    return inspect(ctx.session.connection()).has_table(name)


@query("bases.population")
def population(ctx: Context) -> Payload:
    """Residents of the population base per district (户籍地) and age band, ages as of today."""
    published = base_table(spec("population"))
    regions: list[dict] = []
    if _has(ctx, published.name):
        rows = ctx.session.execute(
            select(published.c.division, published.c.birth_date, func.count())
            .where(published.c.division.is_not(None), published.c.division != "")
            .group_by(published.c.division, published.c.birth_date)
        ).all()
        frame = pl.DataFrame(
            rows, schema={"division": pl.String, "birth": pl.String, "n": pl.Int64}, orient="row"
        )
        today = ctx.today
        born = frame["birth"].str.to_date("%Y-%m-%d", strict=False)
        frame = frame.with_columns(born.alias("born")).with_columns(
            (
                pl.lit(today.year)
                - pl.col("born").dt.year()
                - (
                    (pl.col("born").dt.month() * 100 + pl.col("born").dt.day())
                    > today.month * 100 + today.day
                ).cast(pl.Int32)
            ).alias("age")
        )
        band = pl.lit(OLDEST)
        for label, _low, high in reversed(AGE_BANDS):
            band = pl.when(pl.col("age") <= high).then(pl.lit(label)).otherwise(band)
        frame = frame.with_columns(
            pl.when(pl.col("age").is_null())
            .then(pl.lit("出生日期不详"))
            .otherwise(band)
            .alias("band")
        )
        names = division_names()
        bands = [label for label, _, _ in AGE_BANDS] + [OLDEST, "出生日期不详"]
        per = frame.group_by("division", "band").agg(pl.col("n").sum())
        by_division: dict[str, dict[str, int]] = {}
        for division, band_label, n in per.iter_rows():
            by_division.setdefault(division, {})[band_label] = int(n)
        for division in sorted(by_division):
            counts = by_division[division]
            regions.append(
                {
                    "key": division,
                    "name": names.get(division, division),
                    "value": sum(counts.values()),
                    "details": {b: counts.get(b, 0) for b in bands[:-1]}
                    | ({bands[-1]: counts[bands[-1]]} if counts.get(bands[-1]) else {}),
                }
            )
    return {
        "kind": "map",
        "map": "districts",
        "regions": regions,
        "measure": "人口",
        "unit": "count",
    }


@query("bases.legal_industry")
def legal_industry(ctx: Context) -> Payload:
    published = base_table(spec("legal_person"))
    items: list[dict] = []
    if _has(ctx, published.name):
        found = ctx.session.execute(
            select(published.c.industry, func.count())
            .group_by(published.c.industry)
            .order_by(func.count().desc(), published.c.industry)
        ).all()
        items = [
            {"name": industry or "行业不详", "key": industry or "", "value": int(n)}
            for industry, n in found
        ]
    if len(items) > 12:  # the rest as one slice: a pie of forty slivers says nothing
        rest = sum(i["value"] for i in items[11:])
        items = [*items[:11], {"name": "其他行业", "key": "", "value": rest}]
    return {"kind": "pie", "items": items, "unit": "count"}
