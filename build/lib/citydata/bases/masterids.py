"""Master ids: an existing master for a known key, the id a row's master had in the previous
run (so a full re-run keeps ids), else a new one."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from citydata.bases.models import (
    Master,
)
from citydata.bases.spec import BaseSpec
from citydata.bases.staged import ROW_KEY
from citydata.db.base import utcnow
from citydata.ingest import staging


class MasterIds:
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
