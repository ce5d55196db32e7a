"""Summaries: each tile's payload computed once and kept (``brain_summaries``), with the versions
of the data it was computed from. A summary is stale when one of its topics has moved on since
(``mechanisms.changes``; the audit chain's head is its own version), when its declaration
changed, or when its scheduled refresh is due. Refreshing recomputes only the stale ones, all in
one round that shares what several tiles read; a viewer reads the stored payload and never
waits for a query — unless no summary exists at all (then it is computed once, on the spot)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citydata.audit.models import AuditHead
from citydata.brain import spec
from citydata.brain.models import Summary
from citydata.brain.queries import Context, Payload, find
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.mechanisms import changes

log = logging.getLogger(__name__)


def current_versions(session: Session) -> dict[str, int]:
    """Every topic's version now: the marked ones, and the audit chain's head."""
    head = session.scalar(select(AuditHead.last_id))
    return changes.versions(session) | {"audit": int(head or 0)}


def _wanted(tile: spec.Tile, versions: dict[str, int]) -> dict[str, int]:
    return {t: versions.get(t, 0) for t in tile.topics}


def stale(tile: spec.Tile, summary: Summary | None, versions: dict[str, int], now: datetime) -> str:
    """Why the tile's summary must be recomputed ("" when it need not)."""
    if summary is None:
        return "missing"
    if summary.digest != tile.digest:
        return "declaration"
    if summary.versions != _wanted(tile, versions):
        return "data"
    expires = as_utc(summary.expires_at)
    if expires is not None and expires <= now:
        return "schedule"
    return ""


@dataclass
class Refreshed:
    tile: str
    reason: str
    query_ms: float
    error: str = ""


def compute(ctx: Context, tile: spec.Tile) -> tuple[Payload, float]:
    started = time.perf_counter()
    payload = find(tile.query)(ctx)
    given = payload.get("kind", tile.chart)
    if spec.SHAPES.get(given) != spec.SHAPES[tile.chart]:
        raise spec.TileError(
            f"tile「{tile.name}」声明为 {tile.chart}，查询 {tile.query} 给出的是 {given}"
        )
    payload["kind"] = tile.chart  # the declaration decides how the same shape is drawn
    return payload, round((time.perf_counter() - started) * 1000, 2)


def _store(
    session: Session,
    tile: spec.Tile,
    payload: Payload,
    ms: float,
    versions: dict[str, int],
    now: datetime,
) -> Summary:
    """Keep the payload as the tile's summary. Two writers (the refresher and a first viewer,
    or two server processes) may store the same tile at once: the later one updates."""
    values = {
        "payload": payload,
        "versions": _wanted(tile, versions),
        "digest": tile.digest,
        "as_of": now,
        "computed_at": now,
        "expires_at": now + tile.refresh if tile.refresh else None,
        "query_ms": ms,
    }
    summary = session.get(Summary, tile.name)
    if summary is None:
        try:
            with session.begin_nested():
                summary = Summary(tile=tile.name, **values)
                session.add(summary)
            return summary
        except IntegrityError:  # another writer made it first
            summary = session.get(Summary, tile.name, populate_existing=True)
    for key, value in values.items():
        setattr(summary, key, value)
    return summary


def refresh(
    store: Store, now: datetime, chosen: list[spec.Tile], force: bool = False
) -> list[Refreshed]:
    """Recompute the stale summaries of ``chosen`` (all of them with ``force``) in one round; a
    query that fails keeps its old summary and is reported, the others go on."""
    done: list[Refreshed] = []
    with store.session() as session:
        versions = current_versions(session)
        held = {s.tile: s for s in session.scalars(select(Summary))}
        due = []
        for tile in chosen:
            reason = "forced" if force else stale(tile, held.get(tile.name), versions, now)
            if reason:
                due.append((tile, reason))
        if not due:
            return done
        for tile, _ in due:
            find(tile.query)  # every query module imported before any is timed
        ctx = Context(session, now)
        results = []
        for tile, reason in due:
            try:
                with session.begin_nested():  # a failing query leaves the round usable
                    payload, ms = compute(ctx, tile)
            except Exception as exc:
                log.exception("summary of tile %s failed", tile.name)
                done.append(Refreshed(tile.name, reason, 0.0, f"{type(exc).__name__}: {exc}"))
                continue
            results.append((tile, payload, ms))
            done.append(Refreshed(tile.name, reason, ms))
        for tile, payload, ms in results:
            _store(session, tile, payload, ms, versions, now)
    return done


def version_of(computed_at: datetime, versions: dict[str, int]) -> str:
    """A summary's version for a page: when it was computed, from which data (an app clock that
    stands still in a test still moves the version when the data does)."""
    said = json.dumps(versions, sort_keys=True) + as_utc(computed_at).isoformat()
    return hashlib.sha256(said.encode()).hexdigest()[:16]


@dataclass
class Reading:
    """A tile's payload as a viewer gets it, with where it came from and how long it took."""

    tile: spec.Tile
    payload: Payload
    from_summary: bool
    stale: str
    query_ms: float
    read_ms: float
    as_of: datetime
    computed_at: datetime
    versions: dict[str, int]

    @property
    def version(self) -> str:
        return version_of(self.computed_at, self.versions)

    def timing(self) -> dict[str, Any]:
        return {
            "query_ms": self.query_ms,
            "read_ms": self.read_ms,
            "from_summary": self.from_summary,
            "stale": self.stale,
            "as_of": self.as_of.isoformat(),
            "computed_at": self.computed_at.isoformat(),
        }


def read(
    session: Session,
    tile: spec.Tile,
    now: datetime,
    versions: dict[str, int] | None = None,
    held: Summary | None = None,
) -> Reading:
    """The stored summary (saying whether it is stale); computed on the spot only if none is
    usable — missing, or made under another declaration."""
    started = time.perf_counter()
    summary = held if held is not None else session.get(Summary, tile.name)
    versions = versions if versions is not None else current_versions(session)
    reason = stale(tile, summary, versions, now)
    if summary is None or reason == "declaration":
        ctx = Context(session, now)
        payload, ms = compute(ctx, tile)
        summary = _store(session, tile, payload, ms, versions, now)
        session.flush()
        return Reading(
            tile,
            payload,
            False,
            "",
            ms,
            round((time.perf_counter() - started) * 1000, 2),
            now,
            now,
            summary.versions,
        )
    return Reading(
        tile,
        summary.payload,
        True,
        reason,
        summary.query_ms,
        round((time.perf_counter() - started) * 1000, 2),
        as_utc(summary.as_of),
        as_utc(summary.computed_at),
        summary.versions,
    )


def read_all(session: Session, tiles: list[spec.Tile], now: datetime) -> list[Reading]:
    """Several tiles with one read of the versions and of their summaries."""
    versions = current_versions(session)
    held = {
        s.tile: s
        for s in session.scalars(select(Summary).where(Summary.tile.in_([t.name for t in tiles])))
    }
    return [read(session, t, now, versions, held.get(t.name)) for t in tiles]


def computed_at(session: Session, names: list[str]) -> dict[str, str]:
    """Each tile's summary version (when it was computed), for a page deciding what to fetch."""
    return {
        name: version_of(at, versions)
        for name, at, versions in session.execute(
            select(Summary.tile, Summary.computed_at, Summary.versions).where(
                Summary.tile.in_(names)
            )
        ).all()
    }
