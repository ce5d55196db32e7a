"""单元网格: the cells come from the spatial base (its live masters of level 单元网格), copied
with their bounding boxes so that a map can ask "which cells meet this box" in SQL. Points are
placed in their cells by one spatial join over all of them: in PostGIS where the database has
it (a ``geom`` column beside the WKT, GiST-indexed), else with shapely's STRtree. Where a point
lies on the border of two cells, both pick the cell with the smaller code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from weakref import WeakKeyDictionary

import numpy as np
import polars as pl
import shapely
from sqlalchemy import Engine, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION
from sqlalchemy.orm import Session

from citydata.bases.models import Master
from citydata.bases.spec import SPATIAL_LEVELS
from citydata.grid.models import Cell
from citydata.mechanisms import changes


def sync(session: Session) -> int:
    """Replace the cells with the spatial base's; returns how many there are."""
    records = session.scalars(
        select(Master.record).where(
            Master.base == "spatial", Master.merged_into.is_(None), Master.version > 0
        )
    ).all()
    records = [
        r
        for r in records
        if r.get("boundary") and r.get("code") and r.get("level") == SPATIAL_LEVELS["cell"]
    ]
    polygons = shapely.from_wkt([r["boundary"] for r in records], on_invalid="ignore")
    bounds = shapely.bounds(polygons) if records else np.empty((0, 4))
    session.execute(delete(Cell))
    rows = [
        {
            "grid_code": r["code"],
            "name": r.get("name") or r["code"],
            "division": r.get("division") or "",
            "street": r.get("street") or "",
            "community": r.get("community") or "",
            "boundary": r["boundary"],
            "min_x": b[0],
            "min_y": b[1],
            "max_x": b[2],
            "max_y": b[3],
        }
        for r, p, b in zip(records, polygons, bounds, strict=True)
        if p is not None and not np.isnan(b[0])
    ]
    if rows:
        session.execute(insert(Cell), rows)
        fill_geometry(session)
    changes.mark(session, "cells")
    return len(rows)


def fill_geometry(session: Session) -> None:
    """The PostGIS geometry from the WKT, where the cells have one."""
    if has_postgis(session):
        session.execute(text("UPDATE grid_cells SET geom = ST_GeomFromText(boundary, 4326)"))


# Per engine, asked once: whether the cells have a PostGIS geometry (the migration decides it
# for good), and the cells' tree with the fingerprint of the rows it was built from.
_POSTGIS: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()
_TREES: WeakKeyDictionary[Engine, tuple[tuple, Grid]] = WeakKeyDictionary()


def has_postgis(session: Session) -> bool:
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        return False
    if engine not in _POSTGIS:
        found = session.execute(
            text(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'grid_cells' AND column_name = 'geom'"
                " AND table_schema = current_schema()"
            )
        ).scalar()
        if found is None:  # not yet migrated, or no PostGIS: ask again next time
            return False
        _POSTGIS[engine] = True
    return _POSTGIS[engine]


class Locator(Protocol):
    def locate(self, longitude: np.ndarray, latitude: np.ndarray) -> pl.DataFrame: ...


def locator(session: Session) -> Locator:
    """PostGIS where the cells have a geometry, else the cells in memory with their tree —
    rebuilt only when the cells' rows changed (another process may have synced them)."""
    if has_postgis(session):
        return PostgisGrid(session)
    engine = session.get_bind().engine
    fingerprint = tuple(
        session.execute(
            select(
                func.count(),
                func.max(Cell.grid_code),
                func.sum(func.length(Cell.boundary)),
                func.sum(Cell.min_x + Cell.min_y + Cell.max_x + Cell.max_y),
            )
        ).one()
    )
    kept = _TREES.get(engine)
    if kept is None or kept[0] != fingerprint:
        kept = (fingerprint, Grid.load(session))
        _TREES[engine] = kept
    return kept[1]


def cell_of(grid: Locator, longitude: float, latitude: float) -> tuple[str, str] | None:
    found = grid.locate(np.array([longitude]), np.array([latitude])).row(0)
    return None if found[0] is None else (found[0], found[1])


# Each point with the first cell (by code) that holds it, in the points' order.
_LOCATE = text(
    """
    SELECT c.grid_code, c.division
    FROM unnest(:longitude, :latitude) WITH ORDINALITY AS p(lon, lat, i)
    LEFT JOIN LATERAL (
        SELECT grid_code, division FROM grid_cells
        WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
        ORDER BY grid_code LIMIT 1
    ) c ON true
    ORDER BY p.i
    """
).bindparams(
    bindparam("longitude", type_=ARRAY(DOUBLE_PRECISION)),
    bindparam("latitude", type_=ARRAY(DOUBLE_PRECISION)),
)


@dataclass(frozen=True)
class PostgisGrid:
    """The join done by the database, over its GiST index."""

    session: Session

    def locate(self, longitude: np.ndarray, latitude: np.ndarray) -> pl.DataFrame:
        rows = self.session.execute(
            _LOCATE,
            {
                "longitude": np.asarray(longitude, float).tolist(),
                "latitude": np.asarray(latitude, float).tolist(),
            },
        ).all()
        return pl.DataFrame(
            rows, schema={"grid_code": pl.String, "division": pl.String}, orient="row"
        )


@dataclass(frozen=True)
class Grid:
    """The cells in memory with their tree: built once per call site, queried for many points."""

    codes: list[str]
    divisions: list[str]
    polygons: np.ndarray
    tree: shapely.STRtree

    @classmethod
    def load(cls, session: Session) -> Grid:
        cells = session.execute(
            select(Cell.grid_code, Cell.division, Cell.boundary).order_by(Cell.grid_code)
        ).all()
        polygons = shapely.from_wkt([c.boundary for c in cells])
        return cls(
            [c.grid_code for c in cells],
            [c.division for c in cells],
            polygons,
            shapely.STRtree(polygons),
        )

    def locate(self, longitude: np.ndarray, latitude: np.ndarray) -> pl.DataFrame:
        """Each point's cell and district (null outside every cell), in the points' order."""
        n = len(longitude)
        points = shapely.points(np.asarray(longitude, float), np.asarray(latitude, float))
        point_index, cell_index = self.tree.query(points, predicate="intersects")
        # cells are in code order: of the cells holding a point, the smallest index wins
        order = np.lexsort((cell_index, point_index))
        held, cell = point_index[order], cell_index[order]
        first = np.unique(held, return_index=True)[1]
        chosen = np.full(n, -1)
        chosen[held[first]] = cell[first]
        placed = chosen >= 0
        codes = np.full(n, None, dtype=object)
        divisions = np.full(n, None, dtype=object)
        codes[placed] = np.asarray(self.codes, dtype=object)[chosen[placed]]
        divisions[placed] = np.asarray(self.divisions, dtype=object)[chosen[placed]]
        return pl.DataFrame(
            {"grid_code": codes.tolist(), "division": divisions.tolist()},
            schema={"grid_code": pl.String, "division": pl.String},
        )
