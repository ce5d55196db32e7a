"""一网通办: 网办率 (全程网办率) and 一次办率 against the seed's 97 %, the on-time rate and
satisfaction — overall, by unit, level and month — as ``services.metrics`` computes them from
the cases (one read of the cases for all four tiles)."""

from __future__ import annotations

from typing import Any

from citydata.brain.queries import Context, Payload, query
from citydata.brain.queries.aggregation import unit_names
from citydata.services import metrics
from citydata.services.matters import LEVELS

SHOWN = ("fully_online", "one_visit", "on_time", "satisfaction")
TARGETED = ("fully_online", "one_visit")  # the seed's 97 %


def _table(ctx: Context, by: str) -> list[dict[str, Any]]:
    frame = ctx.shared("cases", lambda: metrics.cases_frame(ctx.session))
    return metrics.compute(frame, by).to_dicts()


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _series(rows: list[dict]) -> list[dict]:
    return [
        {"name": metrics.RATES[rate], "key": rate, "data": [_rate(r[rate]) for r in rows]}
        for rate in SHOWN
    ]


@query("services.rates")
def rates(ctx: Context) -> Payload:
    rows = _table(ctx, "all")
    overall = rows[0] if rows else {}
    return {
        "kind": "progress",
        "unit": "rate",
        "figures": [
            {
                "key": rate,
                "label": metrics.RATES[rate],
                "value": _rate(overall.get(rate)),
                **({"target": metrics.TARGET} if rate in TARGETED else {}),
            }
            for rate in SHOWN
        ],
        "cases": {"applied": overall.get("applied", 0), "finished": overall.get("finished", 0)},
    }


@query("services.by_unit")
def by_unit(ctx: Context) -> Payload:
    rows = sorted(_table(ctx, "unit"), key=lambda r: (-r["finished"], r["key"]))[:12]
    rows = [r for r in rows if r["finished"]]
    names = unit_names(ctx)
    return {
        "kind": "bar",
        "x": [names.get(r["key"], r["key"]) for r in rows],
        "keys": [r["key"] for r in rows],
        "series": _series(rows)[:2],
        "unit": "rate",
        "target": metrics.TARGET,
    }


@query("services.by_level")
def by_level(ctx: Context) -> Payload:
    order = list(LEVELS)
    rows = sorted(
        _table(ctx, "level"), key=lambda r: order.index(r["key"]) if r["key"] in order else 99
    )
    return {
        "kind": "bar",
        "x": [LEVELS.get(r["key"], r["key"]) for r in rows],
        "keys": [r["key"] for r in rows],
        "series": _series(rows),
        "unit": "rate",
        "target": metrics.TARGET,
    }


@query("services.by_month")
def by_month(ctx: Context) -> Payload:
    rows = [r for r in _table(ctx, "month") if r["finished"]][-12:]
    return {
        "kind": "line",
        "x": [r["key"] for r in rows],
        "keys": [r["key"] for r in rows],
        "series": _series(rows),
        "unit": "rate",
        "target": metrics.TARGET,
    }
