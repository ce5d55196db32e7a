"""Resolution: the staged rows of the classes that feed a base database become master records.

1. Rows not yet resolved are read from staging and normalised (match.prepare).
2. Deterministic first: a row with a valid key joins the master of that key (made if new).
3. The rest (no key, or an invalid one) are matched by the Splink model against the rows
   already resolved that share a name sound, date, phone or identifier with them, and among
   themselves; a row joins the master its cluster points to, or its cluster becomes a new master.
   Pairs between the review and match thresholds go to the review queue; a steward's decision
   is applied at once and respected by later runs.
4. Golden records of every touched master are recomputed: per attribute the value of the most
   trusted source, then the most recent batch, then the most frequent; every distinct value is
   kept with the row it came from. A changed record gets a new version (as-of queries).

A run is one transaction: if it fails part-way the masters stay exactly as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session, selectinload

from citydata.bases.models import (
    Master,
    MasterChange,
    MasterEvent,
    MasterLink,
    MasterValue,
    MasterVersion,
    MatchReview,
)
from citydata.bases.spec import BaseSpec, spec, specs
from citydata.catalog import vocab
from citydata.catalog.models import Field, ResourceClass, Unit
from citydata.db.base import as_utc, utcnow
from citydata.db.engine import Store
from citydata.ingest import staging
from citydata.ingest.models import Batch
from citydata.match.model import UID, block_columns, train_and_predict
from citydata.match.prepare import pinyin_column, prepare
from citydata.match.settings import MatchSettings
from citydata.standards import expressions as std

Progress = Callable[[str, int, int], None]
ROW_KEY = ["batch_id", "row"]
LINK_SCHEMA = {  # a staged row's link to its master, as master_links holds it
    "batch_id": pl.Int64,
    "row": pl.Int64,
    "class_code": pl.String,
    "master_id": pl.Int64,
    "method": pl.String,
    "weight": pl.Float64,
}
TRAINING_FLOOR = 2000  # fewer candidate rows than this: pad with resolved rows so EM can learn


@dataclass
class Feed:
    class_code: str
    unit_code: str
    table: str
    fields: dict[str, str]  # attribute -> field name


@dataclass
class RunReport:
    base: str
    rows_seen: int = 0
    rows_resolved: int = 0
    by_key: int = 0
    by_match: int = 0
    by_review: int = 0
    new_masters: int = 0
    masters: int = 0
    changed_masters: int = 0
    reviews_opened: int = 0
    links_dropped: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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


def _chunks(ids: list[int], size: int = 500):  # noqa: ANN202
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


def _prepared_rows(
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


# ---------------------------------------------------------------- the run


def resolve(
    store: Store,
    base_code: str,
    full: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> RunReport:
    """Resolve the base's unresolved staged rows (all of them with ``full``) in one transaction."""
    base = spec(base_code)
    step = progress or (lambda _stage, _done, _total: None)
    started = datetime.now(UTC)
    now = now or utcnow()
    report = RunReport(base.code)
    with store.session() as session:
        conn = session.connection()
        step("读取", 0, 0)
        rows = _prepared_rows(session, base)
        report.rows_seen = rows.height
        links = _links(conn, base)
        previous = links
        if full:
            session.execute(delete(MasterLink).where(MasterLink.base == base.code))
            links = links.clear()
        # Links to rows that are gone (deleted, replaced or upserted away) are dropped.
        gone = links.join(rows.select(ROW_KEY), on=ROW_KEY, how="anti")
        if gone.height:
            _delete_links(session, base, gone)
            report.links_dropped = gone.height
        links = links.join(gone.select(ROW_KEY), on=ROW_KEY, how="anti")
        fresh = rows.join(links.select(ROW_KEY), on=ROW_KEY, how="anti")
        step("确定性匹配", 0, fresh.height)
        ids = _MasterIds(session, base, previous if full else None)
        # A valid key that is not the row's own (a parent's ID number on a child's record, a
        # slipped digit that still checks) would merge two people: such rows are matched like
        # rows without a key, and the conflict goes to a steward.
        conflict = _key_conflicts(base, rows, fresh)
        conflicted = fresh.filter(conflict)
        conflict = conflict | _key_slips(base, rows, fresh)
        fresh = fresh.with_columns(pl.col("_keyed") & ~conflict).with_columns(
            pl.when(conflict).then(None).otherwise(pl.col(base.key)).alias(base.key)
        )
        keyed = fresh.filter(pl.col("_keyed"))
        keyed_links = keyed.select(
            *ROW_KEY,
            "class_code",
            ids.for_keys(keyed["_key"]).alias("master_id"),
            pl.lit("key").alias("method"),
            pl.lit(None, pl.Float64).alias("weight"),
        )
        report.by_key = keyed_links.height
        resolved = pl.concat([links, keyed_links.select(links.columns)])
        unkeyed = fresh.filter(~pl.col("_keyed"))
        step("概率匹配", 0, unkeyed.height)
        matched, reviews = _match_unkeyed(session, base, rows, resolved, unkeyed, ids)
        report.by_match = matched.filter(pl.col("method") == "match").height
        report.by_review = matched.filter(pl.col("method") == "review").height
        reviews = pl.concat([reviews, _conflict_reviews(conflicted, ids, reviews.schema)])
        new_links = pl.concat([keyed_links, matched.select(keyed_links.columns)])
        staging.insert_frame(
            conn, MasterLink.__table__, new_links.with_columns(pl.lit(base.code).alias("base"))
        )
        report.reviews_opened = _open_reviews(session, base, reviews)
        report.rows_resolved = new_links.height
        report.new_masters = ids.created
        touched = set(new_links["master_id"].to_list()) | set(gone["master_id"].to_list())
        if full:
            touched |= set(previous["master_id"].to_list())
        step("生成主记录", 0, len(touched))
        all_links = pl.concat([links, new_links.select(links.columns)])
        report.changed_masters = _golden_records(session, base, rows, all_links, touched, now)
        if full:
            _retire_orphans(session, base, previous, all_links, now)
        publish(session, base, touched)
        report.masters = (
            session.scalar(
                select(func.count())
                .select_from(Master)
                .where(Master.base == base.code, Master.merged_into.is_(None))
            )
            or 0
        )
    report.seconds = round((datetime.now(UTC) - started).total_seconds(), 2)
    step("完成", report.rows_resolved, report.rows_resolved)
    return report


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


def _key_conflicts(base: BaseSpec, rows: pl.DataFrame, fresh: pl.DataFrame) -> pl.Series:
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


def _key_slips(base: BaseSpec, rows: pl.DataFrame, fresh: pl.DataFrame) -> pl.Series:
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


def _conflict_reviews(conflicted: pl.DataFrame, ids: _MasterIds, schema: pl.Schema) -> pl.DataFrame:
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


def _links(conn: Connection, base: BaseSpec) -> pl.DataFrame:
    rows = conn.execute(
        select(*[MasterLink.__table__.c[c] for c in LINK_SCHEMA]).where(
            MasterLink.base == base.code
        )
    ).all()
    return pl.DataFrame(rows, schema=LINK_SCHEMA, orient="row")


def _delete_links(session: Session, base: BaseSpec, gone: pl.DataFrame) -> None:
    for batch_id, rows in gone.group_by("batch_id").agg(pl.col("row")).iter_rows():
        for part in _chunks(rows):
            session.execute(
                delete(MasterLink).where(
                    MasterLink.base == base.code,
                    MasterLink.batch_id == batch_id,
                    MasterLink.row.in_(part),
                )
            )


class _MasterIds:
    """Hands out master ids: an existing master for a known key, the id a row's master had in the
    previous run (so a full re-run keeps ids), else a new one. New masters are written at once."""

    def __init__(self, session: Session, base: BaseSpec, previous: pl.DataFrame | None):
        self.session, self.base, self.created = session, base, 0
        known = session.execute(
            select(Master.key, Master.id).where(Master.base == base.code, Master.key.is_not(None))
        ).all()
        self.by_key = pl.DataFrame(
            known, schema={"key": pl.String, "master_id": pl.Int64}, orient="row"
        )
        self.next_id = (session.scalar(select(func.max(Master.id))) or 0) + 1
        self.previous = previous

    def _create(self, count: int, keys: list[str | None]) -> list[int]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        self.created += count
        now = utcnow()
        staging.insert_frame(
            self.session.connection(),
            Master.__table__,
            pl.DataFrame(
                {
                    "id": ids,
                    "base": self.base.code,
                    "key": keys,
                    "version": 0,
                    "record": "{}",
                    "created_at": now,
                    "updated_at": now,
                },
                schema_overrides={"key": pl.String},
            ),
        )
        return ids

    def for_keys(self, keys: pl.Series) -> pl.Series:
        distinct = keys.unique().sort().to_frame("key")
        missing = distinct.join(self.by_key, on="key", how="anti")
        if missing.height:
            new = pl.DataFrame(
                {
                    "key": missing["key"],
                    "master_id": self._create(missing.height, missing["key"].to_list()),
                }
            )
            self.by_key = pl.concat([self.by_key, new])
        return keys.to_frame("key").join(self.by_key, on="key", how="left", maintain_order="left")[
            "master_id"
        ]

    def for_clusters(self, members: pl.DataFrame) -> pl.DataFrame:
        """cluster -> master id for clusters that become new masters (rows: cluster, batch_id, row)."""
        clusters = members["cluster"].unique().sort()
        reuse: dict[Any, int] = {}
        if self.previous is not None and self.previous.height:
            old = members.join(self.previous.select(*ROW_KEY, "master_id"), on=ROW_KEY)
            claimed: set[int] = set(self.by_key["master_id"].to_list())
            for cluster, master_id in (
                old.group_by("cluster", "master_id")
                .len()
                .sort("len", "master_id", descending=[True, False])
                .select("cluster", "master_id")
                .iter_rows()
            ):
                if cluster not in reuse and master_id not in claimed:
                    reuse[cluster] = master_id
                    claimed.add(master_id)
        fresh = [c for c in clusters.to_list() if c not in reuse]
        new_ids = self._create(len(fresh), [None] * len(fresh)) if fresh else []
        mapping = {**reuse, **dict(zip(fresh, new_ids, strict=True))}
        return pl.DataFrame(
            {"cluster": list(mapping), "master_id": list(mapping.values())},
            schema={"cluster": members["cluster"].dtype, "master_id": pl.Int64},
        )


def _match_unkeyed(
    session: Session,
    base: BaseSpec,
    rows: pl.DataFrame,
    resolved: pl.DataFrame,
    unkeyed: pl.DataFrame,
    ids: _MasterIds,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Links for rows without a valid key, and the uncertain (row, master, probability) pairs."""
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
    pairs, clusters = train_and_predict(records, settings)
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


def _open_reviews(session: Session, base: BaseSpec, reviews: pl.DataFrame) -> int:
    if reviews.height == 0:
        return 0
    existing = session.execute(
        select(MatchReview.batch_id, MatchReview.row, MatchReview.master_id).where(
            MatchReview.base == base.code
        )
    ).all()
    known = pl.DataFrame(
        existing,
        schema={"batch_id": pl.Int64, "row": pl.Int64, "master_id": pl.Int64},
        orient="row",
    )
    new = reviews.join(known, on=[*ROW_KEY, "master_id"], how="anti")
    staging.insert_frame(
        session.connection(),
        MatchReview.__table__,
        new.with_columns(
            pl.lit(base.code).alias("base"),
            pl.lit("pending").alias("status"),
            pl.lit(utcnow()).alias("created_at"),
        ),
    )
    return new.height


# ---------------------------------------------------------------- golden records


def _golden_records(
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
    for part in _chunks(ids.to_list()):
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
    for part in _chunks(sorted(touched)):
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
    for part in _chunks(changed):
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


def _retire_orphans(
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


# ---------------------------------------------------------------- the review queue


class ReviewError(ValueError):
    pass


def decide_review(session: Session, review_id: int, confirm: bool, username: str) -> MatchReview:
    """A steward's decision on an uncertain match. Confirming moves the row to the candidate
    master at once (both masters' golden records are recomputed); rejecting keeps the pair apart
    in every later run."""
    review = session.get(MatchReview, review_id)
    if review is None:
        raise ReviewError(f"没有待确认的匹配 {review_id}")
    if review.status != "pending":
        raise ReviewError(f"匹配 {review_id} 已经处理过（{review.status}）")
    review.status = "confirmed" if confirm else "rejected"
    review.decided_by, review.decided_at = username, utcnow()
    if confirm:
        base = spec(review.base)
        link = session.scalar(
            select(MasterLink).where(
                MasterLink.base == review.base,
                MasterLink.batch_id == review.batch_id,
                MasterLink.row == review.row,
            )
        )
        touched = {review.master_id} | ({link.master_id} if link else set())
        if link is None:
            session.add(
                MasterLink(
                    base=review.base,
                    master_id=review.master_id,
                    class_code=review.class_code,
                    batch_id=review.batch_id,
                    row=review.row,
                    method="review",
                )
            )
        else:
            link.master_id, link.method, link.weight = review.master_id, "review", None
        session.flush()
        _recompute(session, base, touched)
    return review


def _recompute(session: Session, base: BaseSpec, touched: set[int]) -> int:
    """Golden records of ``touched`` from their own rows only (no full read of the base)."""
    conn = session.connection()
    links = _links(conn, base).filter(
        pl.col("master_id").is_in(pl.Series(sorted(touched), dtype=pl.Int64).implode())
    )
    rows = _prepared_rows(session, base, links["batch_id"].unique().to_list())
    changed = _golden_records(session, base, rows, links, touched, utcnow())
    publish(session, base, touched)
    return changed


def pending_reviews(session: Session, base: str) -> int:
    query = select(func.count()).select_from(MatchReview)
    return (
        session.scalar(query.where(MatchReview.base == base, MatchReview.status == "pending")) or 0
    )


def reviews(
    session: Session,
    base: str,
    status: str = "pending",
    limit: int = 100,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """Uncertain matches with both sides shown: the row as sent and the candidate master (only
    of rows sent by ``unit``, when given)."""
    query = select(MatchReview).where(MatchReview.base == base, MatchReview.status == status)
    if unit is not None:
        query = query.join(ResourceClass, ResourceClass.code == MatchReview.class_code).where(
            ResourceClass.provider_code == unit
        )
    items = list(session.scalars(query.order_by(MatchReview.probability.desc()).limit(limit)))
    if not items:
        return []
    bspec = spec(base)
    sources = feeds(session, bspec)
    rows = staged_rows(session.connection(), bspec, sources, sorted({r.batch_id for r in items}))
    by_row = {(r["batch_id"], r["row"]): r for r in rows.to_dicts()}
    masters = {
        m.id: m
        for m in session.scalars(select(Master).where(Master.id.in_([r.master_id for r in items])))
    }
    return [
        {
            "id": r.id,
            "class_code": r.class_code,
            "batch_id": r.batch_id,
            "row": r.row,
            "probability": round(r.probability, 4),
            "reason": r.reason,
            "status": r.status,
            "source": {a: by_row.get((r.batch_id, r.row), {}).get(a) for a in bspec.attributes},
            "master_id": r.master_id,
            "master": masters[r.master_id].record if r.master_id in masters else {},
            "decided_by": r.decided_by,
        }
        for r in items
    ]


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
        Column("master_id", Integer, primary_key=True),
        Column("key", String(64), index=True),
        *[Column(a, Text) for a in base.attributes],
        *[Column(f"{a}_master", Integer) for a, _ in base.links],
        *located,
        Column("version", Integer),
        Column("updated_at", DateTime(timezone=True)),
    )


def _link_masters(session: Session, values: pl.Series, target: str) -> pl.Series:
    """The master id in base ``target`` whose key is each value (null where none is)."""
    wanted = values.drop_nulls().unique().to_list()
    found: list[tuple[str, int]] = []
    for part in _chunks(wanted):
        found += session.execute(
            select(Master.key, Master.id).where(Master.base == target, Master.key.in_(part))
        ).all()
    table = pl.DataFrame(found, schema={"value": pl.String, "target": pl.Int64}, orient="row")
    return values.to_frame("value").join(table, on="value", how="left", maintain_order="left")[
        "target"
    ]


def _locate(session: Session, frame: pl.DataFrame, longitude: str, latitude: str) -> pl.DataFrame:
    """Grid cell and district of each row's point: a spatial join (shapely's STRtree) against
    the cells of the spatial base."""
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
    cells = [c for c in cells if c.get("boundary")]
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
            "located_grid": [c.get("grid_code") for c in cells],
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
    for part in _chunks(sorted(touched)):
        conn.execute(delete(table).where(table.c.master_id.in_(part)))
    live = []
    for part in _chunks(sorted(touched)):
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
