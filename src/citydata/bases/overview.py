"""A base database at a glance, computed in SQL: its masters and the source rows behind them, how
many sources each master has, which classes feed it (and how much), how complete each
attribute of the published table is, and where sources disagree (an attribute of a master given
more than one value). The base's page opens on this; the cockpit draws it for every base."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from citydata.bases.models import Master, MasterLink, MasterValue, MatchReview
from citydata.bases.publish import base_table
from citydata.bases.spec import BaseSpec, specs
from citydata.catalog.models import Field, ResourceClass, Unit

SOURCE_BUCKETS = ("1", "2", "3", "4+")  # sources (feeding classes) per master


def masters_per_base(session: Session) -> dict[str, dict[str, int]]:
    """Live masters and the staged rows linked to them, per base."""
    masters = dict(
        session.execute(
            select(Master.base, func.count())
            .where(Master.merged_into.is_(None), Master.version > 0)
            .group_by(Master.base)
        ).all()
    )
    links = dict(
        session.execute(select(MasterLink.base, func.count()).group_by(MasterLink.base)).all()
    )
    return {
        code: {"masters": int(masters.get(code, 0)), "rows": int(links.get(code, 0))}
        for code in specs()
    }


def sources_per_master(session: Session, base: str | None = None) -> dict[str, dict[str, int]]:
    """How many masters of each base have 1, 2, 3 or 4+ feeding classes behind them."""
    per_master = (
        select(MasterLink.base, func.count(func.distinct(MasterLink.class_code)).label("n"))
        .group_by(MasterLink.base, MasterLink.master_id)
        .where(*([MasterLink.base == base] if base else []))
        .subquery()
    )
    found = session.execute(
        select(per_master.c.base, per_master.c.n, func.count()).group_by(
            per_master.c.base, per_master.c.n
        )
    ).all()
    out: dict[str, dict[str, int]] = {
        code: dict.fromkeys(SOURCE_BUCKETS, 0) for code in ([base] if base else specs())
    }
    for code, n, masters in found:
        bucket = SOURCE_BUCKETS[min(int(n), 4) - 1]
        out.setdefault(code, dict.fromkeys(SOURCE_BUCKETS, 0))[bucket] += int(masters)
    return out


def conflicts(session: Session, base: str | None = None) -> list[dict[str, Any]]:
    """Per base and attribute, the live masters whose sources gave that attribute more than one
    value (the golden record chose one; the others are kept with their provenance)."""
    disagreeing = (
        select(MasterValue.master_id, MasterValue.attribute)
        .group_by(MasterValue.master_id, MasterValue.attribute)
        .having(func.count() > 1)
        .subquery()
    )
    query = (
        select(Master.base, disagreeing.c.attribute, func.count())
        .join(disagreeing, disagreeing.c.master_id == Master.id)
        .where(Master.merged_into.is_(None))
        .group_by(Master.base, disagreeing.c.attribute)
    )
    if base:
        query = query.where(Master.base == base)
    labels = attribute_labels(session)
    rows = [
        {
            "base": code,
            "attribute": attribute,
            "label": labels.get((code, attribute), attribute),
            "masters": int(n),
        }
        for code, attribute, n in session.execute(query).all()
    ]
    return sorted(rows, key=lambda r: (-r["masters"], r["base"], r["attribute"]))


def attribute_labels(session: Session) -> dict[tuple[str, str], str]:
    """(base, attribute) -> the Chinese label the feeding classes give the field."""
    found = session.execute(
        select(ResourceClass.base_db, Field.name, func.min(Field.label))
        .join(ResourceClass, ResourceClass.code == Field.class_code)
        .where(ResourceClass.base_db != "none")
        .group_by(ResourceClass.base_db, Field.name)
    ).all()
    return {(b, name): label for b, name, label in found}


def sources(session: Session, base: BaseSpec) -> list[dict[str, Any]]:
    """The classes that feed the base, with their unit and the rows linked to its masters."""
    linked = dict(
        session.execute(
            select(MasterLink.class_code, func.count())
            .where(MasterLink.base == base.code)
            .group_by(MasterLink.class_code)
        ).all()
    )
    classes = session.execute(
        select(ResourceClass.code, ResourceClass.name, Unit.code, Unit.short_name)
        .join(Unit, Unit.code == ResourceClass.provider_code)
        .where(ResourceClass.code.in_(list(linked)))
    ).all()
    trust = {code: i for i, code in enumerate(base.authority)}
    rows = [
        {"class_code": code, "name": name, "unit": unit, "unit_name": short, "rows": linked[code]}
        for code, name, unit, short in classes
    ]
    return sorted(rows, key=lambda r: (trust.get(r["class_code"], len(trust)), -r["rows"]))


def completeness(session: Session, base: BaseSpec) -> dict[str, float]:
    """The share of the published table's rows that hold each attribute (one scan)."""
    published = base_table(base)
    conn = session.connection()
    if not inspect(conn).has_table(published.name):
        return {}
    columns = [published.c[a] for a in base.attributes]
    counted = session.execute(
        select(func.count(), *[func.count(c) for c in columns]).select_from(published)
    ).one()
    total = counted[0]
    return {
        a: round(n / total, 4) if total else 0.0
        for a, n in zip(base.attributes, counted[1:], strict=True)
    }


def reviews_open(session: Session) -> dict[str, dict[str, int]]:
    """Review pairs waiting for a steward, per base and reason."""
    found = session.execute(
        select(MatchReview.base, MatchReview.reason, func.count())
        .where(MatchReview.status == "pending")
        .group_by(MatchReview.base, MatchReview.reason)
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for base, reason, n in found:
        out[base][reason] = int(n)
    return dict(out)


def overview(session: Session, base: BaseSpec) -> dict[str, Any]:
    """Everything the base's page opens on."""
    counts = masters_per_base(session).get(base.code, {"masters": 0, "rows": 0})
    labels = attribute_labels(session)
    filled = completeness(session, base)
    disagree = conflicts(session, base.code)
    return {
        "masters": counts["masters"],
        "rows": counts["rows"],
        "sources": sources(session, base),
        "per_master": sources_per_master(session, base.code).get(base.code, {}),
        "completeness": [
            {"attribute": a, "label": labels.get((base.code, a), a), "share": share}
            for a, share in filled.items()
        ],
        "conflicts": disagree,
        "conflicting_masters": sum(r["masters"] for r in disagree),
        "reviews": sum(reviews_open(session).get(base.code, {}).values()),
    }
