"""The review queue: uncertain matches and key conflicts, decided by a steward; a decision is
applied at once and respected by every later run."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from citydata.bases.golden import golden_records
from citydata.bases.models import (
    Master,
    MasterLink,
    MatchReview,
)
from citydata.bases.publish import publish
from citydata.bases.spec import BaseSpec, spec
from citydata.bases.staged import ROW_KEY, current_links, feeds, prepared_rows, staged_rows
from citydata.catalog.models import ResourceClass
from citydata.db.base import utcnow
from citydata.ingest import staging
from citydata.mechanisms import changes


def open_reviews(session: Session, base: BaseSpec, reviews: pl.DataFrame) -> int:
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
    changes.mark(session, "bases")
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
    links = current_links(conn, base).filter(
        pl.col("master_id").is_in(pl.Series(sorted(touched), dtype=pl.Int64).implode())
    )
    rows = prepared_rows(session, base, links["batch_id"].unique().to_list())
    changed = golden_records(session, base, rows, links, touched, utcnow())
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
