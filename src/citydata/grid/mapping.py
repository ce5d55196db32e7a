"""What the map draws: events in a bounding box as GeoJSON (the box, the filters and the limit
applied in SQL on an index of longitude, latitude and status), counts per cell when there are too
many points to draw (clusters), and the cells and districts as polygons from the spatial base —
no online tiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import shapely
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from citydata.grid.events import OPEN_STATUSES, TRANSITIONS, GridError
from citydata.grid.models import Cell, Event
from citydata.grid.sla import category

POINTS_MAX = 2000  # more than this in the box: counts per cell instead


@dataclass(frozen=True)
class Box:
    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> Box:
        """``west,south,east,north`` in degrees."""
        try:
            west, south, east, north = (float(v) for v in text.split(","))
        except ValueError:
            raise GridError("bbox 须为「西,南,东,北」四个经纬度数值", 400, "bad_bbox") from None
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise GridError("bbox 的范围无效", 400, "bad_bbox")
        return cls(west, south, east, north)


@dataclass(frozen=True)
class MapFilter:
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    unit: str = ""
    since: datetime | None = None
    until: datetime | None = None
    overdue: bool = False

    def where(self, now: datetime) -> list:
        conditions = []
        unknown = [s for s in self.statuses if s not in TRANSITIONS.labels and s != "open"]
        if unknown:
            raise GridError(f"未知的状态 {unknown}", 400, "bad_status")
        if self.categories:
            conditions.append(Event.category.in_(self.categories))
        if self.statuses:
            wanted = set(self.statuses)
            if "open" in wanted:
                wanted = (wanted - {"open"}) | OPEN_STATUSES
            conditions.append(Event.status.in_(sorted(wanted)))
        if self.unit:
            conditions.append(Event.unit_code == self.unit)
        if self.since:
            conditions.append(Event.reported_at >= self.since)
        if self.until:
            conditions.append(Event.reported_at < self.until)
        if self.overdue:
            conditions.append(Event.due_at < now)
        return conditions


def _in(box: Box):
    return and_(
        Event.longitude.between(box.west, box.east), Event.latitude.between(box.south, box.north)
    )


def events_geojson(
    session: Session, box: Box, wanted: MapFilter, now: datetime | None = None
) -> dict:
    """The events in ``box`` as a FeatureCollection; past ``POINTS_MAX``, one point per cell
    with its count (``cluster``) at the cell's centre."""
    now = now or datetime.now(UTC)
    where = [_in(box), *wanted.where(now)]
    # how many, up to the limit, from the index alone: a crowded box never reads its rows
    upto = select(Event.id).where(*where).limit(POINTS_MAX + 1).subquery()
    if session.scalar(select(func.count()).select_from(upto)) > POINTS_MAX:
        return _clusters(session, where, now)
    rows = session.execute(
        select(
            Event.event_no,
            Event.category,
            Event.status,
            Event.longitude,
            Event.latitude,
            Event.due_at,
            Event.unit_code,
        )
        .where(*where)
        .order_by(Event.id.desc())
        .limit(POINTS_MAX)
    ).all()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.longitude, r.latitude]},
            "properties": {
                "event_no": r.event_no,
                "category": r.category,
                "category_name": _name(r.category),
                "status": r.status,
                "status_name": TRANSITIONS.label(r.status),
                "unit": r.unit_code,
                "overdue": bool(r.due_at and _aware(r.due_at) < now),
            },
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features, "clustered": False}


def _clusters(session: Session, where: list, now: datetime) -> dict:
    """One point per cell at the mean of its events, with their count and how many are overdue."""
    counts = session.execute(
        select(
            Event.grid_code,
            func.count(),
            func.avg(Event.longitude),
            func.avg(Event.latitude),
            func.sum(case((Event.due_at < now, 1), else_=0)),
        )
        .where(*where)
        .group_by(Event.grid_code)
    ).all()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
            "properties": {"cluster": True, "grid_code": code, "count": n, "overdue": int(late)},
        }
        for code, n, x, y, late in counts
    ]
    return {"type": "FeatureCollection", "features": features, "clustered": True}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _name(code: str) -> str:
    found = category(code)
    return found.name if found else code


def cells_geojson(session: Session, box: Box | None = None) -> dict:
    query = select(
        Cell.grid_code, Cell.name, Cell.division, Cell.street, Cell.community, Cell.boundary
    )
    if box is not None:
        query = query.where(
            Cell.max_x >= box.west,
            Cell.min_x <= box.east,
            Cell.max_y >= box.south,
            Cell.min_y <= box.north,
        )
    rows = session.execute(query.order_by(Cell.grid_code)).all()
    shapes = shapely.from_wkt([r.boundary for r in rows])
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shape),
                "properties": {
                    "grid_code": r.grid_code,
                    "name": r.name,
                    "division": r.division,
                    "street": r.street,
                    "community": r.community,
                },
            }
            for r, shape in zip(rows, shapes, strict=True)
        ],
    }


def districts_geojson(session: Session, names: dict[str, str], box: Box | None = None) -> dict:
    """Each district's outline from the spatial base (its areas of level 区县), with its name and
    a point for the label; a district the base has no outline for (an installation that loaded
    only its cells) is the union of its cells. With ``box``: the districts meeting it, clipped
    to it. The map draws the city's own outlines, not anyone's tiles."""
    from citydata.bases.service import spatial_areas

    shapes = {
        a["code"]: shapely.from_wkt(a["boundary"])
        for a in spatial_areas(session, "district")
        if a["code"]
    }
    for division in sorted(set(session.scalars(select(Cell.division).distinct())) - set(shapes)):
        parts = session.scalars(select(Cell.boundary).where(Cell.division == division)).all()
        shapes[division] = shapely.union_all(shapely.from_wkt(parts))
    features = []
    for division, outline in sorted(shapes.items()):
        if outline is None or outline.is_empty:
            continue
        if box is not None:
            outline = shapely.clip_by_rect(outline, box.west, box.south, box.east, box.north)
            if outline.is_empty or outline.area == 0:
                continue
        inside = outline.representative_point()
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(outline),
                "properties": {
                    "division": division,
                    "name": names.get(division, division),
                    "label_at": [round(inside.x, 6), round(inside.y, 6)],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def extent(session: Session) -> Box | None:
    found = session.execute(
        select(
            func.min(Cell.min_x), func.min(Cell.min_y), func.max(Cell.max_x), func.max(Cell.max_y)
        )
    ).one()
    return None if found[0] is None else Box(*found)


# ---------------------------------------------------------------- the drawn map

WIDTH, HEIGHT = 900, 640


@dataclass(frozen=True)
class Drawing:
    """A map drawn server-side as SVG: the city's own cells and districts, and the events."""

    width: int
    height: int
    cells: list[dict]  # {path, grid_code, name}
    districts: list[dict]  # {path, division, x, y}
    points: list[dict]  # {x, y, r, overdue, label, href, status}
    clustered: bool


def draw(
    session: Session,
    box: Box | None,
    wanted: MapFilter,
    now: datetime,
    names: dict[str, str],
) -> Drawing | None:
    """The map of ``box`` (the whole grid when None), with the events that pass ``wanted``."""
    whole = extent(session)
    if whole is None:
        return None
    box = box or whole
    scale = min(WIDTH / (box.east - box.west), HEIGHT / (box.north - box.south))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return round((lon - box.west) * scale, 1), round((box.north - lat) * scale, 1)

    def path(shape) -> str:
        parts = []
        for polygon in getattr(shape, "geoms", [shape]):
            ring = [xy(x, y) for x, y in polygon.exterior.coords]
            parts.append("M" + " L".join(f"{x},{y}" for x, y in ring) + " Z")
        return " ".join(parts)

    cells = cells_geojson(session, box)["features"]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in cells]
    districts = []
    for feature in districts_geojson(session, names, box)["features"]:
        x, y = xy(*feature["properties"]["label_at"])
        outline = shapely.geometry.shape(feature["geometry"])
        districts.append(
            {"path": path(outline), "division": feature["properties"]["name"]} | {"x": x, "y": y}
        )
    found = events_geojson(session, box, wanted, now)
    points = []
    for feature in found["features"]:
        x, y = xy(*feature["geometry"]["coordinates"])
        p = feature["properties"]
        if found["clustered"]:
            points.append(
                {
                    "x": x,
                    "y": y,
                    "r": round(3 + min(p["count"], 400) ** 0.5, 1),
                    "overdue": p["overdue"] > 0,
                }
                | {
                    "label": f"{p['grid_code']}：{p['count']} 件，超期 {p['overdue']}",
                    "href": "",
                    "status": "",
                }
            )
        else:
            points.append(
                {"x": x, "y": y, "r": 4, "overdue": p["overdue"], "status": p["status"]}
                | {"label": f"{p['event_no']} {p['category_name']} {p['status_name']}"}
                | {"href": f"/grid/events/{p['event_no']}"}
            )
    return Drawing(
        round((box.east - box.west) * scale),
        round((box.north - box.south) * scale),
        [
            {
                "path": path(s),
                "grid_code": f["properties"]["grid_code"],
                "name": f["properties"]["name"],
            }
            for f, s in zip(cells, shapes, strict=True)
        ],
        districts,
        points,
        found["clustered"],
    )
