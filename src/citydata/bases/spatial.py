"""The spatial base's areas as maps and the cockpit read them: districts, streets and unit grid
cells, one master each, published in ``base_spatial`` — ``code`` (6-digit GB/T 2260 district,
9-digit 统计用区划代码 street, 14-digit GB/T 30428.1 cell), ``level`` (区县, 乡镇街道, 单元网格),
``name``, ``division`` (the district a street or cell lies in), ``street`` and ``community`` (a
cell's, by name) and ``boundary`` (WKT, longitude/latitude)."""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from citydata.bases.publish import base_table
from citydata.bases.spec import SPATIAL_LEVELS, spec

AREA_FIELDS = ("code", "name", "division", "street", "community", "boundary")


def areas(session: Session, level: str) -> list[dict[str, str | None]]:
    """The live areas of ``level`` (``district``, ``street`` or ``cell``) in code order, each
    with ``AREA_FIELDS``; none before the spatial base was first resolved."""
    if level not in SPATIAL_LEVELS:
        raise ValueError(f"未知的层级「{level}」，可选：{'、'.join(SPATIAL_LEVELS)}")
    table = base_table(spec("spatial"))
    if not inspect(session.connection()).has_table(table.name):
        return []
    rows = session.execute(
        select(*(table.c[f] for f in AREA_FIELDS))
        .where(table.c.level == SPATIAL_LEVELS[level], table.c.boundary.is_not(None))
        .order_by(table.c.code)
    ).all()
    return [dict(zip(AREA_FIELDS, row, strict=True)) for row in rows]
