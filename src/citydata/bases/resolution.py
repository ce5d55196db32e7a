"""A resolution run: the staged rows of the classes that feed a base database become master
records, in one transaction (if it fails part-way the masters stay exactly as they were).

1. Rows not yet resolved are read from staging and normalised (``staged``).
2. Deterministic first: a row with a valid key joins the master of that key (made if new) —
   unless its name, birth date or sex say the key is someone else's (``keys``).
3. The rest are matched by the Splink model (``matching``); uncertain pairs go to review.
4. Golden records of every touched master are recomputed (``golden``) and the published
   tables updated (``publish``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    delete,
    func,
    select,
)

from citydata.bases.golden import golden_records, retire_orphans
from citydata.bases.keys import conflict_reviews, key_conflicts, key_slips
from citydata.bases.masterids import MasterIds
from citydata.bases.matching import match_unkeyed
from citydata.bases.models import (
    Master,
    MasterLink,
)
from citydata.bases.publish import publish
from citydata.bases.reviews import open_reviews
from citydata.bases.spec import spec
from citydata.bases.staged import (
    ROW_KEY,
    current_links,
    delete_links,
    prepared_rows,
)
from citydata.db.base import utcnow
from citydata.db.engine import Store
from citydata.ingest import staging
from citydata.match.engines import check_engine
from citydata.mechanisms import changes

Progress = Callable[[str, int, int], None]


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


# ---------------------------------------------------------------- the run


def resolve(
    store: Store,
    base_code: str,
    full: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    engine: str = "duckdb",
) -> RunReport:
    """Resolve the base's unresolved staged rows (all of them with ``full``) in one transaction.
    ``engine`` runs the matching model: ``duckdb`` here, or ``spark`` (local mode or a cluster,
    see docs/scale.md) — the same model, the same masters."""
    base = spec(base_code)
    check_engine(engine)  # before the transaction opens
    step = progress or (lambda _stage, _done, _total: None)
    started = datetime.now(UTC)
    now = now or utcnow()
    report = RunReport(base.code)
    with store.session() as session:
        conn = session.connection()
        step("读取", 0, 0)
        rows = prepared_rows(session, base)
        report.rows_seen = rows.height
        links = current_links(conn, base)
        previous = links
        if full:
            session.execute(delete(MasterLink).where(MasterLink.base == base.code))
            links = links.clear()
        # Links to rows that are gone (deleted, replaced or upserted away) are dropped.
        gone = links.join(rows.select(ROW_KEY), on=ROW_KEY, how="anti")
        if gone.height:
            delete_links(session, base, gone)
            report.links_dropped = gone.height
        links = links.join(gone.select(ROW_KEY), on=ROW_KEY, how="anti")
        fresh = rows.join(links.select(ROW_KEY), on=ROW_KEY, how="anti")
        step("确定性匹配", 0, fresh.height)
        ids = MasterIds(session, base, previous if full else None)
        # A valid key that is not the row's own (a parent's ID number on a child's record, a
        # slipped digit that still checks) would merge two people: such rows are matched like
        # rows without a key, and the conflict goes to a steward.
        conflict = key_conflicts(base, rows, fresh)
        conflicted = fresh.filter(conflict)
        conflict = conflict | key_slips(base, rows, fresh)
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
        matched, reviews = match_unkeyed(session, base, rows, resolved, unkeyed, ids, engine)
        report.by_match = matched.filter(pl.col("method") == "match").height
        report.by_review = matched.filter(pl.col("method") == "review").height
        reviews = pl.concat([reviews, conflict_reviews(conflicted, ids, reviews.schema)])
        new_links = pl.concat([keyed_links, matched.select(keyed_links.columns)])
        staging.insert_frame(
            conn, MasterLink.__table__, new_links.with_columns(pl.lit(base.code).alias("base"))
        )
        report.reviews_opened = open_reviews(session, base, reviews)
        report.rows_resolved = new_links.height
        report.new_masters = ids.created
        touched = set(new_links["master_id"].to_list()) | set(gone["master_id"].to_list())
        if full:
            touched |= set(previous["master_id"].to_list())
        step("生成主记录", 0, len(touched))
        all_links = pl.concat([links, new_links.select(links.columns)])
        report.changed_masters = golden_records(session, base, rows, all_links, touched, now)
        if full:
            retire_orphans(session, base, previous, all_links, now)
        publish(session, base, touched)
        changes.mark(session, "bases")  # the run's masters: summaries of them are stale
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
