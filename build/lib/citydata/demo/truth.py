"""Measure resolution against the demo city's truth: which real person, legal person or house
every source row belongs to."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from sqlalchemy import select

from citydata.bases.models import MasterLink
from citydata.db.engine import Store
from citydata.ingest.models import Batch
from citydata.match.model import pairs_within

ENTITY = {"population": "person", "legal_person": "legal_person", "housing": "house"}


def pairwise_scores(clustered: pl.DataFrame, cluster: str, truth: str) -> dict[str, float]:
    """Pairwise precision, recall and F1 of ``cluster`` against ``truth`` (same rows)."""
    together = pairs_within(clustered, cluster, truth)
    predicted, actual = pairs_within(clustered, cluster), pairs_within(clustered, truth)
    precision = together / predicted if predicted else 1.0
    recall = together / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "rows": clustered.height,
    }


def linked_rows(store: Store, base: str) -> pl.DataFrame:
    """Each resolved row as (file name, source row, master id)."""
    with store.session() as session:
        rows = session.execute(
            select(Batch.file_name, MasterLink.row, MasterLink.master_id)
            .join(Batch, Batch.id == MasterLink.batch_id)
            .where(MasterLink.base == base)
        ).all()
    return pl.DataFrame(
        rows, schema={"file": pl.String, "row": pl.Int64, "master_id": pl.Int64}, orient="row"
    )


def truth_rows(city: Path, base: str) -> pl.DataFrame:
    """(file name, row, entity id) for every source row of the base's entity."""
    rows = pl.read_parquet(city / "truth/rows.parquet").filter(pl.col("entity") == ENTITY[base])
    return rows.select(pl.col("file").str.split("/").list.last().alias("file"), "row", "entity_id")


def resolution_scores(store: Store, city: Path, base: str) -> dict[str, float]:
    joined = linked_rows(store, base).join(truth_rows(city, base), on=["file", "row"])
    return pairwise_scores(joined, "master_id", "entity_id")
