"""Match records across any tables: read, normalise, score pairs, cluster.

The result has one row per input record: its file, its record id, the cluster it belongs to
(the smallest record of the cluster names it) and its best match weight inside the cluster."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from citydata.match.model import UID, train_and_predict
from citydata.match.prepare import prepare
from citydata.match.settings import MatchSettings


def read_table(path: Path) -> pl.DataFrame:
    """CSV (UTF-8 or GBK, as departments send it) or Parquet, every column as text."""
    from citydata.ingest.readers import open_source

    with open_source(path) as source:
        chunks = list(source.chunks())
    return (
        pl.concat(chunks)
        if chunks
        else pl.DataFrame(schema=dict.fromkeys(source.columns, pl.String))
    )


def match_frames(
    frames: dict[str, pl.DataFrame], settings: MatchSettings, engine: str = "duckdb"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clusters: source, record_id, cluster_id, match_weight; uncertain pairs for review),
    the model run on ``engine`` (``duckdb`` or ``spark``)."""
    parts = []
    for source, frame in frames.items():
        settings.check_columns(frame.columns, source)
        parts.append(
            frame.select(
                pl.lit(source).alias("source"),
                pl.col(settings.record_id).cast(pl.String).alias("record_id"),
                *[pl.col(c).cast(pl.String) for c in settings.columns],
            )
        )
    records = prepare(pl.concat(parts), settings.columns).with_row_index(UID)
    records = records.with_columns(pl.col(UID).cast(pl.Int64))
    pairs, clusters, _ = train_and_predict(records, settings, engine)
    best = (
        pl.concat(
            [
                pairs.select(pl.col(f"{UID}_l").alias(UID), "match_weight", "match_probability"),
                pairs.select(pl.col(f"{UID}_r").alias(UID), "match_weight", "match_probability"),
            ]
        )
        .filter(pl.col("match_probability") >= settings.match_threshold)
        .group_by(UID)
        .agg(pl.col("match_weight").max())
    )
    ids = records.select(UID, "source", "record_id")
    result = (
        ids.join(clusters.select(UID, "cluster_id"), on=UID, how="left")
        .join(best, on=UID, how="left")
        .with_columns(pl.col("cluster_id").fill_null(pl.col(UID)))
    )
    # Name each cluster by its first record, so the names are stable and readable.
    first = result.group_by("cluster_id").agg(pl.col(UID).min().alias("first"))
    result = (
        result.join(first, on="cluster_id")
        .join(
            ids.select(pl.col(UID).alias("first"), pl.col("record_id").alias("cluster")), on="first"
        )
        .sort(UID)
        .select(
            "source",
            "record_id",
            pl.col("cluster").alias("cluster_id"),
            pl.col("match_weight").round(3),
        )
    )
    uncertain = pairs.filter(pl.col("match_probability") < settings.match_threshold).select(
        pl.col(f"{UID}_l"), pl.col(f"{UID}_r"), "match_weight", "match_probability"
    )
    uncertain = (
        uncertain.join(
            ids.rename({UID: f"{UID}_l", "source": "source_l", "record_id": "record_id_l"}),
            on=f"{UID}_l",
        )
        .join(
            ids.rename({UID: f"{UID}_r", "source": "source_r", "record_id": "record_id_r"}),
            on=f"{UID}_r",
        )
        .select(
            "source_l",
            "record_id_l",
            "source_r",
            "record_id_r",
            pl.col("match_weight").round(3),
            pl.col("match_probability").round(4),
        )
    )
    return result, uncertain
