"""Reading masters: a master with its golden record and provenance (as of a moment), search by
key or name, the bases there are."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from citydata.bases.models import (
    Master,
    MasterLink,
    MasterValue,
    MasterVersion,
)
from citydata.bases.spec import specs

# ---------------------------------------------------------------- reading masters


def master_dict(session: Session, master: Master, as_of: datetime | None = None) -> dict[str, Any]:
    """A master with its golden record (as it was at ``as_of``), every value with its source."""
    record, version = master.record, master.version
    if as_of is not None:
        held = session.scalar(
            select(MasterVersion)
            .where(MasterVersion.master_id == master.id, MasterVersion.valid_from <= as_of)
            .order_by(MasterVersion.version.desc())
        )
        record, version = (held.record, held.version) if held else ({}, 0)
    values = session.scalars(
        select(MasterValue)
        .where(MasterValue.master_id == master.id)
        .order_by(MasterValue.attribute, MasterValue.chosen.desc(), MasterValue.rows.desc())
    )
    provenance: dict[str, list[dict]] = {}
    for v in values:
        provenance.setdefault(v.attribute, []).append(
            {
                "value": v.value,
                "chosen": v.chosen,
                "rows": v.rows,
                "unit": v.unit_code,
                "class_code": v.class_code,
                "batch_id": v.batch_id,
                "row": v.row,
                "observed_at": v.observed_at.isoformat() if v.observed_at else None,
            }
        )
    links = session.execute(
        select(MasterLink.class_code, func.count(), MasterLink.method)
        .where(MasterLink.master_id == master.id)
        .group_by(MasterLink.class_code, MasterLink.method)
    ).all()
    return {
        "id": master.id,
        "base": master.base,
        "key": master.key,
        "version": version,
        "as_of": as_of.isoformat() if as_of else None,
        "record": record,
        "merged_into": master.merged_into,
        "provenance": provenance if as_of is None else {},
        "sources": [{"class_code": c, "rows": n, "method": m} for c, n, m in links],
    }


def search(
    session: Session, base: str, key: str | None = None, name: str | None = None, limit: int = 50
) -> list[Master]:
    query = select(Master).where(Master.base == base, Master.merged_into.is_(None))
    if key:
        query = query.where(Master.key == key.strip().upper())
    if name:
        query = query.where(Master.name.contains(name.strip()))
    return list(session.scalars(query.order_by(Master.id).limit(limit)))


def base_codes() -> list[str]:
    return list(specs())
