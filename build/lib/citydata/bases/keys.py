"""Which valid keys are not a row's own: a parent's ID number on a child's record, a slipped
digit that still checks. Joining such rows by key would merge two people."""

from __future__ import annotations

import polars as pl

from citydata.bases.masterids import MasterIds
from citydata.bases.spec import BaseSpec
from citydata.bases.staged import ROW_KEY
from citydata.match.prepare import pinyin_column

# A name differing from the key's owner in more characters than this is someone else's; one
# character is a typing slip (张伟明/张华明), a homophone none (same pinyin).
NAME_SLIPS = 1


def _differing_characters(a: pl.Expr, b: pl.Expr, width: int = 6) -> pl.Expr:
    """How many of the first ``width`` characters differ, plus the difference in length."""
    length = (a.str.len_chars().cast(pl.Int32) - b.str.len_chars().cast(pl.Int32)).abs()
    return (
        pl.sum_horizontal(
            (a.str.slice(i, 1) != b.str.slice(i, 1)).fill_null(False).cast(pl.Int32)
            for i in range(width)
        )
        + length
    )


def key_conflicts(base: BaseSpec, rows: pl.DataFrame, fresh: pl.DataFrame) -> pl.Series:
    """Which fresh keyed rows contradict the ID number they carry: its own birth date or sex,
    or the name of the key's owner (the most common name among the rows of that key whose birth
    date and sex agree with it). Only the population base has keys that say this much."""
    if base.key_rule != "id_number" or fresh.height == 0:
        return pl.Series("conflict", [False] * fresh.height, dtype=pl.Boolean)
    key = pl.col(base.key)
    disagree = []
    if "birth_date" in base.attributes:
        born = pl.concat_str(
            key.str.slice(6, 4),
            pl.lit("-"),
            key.str.slice(10, 2),
            pl.lit("-"),
            key.str.slice(12, 2),
        )
        disagree.append(pl.col("birth_date").is_not_null() & (pl.col("birth_date") != born))
    if "sex" in base.attributes:
        male = key.str.slice(16, 1).cast(pl.Int32, strict=False) % 2 == 1
        said = (
            pl.when(pl.col("sex").is_in(["男", "M", "1"]))
            .then(True)
            .when(pl.col("sex").is_in(["女", "F", "2"]))
            .then(False)
        )
        disagree.append(said.is_not_null() & (said != male))
    own = pl.any_horizontal(disagree).fill_null(False) if disagree else pl.lit(False)
    flagged = fresh.select(own.alias("conflict"))["conflict"]
    if "name" not in base.attributes:
        return flagged & fresh["_keyed"]
    owners = (
        rows.filter(pl.col("_keyed") & pl.col("name").is_not_null() & ~own.fill_null(False))
        .group_by("_key", "name")
        .len()
        .sort("len", "name", descending=[True, False])
        .unique("_key", keep="first")
        .select("_key", pl.col("name").alias("_owner"))
    )
    pinyin = pinyin_column("name")
    owner_pinyin = (
        rows.select("name", pinyin)
        .unique("name")
        .rename({"name": "_owner", pinyin: "_owner_pinyin"})
    )
    named = (
        fresh.select("_key", "name", pinyin)
        .join(owners, on="_key", how="left", maintain_order="left")
        .join(owner_pinyin, on="_owner", how="left", maintain_order="left")
        .select(
            (
                pl.col("name").is_not_null()
                & pl.col("_owner").is_not_null()
                & (pl.col(pinyin) != pl.col("_owner_pinyin")).fill_null(True)
                & (_differing_characters(pl.col("name"), pl.col("_owner")) > NAME_SLIPS)
            ).alias("conflict")
        )["conflict"]
    )
    return (flagged | named) & fresh["_keyed"]


def key_slips(base: BaseSpec, rows: pl.DataFrame, fresh: pl.DataFrame) -> pl.Series:
    """Which fresh keyed rows carry a slipped number: a valid number one serial digit away from
    another number of the same division, birth date and name (a clerk's slip that the system
    "corrected" by recomputing the check digit). The number with more rows is the person's; the
    other's rows are matched like rows without a key, and so join that person."""
    if base.key_rule != "id_number" or fresh.height == 0 or "name" not in base.attributes:
        return pl.Series("slip", [False] * fresh.height, dtype=pl.Boolean)
    pinyin = pinyin_column("name")
    keys = (
        rows.filter(pl.col("_keyed") & pl.col(pinyin).is_not_null())
        .group_by("_key", pinyin)
        .agg(pl.len().alias("n"), pl.col("_rank").min().alias("rank"))
        .with_columns(pl.col("_key").str.slice(0, 14).alias("_head"))
    )
    pairs = keys.join(keys, on=["_head", pinyin], suffix="_other").filter(
        pl.col("_key") != pl.col("_key_other")
    )
    serial = _differing_characters(
        pl.col("_key").str.slice(14, 3), pl.col("_key_other").str.slice(14, 3), width=3
    )
    # the other number wins: more rows, then the more trusted source, then the smaller number
    loses = (pl.col("n_other") > pl.col("n")) | (
        (pl.col("n_other") == pl.col("n"))
        & (
            (pl.col("rank_other") < pl.col("rank"))
            | ((pl.col("rank_other") == pl.col("rank")) & (pl.col("_key_other") < pl.col("_key")))
        )
    )
    slipped = pairs.filter((serial == 1) & loses).select("_key", pinyin).unique()
    return (
        fresh.select("_key", pinyin)
        .join(slipped.with_columns(pl.lit(True).alias("slip")), on=["_key", pinyin], how="left")
        .select(pl.col("slip").fill_null(False))["slip"]
        & fresh["_keyed"]
    )


def conflict_reviews(conflicted: pl.DataFrame, ids: MasterIds, schema: pl.Schema) -> pl.DataFrame:
    """A review of each row whose key contradicts it, against the key's master, if there is one:
    a steward confirms (the same person after all: a date mistyped) or rejects."""
    if conflicted.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        conflicted.select(*ROW_KEY, "class_code", pl.col("_key").alias("key"))
        .join(ids.by_key, on="key")
        .select(
            *ROW_KEY,
            "class_code",
            "master_id",
            pl.lit(0.0).alias("probability"),
            pl.lit("key_conflict").alias("reason"),
        )
        .cast(schema)
    )
