"""The staged rows that feed a base database: read from the departments' staging tables and
normalised for matching, with their key, whether it is valid, and their source's authority."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from sqlalchemy import (
    Connection,
    delete,
    inspect,
    select,
)
from sqlalchemy.orm import Session, selectinload

from citydata.bases.models import (
    MasterLink,
)
from citydata.bases.spec import BaseSpec
from citydata.catalog.models import ResourceClass
from citydata.db.base import as_utc
from citydata.ingest import staging
from citydata.ingest.models import Batch
from citydata.match.prepare import prepare
from citydata.standards import expressions as std

ROW_KEY = ["batch_id", "row"]
LINK_SCHEMA = {  # a staged row's link to its master, as master_links holds it
    "batch_id": pl.Int64,
    "row": pl.Int64,
    "class_code": pl.String,
    "master_id": pl.Int64,
    "method": pl.String,
    "weight": pl.Float64,
}


@dataclass
class Feed:
    class_code: str
    unit_code: str
    table: str
    fields: dict[str, str]  # attribute -> field name


# ---------------------------------------------------------------- reading the staged rows


def feeds(session: Session, base: BaseSpec) -> list[Feed]:
    """Classes of this base whose staging table exists and that carry its key or two attributes."""
    existing = set(inspect(session.connection()).get_table_names())
    classes = session.scalars(
        select(ResourceClass)
        .where(ResourceClass.base_db == base.code, ResourceClass.status != "retired")
        .options(selectinload(ResourceClass.fields))
        .order_by(ResourceClass.code)
    )
    out = []
    for rc in classes:
        if base.classes and rc.code not in base.classes:
            continue
        names = {f.name for f in rc.fields}
        mapping = {a: a for a in base.attributes if a in names}
        table = staging.table_name(rc.code)
        keyed = all(k in mapping for k in base.keys)
        if table in existing and (keyed or len(mapping) >= 2):
            out.append(Feed(rc.code, rc.provider_code, table, mapping))
    return out


def staged_rows(
    conn: Connection, base: BaseSpec, sources: list[Feed], batch_ids: list[int] | None = None
) -> pl.DataFrame:
    """Every staged row of the feeding classes (of ``batch_ids`` only, when given), as
    attributes, with its batch's time."""
    schema = {
        "batch_id": pl.Int64,
        "row": pl.Int64,
        **dict.fromkeys(base.attributes, pl.String),
        "class_code": pl.String,
        "unit_code": pl.String,
    }
    parts = []
    for feed in sources:
        columns = ", ".join(
            f'"{feed.fields[a]}" AS "{a}"' if a in feed.fields else f'NULL AS "{a}"'
            for a in base.attributes
        )
        where = ""
        if batch_ids is not None:
            where = f' WHERE "{staging.BATCH}" IN ({", ".join(str(int(b)) for b in batch_ids) or "NULL"})'
        result = conn.exec_driver_sql(  # a server-side cursor for this statement only
            f'SELECT "{staging.BATCH}", "{staging.ROW}", {columns} FROM {feed.table}{where}',
            execution_options={"stream_results": True},
        )
        columns_schema = {n: schema[n] for n in list(schema)[: 2 + len(base.attributes)]}
        # Fetched in slices: a city's million rows never sit in memory as Python tuples.
        frames = [
            pl.DataFrame(chunk, schema=columns_schema, orient="row")
            for chunk in result.partitions(100_000)
        ]
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=columns_schema)
        parts.append(
            frame.with_columns(
                pl.lit(feed.class_code).alias("class_code"),
                pl.lit(feed.unit_code).alias("unit_code"),
            ).cast(schema)
        )
    frame = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    times = pl.DataFrame(
        [(i, as_utc(at)) for i, at in conn.execute(select(Batch.id, Batch.created_at)).all()],
        schema={"batch_id": pl.Int64, "observed_at": pl.Datetime("us", "UTC")},
        orient="row",
    )
    return frame.join(times, on="batch_id", how="left")


def chunks(ids: list[int], size: int = 500):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _key(base: BaseSpec) -> pl.Expr:
    """A row's master key: its key attribute, or its key attributes joined by '|'."""
    if len(base.keys) == 1:
        return pl.col(base.key)
    return pl.concat_str([pl.col(k) for k in base.keys], separator="|")


def _key_valid(base: BaseSpec) -> pl.Expr:
    key = pl.col(base.key)
    if base.key_rule == "id_number":
        return std.id_number_valid(key)
    if base.key_rule == "credit_code":
        return std.credit_code_valid(key)
    return pl.all_horizontal(pl.col(k).is_not_null() for k in base.keys)


def _authority_rank(base: BaseSpec) -> pl.Expr:
    ranks = {code: i for i, code in enumerate(base.authority)}
    return pl.col("class_code").replace_strict(ranks, default=len(ranks), return_dtype=pl.Int32)


def prepared_rows(
    session: Session, base: BaseSpec, batch_ids: list[int] | None = None
) -> pl.DataFrame:
    """Staged rows normalised for matching, with their key, whether it is valid, and the rank
    of their source's authority."""
    rows = staged_rows(session.connection(), base, feeds(session, base), batch_ids)
    return prepare(rows, base.attributes).with_columns(
        _key_valid(base).alias("_keyed"),
        _authority_rank(base).alias("_rank"),
        _key(base).alias("_key"),
    )


def current_links(conn: Connection, base: BaseSpec) -> pl.DataFrame:
    rows = conn.execute(
        select(*[MasterLink.__table__.c[c] for c in LINK_SCHEMA]).where(
            MasterLink.base == base.code
        )
    ).all()
    return pl.DataFrame(rows, schema=LINK_SCHEMA, orient="row")


def delete_links(session: Session, base: BaseSpec, gone: pl.DataFrame) -> None:
    for batch_id, rows in gone.group_by("batch_id").agg(pl.col("row")).iter_rows():
        for part in chunks(rows):
            session.execute(
                delete(MasterLink).where(
                    MasterLink.base == base.code,
                    MasterLink.batch_id == batch_id,
                    MasterLink.row.in_(part),
                )
            )
