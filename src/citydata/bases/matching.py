"""Rows without a valid key, matched by the Splink model against the resolved rows that share
a block with them, and among themselves; uncertain pairs become reviews."""

from __future__ import annotations

import polars as pl
from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from citydata.bases.masterids import MasterIds
from citydata.bases.models import (
    MatchReview,
)
from citydata.bases.spec import BaseSpec
from citydata.bases.staged import LINK_SCHEMA, ROW_KEY
from citydata.match.model import UID, block_columns, train_and_predict
from citydata.match.settings import MatchSettings

TRAINING_FLOOR = 2000  # fewer candidate rows than this: pad with resolved rows so EM can learn


def match_unkeyed(
    session: Session,
    base: BaseSpec,
    rows: pl.DataFrame,
    resolved: pl.DataFrame,
    unkeyed: pl.DataFrame,
    ids: MasterIds,
    engine: str = "duckdb",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Links for rows without a valid key, and the uncertain (row, master, probability) pairs;
    the model runs on ``engine`` (``duckdb`` or ``spark``)."""
    review_schema = {
        "batch_id": pl.Int64,
        "row": pl.Int64,
        "class_code": pl.String,
        "master_id": pl.Int64,
        "probability": pl.Float64,
        "reason": pl.String,
    }
    if unkeyed.height == 0:
        return pl.DataFrame(schema=LINK_SCHEMA), pl.DataFrame(schema=review_schema)
    decisions = _decisions(session, base)
    confirmed = (
        unkeyed.join(decisions.filter(pl.col("status") == "confirmed"), on=ROW_KEY)
        .select(
            *ROW_KEY,
            "class_code",
            "master_id",
            pl.lit("review").alias("method"),
            pl.lit(None, pl.Float64).alias("weight"),
        )
        .unique(ROW_KEY, keep="first")
    )
    unkeyed = unkeyed.join(confirmed.select(ROW_KEY), on=ROW_KEY, how="anti")
    if unkeyed.height == 0:
        return confirmed.cast(LINK_SCHEMA), pl.DataFrame(schema=review_schema)
    # Candidates: resolved rows sharing a blocking value with an unkeyed row.
    pool = rows.join(resolved.select(*ROW_KEY, "master_id"), on=ROW_KEY)
    settings = MatchSettings(record_id=UID, columns=dict(base.attributes))
    shared = [
        pool.join(unkeyed.select(group).drop_nulls().unique(), on=list(group), how="semi")
        for group in block_columns(settings)
    ]
    candidates = pl.concat(shared).unique(ROW_KEY) if shared else pool.clear()
    if candidates.height + unkeyed.height < TRAINING_FLOOR and pool.height:
        padding = pool.join(candidates.select(ROW_KEY), on=ROW_KEY, how="anti")
        candidates = pl.concat(
            [candidates, padding.sample(min(padding.height, TRAINING_FLOOR), seed=7)]
        )
    records = (
        pl.concat(
            [candidates, unkeyed.with_columns(pl.lit(None, pl.Int64).alias("master_id"))],
            how="diagonal_relaxed",
        )
        .with_row_index(UID)
        .with_columns(pl.col(UID).cast(pl.Int64))
    )
    pairs, clusters, _ = train_and_predict(records, settings, engine)
    records = records.join(
        clusters.select(UID, pl.col("cluster_id").alias("cluster")), on=UID, how="left"
    ).with_columns(pl.col("cluster").fill_null(pl.col(UID)))
    new_rows = records.filter(pl.col("master_id").is_null())
    # Each pair between an unkeyed row and a resolved row, as (row uid, master, probability).
    known = records.filter(pl.col("master_id").is_not_null()).select(UID, "master_id")
    edges = (
        pl.concat(
            [
                pairs.select(
                    pl.col(f"{UID}_l").alias("a"),
                    pl.col(f"{UID}_r").alias("b"),
                    "match_probability",
                    "match_weight",
                ),
                pairs.select(
                    pl.col(f"{UID}_r").alias("a"),
                    pl.col(f"{UID}_l").alias("b"),
                    "match_probability",
                    "match_weight",
                ),
            ]
        )
        .join(new_rows.select(pl.col(UID).alias("a")), on="a", how="semi")
        .join(known.rename({UID: "b"}), on="b")
    )
    rejected = decisions.filter(pl.col("status") == "rejected").select(*ROW_KEY, "master_id")
    edges = edges.join(new_rows.select(pl.col(UID).alias("a"), *ROW_KEY), on="a").join(
        rejected, on=[*ROW_KEY, "master_id"], how="anti"
    )
    strong = edges.filter(pl.col("match_probability") >= settings.match_threshold)
    best = (
        strong.sort("match_weight", descending=True)
        .unique("a", keep="first")
        .select(pl.col("a").alias(UID), "master_id", pl.col("match_weight").alias("weight"))
    )
    # A row with no direct strong edge follows its cluster's most common master, if any.
    cluster_master = (
        records.filter(pl.col("master_id").is_not_null())
        .join(new_rows.select("cluster").unique(), on="cluster", how="semi")
        .group_by("cluster", "master_id")
        .len()
        .sort("len", "master_id", descending=[True, False])
        .unique("cluster", keep="first")
        .select("cluster", pl.col("master_id").alias("cluster_master"))
    )
    placed = (
        new_rows.select(UID, *ROW_KEY, "class_code", "cluster")
        .join(best, on=UID, how="left")
        .join(cluster_master, on="cluster", how="left")
        .with_columns(pl.coalesce("master_id", "cluster_master").alias("master_id"))
    )
    orphans = placed.filter(pl.col("master_id").is_null())
    if orphans.height:
        made = ids.for_clusters(orphans.select("cluster", *ROW_KEY))
        placed = placed.join(
            made.rename({"master_id": "made"}), on="cluster", how="left"
        ).with_columns(
            pl.coalesce("master_id", "made").alias("master_id"),
            pl.when(
                pl.col("made").is_not_null()
                & pl.col("cluster_master").is_null()
                & pl.col("weight").is_null()
            )
            .then(pl.lit("new"))
            .otherwise(pl.lit("match"))
            .alias("method"),
        )
    else:
        placed = placed.with_columns(pl.lit("match").alias("method"))
    links = pl.concat(
        [confirmed.cast(LINK_SCHEMA), placed.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA)]
    )
    reviews = (
        edges.filter(pl.col("match_probability") < settings.match_threshold)
        .join(links.select(*ROW_KEY, pl.col("master_id").alias("linked")), on=ROW_KEY)
        .filter(pl.col("master_id") != pl.col("linked"))
        .join(new_rows.select(*ROW_KEY, "class_code"), on=ROW_KEY)
        .sort("match_probability", descending=True)
        .unique([*ROW_KEY, "master_id"], keep="first")
        .select(
            *ROW_KEY,
            "class_code",
            "master_id",
            pl.col("match_probability").alias("probability"),
            pl.lit("match").alias("reason"),
        )
    )
    return links, reviews.cast(review_schema)


def _decisions(session: Session, base: BaseSpec) -> pl.DataFrame:
    rows = session.execute(
        select(
            MatchReview.batch_id, MatchReview.row, MatchReview.master_id, MatchReview.status
        ).where(MatchReview.base == base.code, MatchReview.status != "pending")
    ).all()
    return pl.DataFrame(
        rows,
        schema={"batch_id": pl.Int64, "row": pl.Int64, "master_id": pl.Int64, "status": pl.String},
        orient="row",
    )
