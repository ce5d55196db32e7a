"""开放: datasets by topic, downloads and API calls per day, and each dataset's metadata quality
scored as data.europa.eu's MQA scores it (``opendata.mqa``), with its bands."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from citydata.brain.queries import Context, Payload, day_labels, query
from citydata.opendata import mqa
from citydata.opendata.models import OpenApiCall, OpenDownload
from citydata.opendata.service import TOPICS, build_datasets


def datasets(ctx: Context):
    return ctx.shared("datasets", lambda: build_datasets(ctx.session, ctx.today))


@query("opendata.topics")
def topics(ctx: Context) -> Payload:
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "conditional": 0})
    for ds in datasets(ctx).values():
        for name in ds.topics:
            per[name][ds.open_type] += 1
    shown = [t for t in TOPICS if t.name in per]
    return {
        "kind": "stack",
        "x": [t.title for t in shown],
        "keys": [t.name for t in shown],
        "series": [
            {"name": "普遍开放", "data": [per[t.name]["open"] for t in shown], "stack": "d"},
            {
                "name": "有条件开放",
                "data": [per[t.name]["conditional"] for t in shown],
                "stack": "d",
            },
        ],
        "unit": "count",
        "figures": [{"key": "datasets", "label": "开放数据集", "value": len(datasets(ctx))}],
    }


@query("opendata.usage_daily")
def usage_daily(ctx: Context) -> Payload:
    days = ctx.days()
    labels, keys = day_labels(days)
    index = {d: i for i, d in enumerate(days)}
    downloads = [0] * len(days)
    calls = [0] * len(days)
    for day, n in ctx.session.execute(
        select(OpenDownload.day, func.sum(OpenDownload.count))
        .where(OpenDownload.day >= days[0])
        .group_by(OpenDownload.day)
    ).all():
        if day in index:
            downloads[index[day]] += int(n)
    for day, n in ctx.session.execute(
        select(OpenApiCall.day, func.sum(OpenApiCall.calls))
        .where(OpenApiCall.day >= days[0])
        .group_by(OpenApiCall.day)
    ).all():
        if day in index:
            calls[index[day]] += int(n)
    return {
        "kind": "line",
        "x": labels,
        "keys": keys,
        "series": [
            {"name": "下载次数", "data": downloads},
            {"name": "接口调用次数", "data": calls},
        ],
        "unit": "count",
        "figures": [
            {"key": "downloads", "label": "下载次数", "value": sum(downloads)},
            {"key": "calls", "label": "接口调用次数", "value": sum(calls)},
        ],
    }


def assessments(ctx: Context) -> list[dict]:
    return ctx.shared(
        "mqa",
        lambda: [mqa.assess(ds) for ds in sorted(datasets(ctx).values(), key=lambda d: d.slug)],
    )


@query("opendata.mqa")
def metadata_quality(ctx: Context) -> Payload:
    found = assessments(ctx)
    counts = {code: 0 for code, _, _ in mqa.BANDS}
    for a in found:
        counts[a["band"]] += 1
    n = len(found) or 1
    return {
        "kind": "bar",
        "x": [label for _, label, _ in mqa.BANDS],
        "keys": [code for code, _, _ in mqa.BANDS],
        "series": [{"name": "数据集", "data": [counts[code] for code, _, _ in mqa.BANDS]}],
        "unit": "count",
        "figures": [
            {
                "key": "mean",
                "label": "平均得分",
                "value": round(sum(a["total"] for a in found) / n, 1),
                "target": mqa.MAXIMUM,
            },
            *[
                {
                    "key": dimension,
                    "label": label,
                    "value": round(sum(a["points"][dimension] for a in found) / n, 1),
                    "target": maximum,
                }
                for dimension, (label, maximum) in mqa.DIMENSIONS.items()
            ],
        ],
    }
