"""一脑通用, the cockpit's door. The tiles are declarations (``spec``, ``tiles/*.toml``); their
figures are summaries (``summaries``) computed by the queries they name (``queries/``) and kept
fresh by the server: pre-warmed when it starts, refreshed when a domain marks their data changed
(``mechanisms.changes``) and when their schedule is due. Pages and the JSON read them here, cut
to what the viewer may see."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.brain import permissions, spec, summaries
from citydata.brain.summaries import Reading, Refreshed
from citydata.db.engine import Store

log = logging.getLogger(__name__)

# The map's shapes are kept like a tile's figures: refreshed when the grid cells change.
GEO = spec.Tile(
    name="geo_districts",
    section="",
    title="区县边界",
    definition="各区县的边界，为其单元网格的并集。",
    chart="map",
    query="geo.districts",
    permission="public",
    topics=("cells",),
    digest="geo-districts-1",
)


class Refused(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class View:
    """Which cockpit: the staff's or the public's, laptop or big screen."""

    public: bool = False
    screen: bool = False


def visible(user: User | None, view: View) -> list[tuple[spec.Section, list[spec.Tile]]]:
    """The sections and the tiles of each that this viewer may see in this view."""
    shown = []
    for section in spec.sections():
        tiles = [
            t
            for t in section.tiles
            if (t.public if view.public else permissions.may_see(user, t.permission))
            and (t.screen or not view.screen)
        ]
        if tiles:
            shown.append((section, tiles))
    return shown


def may_enter(user: User | None, view: View) -> bool:
    return view.public or permissions.is_staff(user)


def scoped(tile: spec.Tile, payload: dict[str, Any], user: User | None) -> dict[str, Any]:
    """A scoped tile as a unit's staff may see it: their own unit's series only, and no
    city-wide totals."""
    unit = permissions.own_unit_only(user) if tile.scope == "unit" else None
    if unit is None:
        return payload
    mine = copy.deepcopy(payload)
    mine["series"] = [s for s in mine.get("series", []) if s.get("key") == unit]
    mine.pop("figures", None)
    mine["scope"] = unit
    return mine


def cockpit(
    session: Session, user: User | None, view: View, now: datetime
) -> list[tuple[spec.Section, list[tuple[Reading, dict[str, Any]]]]]:
    """Every visible tile's reading and its payload for this viewer, section by section."""
    shown = visible(user, view)
    readings = summaries.read_all(session, [t for _, tiles in shown for t in tiles], now)
    by_name = {r.tile.name: r for r in readings}
    return [
        (
            section,
            [
                (by_name[t.name], scoped(t, by_name[t.name].payload, user))
                for t in tiles
                if t.name in by_name
            ],
        )
        for section, tiles in shown
    ]


def tile_reading(
    session: Session, user: User | None, name: str, now: datetime, public: bool = False
) -> tuple[Reading, dict[str, Any]]:
    try:
        tile = spec.tile(name)
    except spec.TileError as exc:
        raise Refused(str(exc), 404) from exc
    allowed = tile.public if public else permissions.may_see(user, tile.permission)
    if not allowed:
        raise Refused(f"「{tile.title}」只对{spec.PERMISSIONS[tile.permission]}开放", 403)
    reading = summaries.read(session, tile, now)
    return reading, scoped(tile, reading.payload, user)


def versions(session: Session, user: User | None, view: View) -> dict[str, str]:
    names = [t.name for _, tiles in visible(user, view) for t in tiles]
    return summaries.computed_at(session, names)


def districts(session: Session, now: datetime) -> dict[str, Any]:
    """The districts' outlines as GeoJSON, from their summary."""
    return summaries.read(session, GEO, now).payload.get("geojson") or {
        "type": "FeatureCollection",
        "features": [],
    }


def refresh(
    store: Store, now: datetime, names: list[str] | None = None, force: bool = False
) -> list[Refreshed]:
    """Recompute the stale summaries of ``names`` (every tile's and the map's shapes when none
    is named; all of them, stale or not, with ``force``)."""
    try:
        chosen = [spec.tile(n) for n in names] if names else [*spec.tiles().values(), GEO]
    except spec.TileError as exc:
        raise Refused(str(exc), 404) from exc
    return summaries.refresh(store, now, chosen, force)


def home(session: Session, now: datetime) -> Reading:
    """The home page's figures: the cockpit's own progress tile."""
    return summaries.read(session, spec.tile("agg_targets"), now)
