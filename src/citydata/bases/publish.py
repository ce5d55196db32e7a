"""The published tables ``base_<name>`` (one row per live master, with its links to other
bases and, for located bases, its grid cell and district), and each base as a catalog class."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.orm import Session

from citydata.bases.models import (
    Master,
    MasterChange,
)
from citydata.bases.spec import SPATIAL_LEVELS, BaseSpec
from citydata.bases.staged import chunks
from citydata.catalog import vocab
from citydata.catalog.models import Field, ResourceClass, Unit
from citydata.db.base import BigId, as_utc, utcnow
from citydata.ingest import staging

# ---------------------------------------------------------------- the published tables

_published = MetaData()


def base_table(base: BaseSpec) -> Table:
    """``base_<code>``: one row per live master, one text column per attribute, plus the masters
    its links name in other bases and, for located bases, the grid cell and district its
    coordinates fall in — what theme databases and sharing read with plain SQL."""
    name = f"base_{base.code}"
    if name in _published.tables:
        return _published.tables[name]
    located = (
        [Column("located_grid", Text), Column("located_division", Text)] if base.locate else []
    )
    return Table(
        name,
        _published,
        Column("master_id", BigId, primary_key=True),
        Column("key", String(64), index=True),
        *[Column(a, Text) for a in base.attributes],
        *[Column(f"{a}_master", BigId) for a, _ in base.links],
        *located,
        Column("version", Integer),
        Column("updated_at", DateTime(timezone=True)),
    )


def _link_masters(session: Session, values: pl.Series, target: str) -> pl.Series:
    """The master id in base ``target`` whose key is each value (null where none is)."""
    wanted = values.drop_nulls().unique().to_list()
    found: list[tuple[str, int]] = []
    for part in chunks(wanted):
        found += session.execute(
            select(Master.key, Master.id).where(Master.base == target, Master.key.in_(part))
        ).all()
    table = pl.DataFrame(found, schema={"value": pl.String, "target": pl.Int64}, orient="row")
    return values.to_frame("value").join(table, on="value", how="left", maintain_order="left")[
        "target"
    ]


def _locate(session: Session, frame: pl.DataFrame, longitude: str, latitude: str) -> pl.DataFrame:
    """Grid cell and district of each row's point: a spatial join (shapely's STRtree) against
    the cells of the spatial base (its areas of level 单元网格)."""
    import shapely

    cells = (
        session.execute(
            select(Master.record).where(
                Master.base == "spatial", Master.merged_into.is_(None), Master.version > 0
            )
        )
        .scalars()
        .all()
    )
    cells = [c for c in cells if c.get("boundary") and c.get("level") == SPATIAL_LEVELS["cell"]]
    none = pl.lit(None, pl.String)
    if not cells or frame.height == 0:
        return frame.with_columns(none.alias("located_grid"), none.alias("located_division"))
    polygons = shapely.from_wkt([c["boundary"] for c in cells], on_invalid="ignore")
    tree = shapely.STRtree(polygons)
    x = frame[longitude].cast(pl.Float64, strict=False).to_numpy()
    y = frame[latitude].cast(pl.Float64, strict=False).to_numpy()
    points = shapely.points(x, y)
    point_index, cell_index = tree.query(points, predicate="within")
    hits = pl.DataFrame({"i": point_index, "cell": cell_index}).unique("i", keep="first")
    codes = pl.DataFrame(
        {
            "cell": range(len(cells)),
            "located_grid": [c.get("code") for c in cells],
            "located_division": [c.get("division") for c in cells],
        },
        schema_overrides={"cell": hits.schema["cell"]},
    )
    placed = pl.DataFrame({"i": range(frame.height)}, schema={"i": hits.schema["i"]}).join(
        hits.join(codes, on="cell"), on="i", how="left", maintain_order="left"
    )
    return frame.with_columns(placed["located_grid"], placed["located_division"])


def publish(session: Session, base: BaseSpec, touched: set[int]) -> None:
    """Bring ``base_<code>`` up to date for the touched masters, inside the run's transaction."""
    conn = session.connection()
    table = staging.create_or_extend(conn, base_table(base))
    for part in chunks(sorted(touched)):
        conn.execute(delete(table).where(table.c.master_id.in_(part)))
    live = []
    for part in chunks(sorted(touched)):
        live += session.execute(
            select(Master.id, Master.key, Master.record, Master.version, Master.updated_at).where(
                Master.id.in_(part), Master.merged_into.is_(None), Master.version > 0
            )
        ).all()
    live_ids = {m[0] for m in live}
    staging.insert_frame(
        conn,
        MasterChange.__table__,
        pl.DataFrame(
            {
                "base": base.code,
                "master_id": sorted(touched),
                "kind": ["upsert" if i in live_ids else "delete" for i in sorted(touched)],
                "at": utcnow(),
            }
        ),
    )
    register_class(session, base)
    if not live:
        return
    frame = pl.DataFrame(
        {
            "master_id": [m[0] for m in live],
            "key": [m[1] for m in live],
            **{a: [m[2].get(a) for m in live] for a in base.attributes},
            "version": [m[3] for m in live],
            "updated_at": [as_utc(m[4]) for m in live],
        },
        schema_overrides={"key": pl.String, **dict.fromkeys(base.attributes, pl.String)},
    )
    frame = frame.with_columns(
        _link_masters(session, frame[a], target).alias(f"{a}_master") for a, target in base.links
    )
    if base.locate:
        frame = _locate(session, frame, *base.locate)
    staging.insert_frame(conn, table, frame)


SENSITIVITY_ORDER = tuple(vocab.SENSITIVITY)  # public → sensitive, as the vocabulary lists them
KIND_SENSITIVITY = {"person_name": "personal", "phone": "personal", "address": "personal"}


def base_fields(session: Session, base: BaseSpec) -> list[dict[str, Any]]:
    """The published table's columns as catalog fields. Label and sensitivity come from the
    feeding classes' fields of the same name (the strictest wins), so the base never shares a
    value more openly than the department that sent it."""
    sources = session.scalars(
        select(Field)
        .join(ResourceClass)
        .where(ResourceClass.base_db == base.code, Field.name.in_(list(base.attributes)))
    ).all()
    label: dict[str, str] = {}
    level: dict[str, str] = {}
    for f in sources:
        label.setdefault(f.name, f.label)
        if SENSITIVITY_ORDER.index(f.sensitivity) > SENSITIVITY_ORDER.index(
            level.get(f.name, "public")
        ):
            level[f.name] = f.sensitivity
    fields = [
        {
            "name": a,
            "label": label.get(a, a),
            "data_type": "C",
            "required": a in base.keys,
            "is_key": a in base.keys,
            "sensitivity": level.get(a, KIND_SENSITIVITY.get(kind, "public")),
        }
        for a, kind in base.attributes.items()
    ]
    fields += [
        {"name": f"{a}_master", "label": f"{label.get(a, a)}（主记录）", "data_type": "I"}
        for a, _ in base.links
    ]
    if base.locate:
        fields += [
            {"name": "located_grid", "label": "所在网格", "data_type": "C"},
            {"name": "located_division", "label": "所在区县", "data_type": "C"},
        ]
    return fields


def register_class(session: Session, base: BaseSpec) -> ResourceClass | None:
    """Enter the base database in the catalog as a class departments can apply for (once; its
    fields follow the base's attributes). Skipped when the base declares no catalog entry or
    its owner is not a unit of this catalog."""
    from citydata.catalog.service import get_class, save_class

    entry = dict(base.catalog)
    if not entry or session.get(Unit, entry["owner"]) is None:
        return None
    existing = get_class(session, entry["class_code"])
    fields = base_fields(session, base)
    if existing is not None and [f.name for f in existing.fields] == [f["name"] for f in fields]:
        return existing
    classification = entry["class_code"].split("/")[0]
    return save_class(
        session,
        {
            "code": entry["class_code"],
            "name": base.name,
            "category": "basic",
            "classification": classification,
            "classification_name": base.name,
            "provider_code": entry["owner"],
            "summary": f"{base.name}：各部门数据经实体解析融合而成的主记录（每个对象一条）",
            "format_class": "database",
            "format_type": "table",
            "share_type": entry["share_type"],
            "share_condition": entry.get("share_condition", ""),
            "share_methods": ["system", "online_query"],
            "open_type": entry.get("open_type", "closed"),
            "open_condition": "",
            "update_cycle": "daily",
            "related_codes": [],
            "secret": "non_classified",
            "base_db": "none",
            "status": "published",
            "fields": fields,
        },
        create=existing is None,
    )
