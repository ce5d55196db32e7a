"""Golden records: per attribute the value of the most trusted source, then the most recent
batch, then the most frequent; every distinct value kept with the row it came from, and each
change a new version (as-of queries)."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
from sqlalchemy import (
    delete,
    select,
    update,
)
from sqlalchemy.orm import Session

from citydata.bases.models import (
    Master,
    MasterEvent,
    MasterValue,
    MasterVersion,
)
from citydata.bases.spec import BaseSpec
from citydata.bases.staged import ROW_KEY, chunks
from citydata.ingest import staging

# ---------------------------------------------------------------- golden records


def golden_records(
    session: Session,
    base: BaseSpec,
    rows: pl.DataFrame,
    links: pl.DataFrame,
    touched: set[int],
    now: datetime,
) -> int:
    """Recompute the golden record and provenance of each touched master; returns how many changed."""
    if not touched:
        return 0
    ids = pl.Series("master_id", sorted(touched), dtype=pl.Int64)
    members = (
        links.filter(pl.col("master_id").is_in(ids.implode()))
        .select(*ROW_KEY, "master_id")
        .join(rows, on=ROW_KEY)
    )
    index = ["master_id", *ROW_KEY, "class_code", "unit_code", "observed_at", "_rank"]
    long = (
        members.select(*index, *[pl.col(a).alias(f"attr:{a}") for a in base.attributes])
        .unpivot(index=index, variable_name="attribute", value_name="value")
        .drop_nulls("value")
        .with_columns(pl.col("attribute").str.strip_prefix("attr:"))
    )
    # Per distinct value: how many rows carry it, and the most trusted, most recent of them.
    values = (
        long.sort(
            ["_rank", "observed_at", "batch_id", "row"], descending=[False, True, True, False]
        )
        .group_by("master_id", "attribute", "value", maintain_order=True)
        .agg(pl.len().alias("rows"), pl.all().first())
    )
    chosen = (
        values.sort(
            ["_rank", "observed_at", "rows", "value"], descending=[False, True, True, False]
        )
        .unique(["master_id", "attribute"], keep="first", maintain_order=True)
        .select("master_id", "attribute", "value", pl.lit(True).alias("chosen"))
    )
    values = values.join(chosen, on=["master_id", "attribute", "value"], how="left").with_columns(
        pl.col("chosen").fill_null(False)
    )
    for part in chunks(ids.to_list()):
        session.execute(delete(MasterValue).where(MasterValue.master_id.in_(part)))
    staging.insert_frame(
        session.connection(),
        MasterValue.__table__,
        values.select(
            "master_id",
            "attribute",
            "value",
            "chosen",
            "rows",
            "unit_code",
            "class_code",
            "batch_id",
            "row",
            "observed_at",
        ),
    )
    records = {m: {} for m in touched}
    for master_id, attribute, value in chosen.select("master_id", "attribute", "value").iter_rows():
        records[master_id][attribute] = value
    current, versions = {}, {}
    for part in chunks(sorted(touched)):
        for master_id, record, version in session.execute(
            select(Master.id, Master.record, Master.version).where(Master.id.in_(part))
        ):
            current[master_id], versions[master_id] = record, version
    changed = [m for m in sorted(touched) if records[m] and records[m] != current.get(m)]
    if not changed:
        return 0
    name_attribute = "name" if "name" in base.attributes else base.key
    session.execute(
        update(Master),
        [
            {
                "id": m,
                "record": records[m],
                "version": versions[m] + 1,
                "updated_at": now,
                "name": records[m].get(name_attribute),
            }
            for m in changed
        ],
    )
    for part in chunks(changed):
        session.execute(
            update(MasterVersion)
            .where(MasterVersion.master_id.in_(part), MasterVersion.valid_to.is_(None))
            .values(valid_to=now)
        )
    staging.insert_frame(
        session.connection(),
        MasterVersion.__table__,
        pl.DataFrame(
            {
                "master_id": changed,
                "version": [versions[m] + 1 for m in changed],
                "record": [_json(records[m]) for m in changed],
                "valid_from": [now] * len(changed),
            }
        ),
    )
    created = [m for m in changed if versions[m] == 0]
    if created:
        staging.insert_frame(
            session.connection(),
            MasterEvent.__table__,
            pl.DataFrame(
                {
                    "base": base.code,
                    "kind": "created",
                    "master_id": created,
                    "detail": "{}",
                    "at": now,
                }
            ),
        )
    return len(changed)


def _json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False)


def retire_orphans(
    session: Session, base: BaseSpec, previous: pl.DataFrame, links: pl.DataFrame, now: datetime
) -> None:
    """After a full run: a master left with no rows was merged into the master most of its old
    rows now belong to (or retired if they are all gone)."""
    alive = set(links["master_id"].unique().to_list())
    moved = previous.join(
        links.select(*ROW_KEY, pl.col("master_id").alias("now")), on=ROW_KEY
    ).filter(~pl.col("master_id").is_in(pl.Series(sorted(alive), dtype=pl.Int64).implode()))
    target = (
        moved.group_by("master_id", "now")
        .len()
        .sort("len", "now", descending=[True, False])
        .unique("master_id", keep="first")
    )
    for master_id, into, _n in target.iter_rows():
        session.execute(
            update(Master).where(Master.id == master_id).values(merged_into=into, updated_at=now)
        )
        session.add(
            MasterEvent(base=base.code, kind="merged", master_id=master_id, other_id=into, at=now)
        )
