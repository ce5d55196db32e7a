"""共享: calls per day by consumer unit and by class, denied calls, applications pending and
overdue, who reads whose data (a Sankey from provider to consumer), the audit chain's state."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, func, select

from citydata.audit.models import AuditEntry, AuditHead
from citydata.audit.service import IS_CALL, verify
from citydata.brain.queries import Context, Payload, day_labels, query, top
from citydata.brain.queries.aggregation import unit_names
from citydata.catalog.models import ResourceClass
from citydata.share.models import ShareApplication

CONSUMERS = 6  # series drawn; the rest summed as 其他单位
OUTSIDE = "(platform)"  # a read by the platform's own pages: no consumer unit


def _calls(ctx: Context) -> list[tuple[str, str, str, int, int]]:
    """(city day, consumer, class, calls, denied) over the window, from the audit log."""

    def load():
        day = ctx.city_date(AuditEntry.at)
        return [
            (str(d)[:10], c or OUTSIDE, k or "", int(n), int(bad or 0))
            for d, c, k, n, bad in ctx.session.execute(
                select(
                    day,
                    AuditEntry.consumer_code,
                    AuditEntry.class_code,
                    func.count(),
                    func.sum(case((AuditEntry.outcome != "ok", 1), else_=0)),
                )
                .where(IS_CALL, AuditEntry.at >= ctx.since())
                .group_by(day, AuditEntry.consumer_code, AuditEntry.class_code)
            ).all()
        ]

    return ctx.shared("calls", load)


def _consumer_series(ctx: Context, cells: dict[tuple[str, str], int], xs: list[str]) -> list:
    """One stacked series per busiest consumer (keyed by its code, so a unit's staff can be
    shown their own), the others summed."""
    per_consumer: dict[str, int] = defaultdict(int)
    for (consumer, _x), n in cells.items():
        per_consumer[consumer] += n
    chosen = top(per_consumer, CONSUMERS)
    names = unit_names(ctx)
    series = [
        {
            "name": names.get(c, "平台页面" if c == OUTSIDE else c),
            "key": c,
            "data": [cells.get((c, x), 0) for x in xs],
            "stack": "consumers",
        }
        for c in chosen
    ]
    rest = [sum(n for (c, x2), n in cells.items() if x2 == x and c not in chosen) for x in xs]
    if any(rest):
        series.append({"name": "其他单位", "key": "", "data": rest, "stack": "consumers"})
    return series


@query("sharing.calls_daily")
def calls_daily(ctx: Context) -> Payload:
    labels, keys = day_labels(ctx.days())
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for day, consumer, _class, n, _bad in _calls(ctx):
        cells[(consumer, day)] += n
    return {
        "kind": "stack",
        "x": labels,
        "keys": keys,
        "series": _consumer_series(ctx, cells, keys),
        "unit": "count",
    }


@query("sharing.calls_class")
def calls_class(ctx: Context) -> Payload:
    per_class: dict[str, int] = defaultdict(int)
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for _day, consumer, code, n, _bad in _calls(ctx):
        per_class[code] += n
        cells[(consumer, code)] += n
    classes = top(per_class, 10)
    names = dict(
        ctx.session.execute(
            select(ResourceClass.code, ResourceClass.name).where(ResourceClass.code.in_(classes))
        ).all()
    )
    return {
        "kind": "hbar",
        "x": [names.get(c, c or "—") for c in classes],
        "keys": classes,
        "series": _consumer_series(ctx, cells, classes),
        "unit": "count",
    }


@query("sharing.denied")
def denied(ctx: Context) -> Payload:
    labels, keys = day_labels(ctx.days())
    cells: dict[tuple[str, str], int] = defaultdict(int)
    total = calls = 0
    for day, consumer, _class, n, bad in _calls(ctx):
        cells[(consumer, day)] += bad
        total += bad
        calls += n
    series = [s for s in _consumer_series(ctx, cells, keys) if any(s["data"])]
    return {
        "kind": "stack",
        "x": labels,
        "keys": keys,
        "series": series,
        "unit": "count",
        "figures": [
            {"key": "denied", "label": "被拒绝的调用", "value": total},
            {"key": "calls", "label": "调用", "value": calls},
        ],
    }


@query("sharing.applications")
def applications(ctx: Context) -> Payload:
    found = ctx.session.execute(
        select(
            ShareApplication.provider_code,
            ShareApplication.status,
            func.count(),
            func.sum(
                case(
                    (
                        (ShareApplication.status == "pending")
                        & (ShareApplication.due_date < ctx.today),
                        1,
                    ),
                    else_=0,
                )
            ),
        )
        .where(
            ShareApplication.channel == "share",
            ShareApplication.status.in_(("pending", "more_info")),
        )
        .group_by(ShareApplication.provider_code, ShareApplication.status)
    ).all()
    pending: dict[str, int] = defaultdict(int)
    late: dict[str, int] = defaultdict(int)
    asked: dict[str, int] = defaultdict(int)
    for provider, status, n, overdue in found:
        if status == "pending":
            pending[provider] += int(n)
            late[provider] += int(overdue or 0)
        else:
            asked[provider] += int(n)
    providers = top({p: pending[p] + asked[p] for p in {*pending, *asked}}, 10)
    names = unit_names(ctx)
    return {
        "kind": "hbar",
        "x": [names.get(p, p) for p in providers],
        "keys": providers,
        "series": [
            {
                "name": "待审核（未超期）",
                "data": [pending[p] - late[p] for p in providers],
                "stack": "a",
            },
            {"name": "待审核已超期", "data": [late[p] for p in providers], "stack": "a"},
            {"name": "需补充材料", "data": [asked[p] for p in providers], "stack": "a"},
        ],
        "unit": "count",
        "figures": [
            {"key": "pending", "label": "待审核的申请", "value": sum(pending.values())},
            {"key": "overdue", "label": "其中已超期", "value": sum(late.values())},
            {"key": "more_info", "label": "需补充材料", "value": sum(asked.values())},
        ],
    }


@query("sharing.flow")
def flow(ctx: Context) -> Payload:
    """Calls over the window from each providing unit (the class's owner) to each consumer."""
    providers = dict(
        ctx.session.execute(select(ResourceClass.code, ResourceClass.provider_code)).all()
    )
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for _day, consumer, code, n, _bad in _calls(ctx):
        provider = providers.get(code)
        if provider and consumer != OUTSIDE:
            pairs[(provider, consumer)] += n
    names = unit_names(ctx)
    nodes: dict[str, dict] = {}
    links = []
    for (provider, consumer), n in sorted(pairs.items()):
        # a unit both provides and consumes: two nodes, or the flow would loop
        source, target = f"p:{provider}", f"c:{consumer}"
        nodes.setdefault(
            source, {"id": source, "name": names.get(provider, provider), "key": provider}
        )
        nodes.setdefault(
            target, {"id": target, "name": names.get(consumer, consumer), "key": consumer}
        )
        links.append({"source": source, "target": target, "value": n})
    return {"kind": "sankey", "nodes": list(nodes.values()), "links": links, "unit": "count"}


@query("sharing.audit_chain")
def audit_chain(ctx: Context) -> Payload:
    """Every entry's hash checked against the one before it (the whole chain: scheduled)."""
    report = verify(ctx.session)
    head = ctx.session.get(AuditHead, 1)
    return {
        "kind": "figures",
        "figures": [
            {"key": "entries", "label": "审计记录", "value": report.entries},
            {
                "key": "problems",
                "label": "校验发现的问题",
                "value": len(report.problems),
                "alert": bool(report.problems),
            },
            {"key": "last_id", "label": "链头记录号", "value": head.last_id if head else 0},
        ],
        "state": "intact" if report.ok else "broken",
        "problems": report.problems[:5],
    }
