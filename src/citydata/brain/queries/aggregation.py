"""数据归集: the seed's targets, batches and rows per day, the rules broken most and the units
behind them, the units of lowest quality, and the classes overdue against their update cycle
(timeliness, as Soda's ``freshness`` check: the age of the newest batch against the cycle)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, select

from citydata.brain.queries import Context, Payload, day_labels, query, top
from citydata.catalog import vocab
from citydata.catalog.models import ResourceClass, Unit
from citydata.clock import city_day
from citydata.db.base import as_utc
from citydata.grid.publishing import EVENTS_CLASS
from citydata.ingest.models import Batch
from citydata.ingest.service import RULE_NAMES, quality_scores
from citydata.services.publishing import CASES_CLASS

# The seed: the first 35 units and 289 classes aggregated, 700 classes shared.
TARGETS = {"departments": 35, "classes": 289, "shared": 700}
# The platform's own data, filled by snapshot batches (ingest/own.py), not sent by a department.
OWN_CLASSES = (CASES_CLASS, EVENTS_CLASS)


def unit_names(ctx: Context) -> dict[str, str]:
    return ctx.shared(
        "unit_names", lambda: dict(ctx.session.execute(select(Unit.code, Unit.short_name)).all())
    )


def _committed_classes(ctx: Context) -> list[tuple[str, str, str]]:
    """(class, unit, unit level) of every class with a committed batch."""
    return ctx.shared(
        "committed_classes",
        lambda: ctx.session.execute(
            select(Batch.class_code, Batch.unit_code, Unit.level)
            .join(Unit, Unit.code == Batch.unit_code)
            .where(Batch.status == "committed")
            .group_by(Batch.class_code, Batch.unit_code, Unit.level)
        ).all(),
    )


@query("aggregation.targets")
def targets(ctx: Context) -> Payload:
    session = ctx.session
    municipal = (
        session.scalar(select(func.count()).select_from(Unit).where(Unit.level == "city")) or 0
    )
    below = session.scalar(select(func.count()).select_from(Unit).where(Unit.level != "city")) or 0
    committed = _committed_classes(ctx)
    departments = {unit for _, unit, level in committed if level == "city"}
    sent = {code for code, _, _ in committed if code not in OWN_CLASSES}
    own = {code for code, _, _ in committed if code in OWN_CLASSES}
    live = ResourceClass.status != "retired"
    shared = (
        session.scalar(
            select(func.count())
            .select_from(ResourceClass)
            .where(live, ResourceClass.share_type != "none")
        )
        or 0
    )
    catalogued = session.scalar(select(func.count()).select_from(ResourceClass).where(live)) or 0
    failed = session.execute(
        select(Batch.id, Batch.class_code).where(Batch.status == "failed")
    ).all()
    failed_classes = {c for _, c in failed}
    return {
        "kind": "progress",
        "figures": [
            {
                "key": "departments",
                "label": "已归集的市直部门",
                "value": len(departments),
                "target": TARGETS["departments"],
                "note": {
                    "text": "目录中市直部门 {municipal} 个；区县、街道、社区的 {below} 个服务机构不计",
                    "args": {"municipal": municipal, "below": below},
                },
            },
            {
                "key": "classes",
                "label": "部门报送已入库的信息资源",
                "value": len(sent),
                "target": TARGETS["classes"],
                "note": {
                    "text": "另有平台自身数据 {own} 类（办件、事件），不计",
                    "args": {"own": len(own)},
                },
            },
            {
                "key": "shared",
                "label": "可共享的信息资源",
                "value": shared,
                "target": TARGETS["shared"],
                "note": {"text": "目录共 {classes} 类", "args": {"classes": catalogued}},
            },
            {
                "key": "failed",
                "label": "未能入库的文件",
                "value": len(failed),
                "note": {
                    "text": "涉及 {classes} 类，其中 {later} 类已由其他文件入库",
                    "args": {"classes": len(failed_classes), "later": len(failed_classes & sent)},
                },
            },
        ],
    }


@query("aggregation.batches_daily")
def batches_daily(ctx: Context) -> Payload:
    """Batches committed and failed, rows accepted and rejected, per city day."""
    day = ctx.city_date(Batch.created_at)
    found = ctx.session.execute(
        select(
            day,
            Batch.status,
            func.count(),
            func.coalesce(func.sum(Batch.rows_accepted), 0),
            func.coalesce(func.sum(Batch.rows_rejected), 0),
        )
        .where(Batch.created_at >= ctx.since(), Batch.status.in_(("committed", "failed")))
        .group_by(day, Batch.status)
    ).all()
    days = ctx.days()
    labels, keys = day_labels(days)
    index = {k: i for i, k in enumerate(keys)}
    series = {name: [0] * len(days) for name in ("committed", "failed", "accepted", "rejected")}
    for on, status, n, accepted, rejected in found:
        i = index.get(str(on)[:10])
        if i is None:
            continue
        series[status][i] += n
        if status == "committed":
            series["accepted"][i] += int(accepted)
            series["rejected"][i] += int(rejected)
    return {
        "kind": "bar",
        "x": labels,
        "keys": keys,
        "series": [
            {"name": "入库批次", "data": series["committed"], "stack": "batches"},
            {"name": "失败批次", "data": series["failed"], "stack": "batches"},
            {"name": "接收行数", "data": series["accepted"], "type": "line", "axis": 1},
            {"name": "拒收行数", "data": series["rejected"], "type": "line", "axis": 1},
        ],
        "axes": ["批次", "行"],
    }


def _committed_reports(ctx: Context) -> list[tuple[str, str, dict]]:
    return ctx.shared(
        "committed_reports",
        lambda: ctx.session.execute(
            select(Batch.class_code, Batch.unit_code, Batch.report).where(
                Batch.status == "committed"
            )
        ).all(),
    )


@query("aggregation.worst_rules")
def worst_rules(ctx: Context) -> Payload:
    """The rules values failed most often, from the batches' quality reports (one row per batch,
    never the rejects themselves), each split by the units that sent them."""
    by_rule: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _class, unit, report in _committed_reports(ctx):
        for per_rule in (report or {}).get("failures", {}).values():
            for rule, n in per_rule.items():
                by_rule[rule][unit] += int(n)
    totals = {rule: sum(units.values()) for rule, units in by_rule.items()}
    rules = top(totals, 8)
    unit_totals: dict[str, int] = defaultdict(int)
    for rule in rules:
        for unit, n in by_rule[rule].items():
            unit_totals[unit] += n
    units = top(unit_totals, 5)
    names = unit_names(ctx)
    series = [
        {
            "name": names.get(unit, unit),
            "key": unit,
            "data": [by_rule[rule].get(unit, 0) for rule in rules],
            "stack": "units",
        }
        for unit in units
    ]
    rest = [sum(n for u, n in by_rule[rule].items() if u not in units) for rule in rules]
    if any(rest):
        series.append({"name": "其他单位", "key": "", "data": rest, "stack": "units"})
    return {
        "kind": "hbar",
        "x": [RULE_NAMES.get(rule, rule) for rule in rules],
        "keys": rules,
        "series": series,
        "unit": "count",
    }


@query("aggregation.worst_units")
def worst_units(ctx: Context) -> Payload:
    """The units whose classes score lowest (a class's score is the mean of its batches')."""
    scores = ctx.shared("quality_scores", lambda: quality_scores(ctx.session))["units"]
    worst = sorted(scores.items(), key=lambda kv: (kv[1]["score"], kv[0]))[:10]
    return {
        "kind": "hbar",
        "x": [info["name"] for _, info in worst],
        "keys": [code for code, _ in worst],
        "series": [{"name": "质量得分", "data": [info["score"] for _, info in worst]}],
        "unit": "score",
        "max": 100,
    }


@query("aggregation.overdue")
def overdue(ctx: Context) -> Payload:
    """Classes whose newest committed batch is older than their update cycle allows."""
    newest = ctx.session.execute(
        select(
            Batch.class_code,
            func.max(Batch.created_at),
            ResourceClass.name,
            ResourceClass.update_cycle,
            ResourceClass.provider_code,
        )
        .join(ResourceClass, ResourceClass.code == Batch.class_code)
        .where(Batch.status == "committed", ResourceClass.status != "retired")
        .group_by(
            Batch.class_code,
            ResourceClass.name,
            ResourceClass.update_cycle,
            ResourceClass.provider_code,
        )
    ).all()
    late = []
    for code, last, name, cycle, unit in newest:
        last_day: date = city_day(as_utc(last))
        age = (ctx.today - last_day).days
        if not vocab.on_time(cycle, age):
            allowed = vocab.CYCLE_DAYS[cycle] or 0
            late.append((age - allowed, code, name, cycle, unit, last_day))
    late.sort(key=lambda r: (-r[0], r[1]))
    per_unit: dict[str, int] = defaultdict(int)
    for row in late:
        per_unit[row[4]] += 1
    units = top(per_unit, 10)
    names = unit_names(ctx)
    return {
        "kind": "hbar",
        "x": [names.get(u, u) for u in units],
        "keys": units,
        "series": [{"name": "超期信息资源", "data": [per_unit[u] for u in units]}],
        "unit": "count",
        "figures": [
            {"key": "overdue", "label": "超期信息资源", "value": len(late)},
            {"key": "with_data", "label": "有数据的信息资源", "value": len(newest)},
        ],
        "columns": ["信息资源", "提供单位", "更新周期", "最近入库", "超期天数"],
        "rows": [
            {
                "key": code,
                "cells": [
                    name,
                    names.get(unit, unit),
                    vocab.UPDATE_CYCLE.get(cycle, cycle),
                    last_day.isoformat(),
                    days_late,
                ],
            }
            for days_late, code, name, cycle, unit, last_day in late[:10]
        ],
    }
