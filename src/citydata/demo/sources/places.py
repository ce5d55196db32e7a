"""Places: the districts', streets' and grid cells' outlines, city components, events and monthly
indicators — on Changsha's real map (geography.py)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import shapely

from citydata.bases.spec import SPATIAL_LEVELS
from citydata.demo import geography
from citydata.demo.city import DISTRICTS
from citydata.demo.people import phones, pick
from citydata.demo.sources.source import Source, as_text, field_spec

FINE_FROM = 100_000  # people: a city this large gets three lattice squares per community


def cells(people_count: int) -> geography.Cells:
    """The unit grid of a city of ``people_count``: finer for a large one."""
    return geography.cells(3.0 if people_count >= FINE_FROM else 1.0)


def grid_cells(people_count: int) -> pl.DataFrame:
    """The cells as a frame: code, name, division, street, community (names), their codes, the
    WKT boundary and its box."""
    return cells(people_count).frame


def points_in_cells(people_count: int, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` places where people are, each with its cell (see ``geography.points``)."""
    return geography.points(n, rng, cells(people_count))


def _wkt(shapes: np.ndarray) -> list[str]:
    held = shapely.set_precision(shapes, geography.PRECISION)
    return shapely.to_wkt(held, rounding_precision=6, trim=True).tolist()


def areas() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The districts and the streets with their outlines, as the spatial base's classes send them."""
    geo = geography.geography()
    districts = pl.DataFrame(
        {
            "code": geo.districts["division"],
            "level": SPATIAL_LEVELS["district"],
            "name": geo.districts["name"],
            "boundary": _wkt(geo.district_shapes),
        }
    )
    streets = pl.DataFrame(
        {
            "code": geo.streets["street_code"],
            "level": SPATIAL_LEVELS["street"],
            "name": geo.streets["street"],
            "division": geo.streets["division"],
            "boundary": _wkt(geo.street_shapes),
        }
    )
    return districts, streets


# The components the demo counts (GB/T 30428.2 小类 as categories.toml codes them), and how
# common each is on Changsha's streets: lamps and covers everywhere, a toilet here and there.
COMPONENT_KINDS = {
    "B0101": ("上水井盖", 6),
    "B0102": ("污水井盖", 6),
    "B0103": ("雨水井盖", 8),
    "B0114": ("消防栓", 2),
    "B0201": ("路灯", 10),
    "B0204": ("交通信号灯", 1),
    "B0209": ("公交站亭", 1),
    "B0301": ("垃圾箱", 4),
    "B0302": ("公共厕所", 0.5),
    "B0403": ("行道树", 6),
}


def components(people_count: int, seed: int) -> pl.DataFrame:
    """The city's components with their 16-digit 部件标识码 (GB/T 30428.2): the district's code,
    大类, 小类 and a serial the district numbers each 小类 by — on their own random stream, so
    that the grid's events can name the same components."""
    rng = np.random.default_rng(seed + 23)
    n = max(people_count // 20, 40)
    codes = list(COMPONENT_KINDS)
    weights = [w for _, w in COMPONENT_KINDS.values()]
    placed = points_in_cells(people_count, n, rng).with_columns(
        category=pl.Series(pick(rng, codes, n, weights)).cast(pl.String),
        status=pl.Series(pick(rng, ["完好", "损坏", "丢失"], n, [0.9, 0.08, 0.02])).cast(pl.String),
    )
    serial = pl.int_range(1, pl.len() + 1).over("division", "category")
    return placed.with_columns(
        component_id=pl.concat_str(
            "division", pl.col("category").str.slice(1), serial.cast(pl.String).str.zfill(6)
        ),
        kind=pl.col("category").replace_strict({c: k for c, (k, _) in COMPONENT_KINDS.items()}),
    )


def level(kind: str) -> dict:
    """The spatial base's 层级 field, one value per class."""
    return field_spec("level", "层级", "C", 10, required=True, enum=[SPATIAL_LEVELS[kind]])


def _outlines(
    code: str,
    unit: str,
    name: str,
    summary: str,
    key: dict,
    kind: str,
    fields: list[dict],
    frame: pl.DataFrame,
    fmt: str = "csv",
) -> Source:
    """A class of the spatial base: the areas of one level with their WKT outlines, sent clean
    (a rejected outline would leave a hole in the map)."""
    boundary = field_spec("boundary", "边界（WKT）", "G", required=True)
    return Source(
        code,
        unit,
        name,
        summary,
        "spatial",
        [key, level(kind), *fields, boundary],
        as_text(frame),
        fmt,
        "utf-8",
        open_type="open",
        update_cycle="yearly",
        planted=False,
    )


def months_before(as_of: date, count: int) -> list[str]:
    """The ``count`` whole months before the month of ``as_of``, oldest first (``YYYY-MM``)."""
    index = as_of.year * 12 + as_of.month - 1  # the month of as_of, counted from year 0
    return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(index - count, index)]


def place_sources(
    people_count: int, rng: np.random.Generator, seed: int, as_of: date
) -> list[Source]:
    lattice = grid_cells(people_count)
    districts, streets = areas()
    ne = max(people_count // 10, 20)
    comp = components(people_count, seed)
    # the last 180 days before the demo's day
    start = np.datetime64(as_of, "s") - np.timedelta64(180 * 86400, "s")
    events = points_in_cells(people_count, ne, rng).with_columns(
        event_id=pl.format("SJ{}", pl.int_range(1, ne + 1).cast(pl.String).str.zfill(9)),
        category=pl.Series(
            pick(
                rng,
                [
                    "占道经营",
                    "垃圾暴露",
                    "井盖缺失",
                    "路灯不亮",
                    "违章停车",
                    "噪音扰民",
                    "道路破损",
                ],
                ne,
            )
        ).cast(pl.String),
        reported_at=(
            pl.lit(start) + pl.Series(rng.integers(0, 180 * 86400, ne)) * pl.duration(seconds=1)
        ).dt.strftime("%Y-%m-%d %H:%M:%S"),
        status=pl.Series(pick(rng, ["待受理", "处置中", "已办结"], ne, [0.1, 0.2, 0.7])).cast(
            pl.String
        ),
        reporter_phone=phones(rng, ne),
    )
    months = months_before(as_of, 24)
    indicators = [
        ("地区生产总值", "亿元"),
        ("社会消费品零售总额", "亿元"),
        ("规模以上工业增加值", "亿元"),
        ("固定资产投资", "亿元"),
        ("一般公共预算收入", "亿元"),
        ("城镇登记失业人数", "人"),
    ]
    econ = pl.DataFrame(
        [(d[0], m, ind, u) for d in DISTRICTS for m in months for ind, u in indicators],
        schema=["division", "month", "indicator", "unit"],
        orient="row",
    ).with_columns(
        value=pl.Series(
            np.round(rng.gamma(4, 20, len(DISTRICTS) * len(months) * len(indicators)), 2)
        )
    )
    lon = field_spec("longitude", "经度", "B", required=True, rules=["longitude"])
    lat = field_spec("latitude", "纬度", "B", required=True, rules=["latitude"])
    grid = field_spec("grid_code", "网格编码", "C", 14)
    division = field_spec("division", "所属区县", "C", 6, required=True, rules=["division"])
    return [
        _outlines(
            "101003/00001",
            "cszrzy",
            "区县行政区划",
            "各区县（市）行政区划边界",
            field_spec("code", "行政区划代码", "C", 6, key=True, rules=["division"]),
            "district",
            [field_spec("name", "名称", "C", 50, required=True)],
            districts,
            "jsonl",
        ),
        _outlines(
            "101003/00003",
            "cszrzy",
            "乡镇街道行政区划",
            "各乡、镇、街道的统计用区划代码与边界",
            field_spec("code", "乡镇街道代码", "C", 9, key=True),
            "street",
            [field_spec("name", "名称", "C", 50, required=True), division],
            streets,
        ),
        _outlines(
            "101003/00002",
            "cscg",
            "网格单元",
            "城市网格化管理的单元网格及边界（GB/T 30428.1 编码：村/社区代码 + 网格序号）",
            field_spec("code", "网格编码", "C", 14, key=True),
            "cell",
            [
                field_spec("name", "网格名称", "C", 100, required=True),
                division,
                field_spec("street", "所属街道", "C", 30, required=True),
                field_spec("community", "所属社区", "C", 30, required=True),
            ],
            lattice.select(
                pl.col("grid_code").alias("code"),
                pl.lit(SPATIAL_LEVELS["cell"]).alias("level"),
                "name",
                "division",
                "street",
                "community",
                "boundary",
            ),
        ),
        Source(
            "101004/00001",
            "cscg",
            "城市部件",
            "井盖、路灯、消防栓等城市部件的位置与状态",
            "city_component",
            [
                field_spec("component_id", "部件标识码", "C", 16, key=True),
                field_spec(
                    "kind",
                    "部件小类",
                    "C",
                    10,
                    required=True,
                    enum=[k for k, _ in COMPONENT_KINDS.values()],
                ),
                lon,
                lat,
                division,
                grid,
                field_spec("status", "状态", "C", 10, enum=["完好", "损坏", "丢失"]),
            ],
            as_text(
                comp.select(
                    "component_id",
                    "kind",
                    "longitude",
                    "latitude",
                    "division",
                    "grid_code",
                    "status",
                )
            ),
            "csv",
            "gbk",
            open_type="open",
        ),
        Source(
            "101006/00001",
            "cstj",
            "分区县月度经济指标",
            "各区县主要经济指标月度数据",
            "economy",
            [
                field_spec("division", "区县", "C", 6, key=True, rules=["division"]),
                field_spec("month", "月份", "C", 7, key=True),
                field_spec("indicator", "指标", "C", 30, key=True),
                field_spec("value", "数值", "N", required=True),
                field_spec("unit", "计量单位", "C", 10),
            ],
            as_text(econ.select("division", "month", "indicator", "value", "unit")),
            "xlsx",
            "",
            open_type="open",
            format_class="spreadsheet",
        ),
        Source(
            "101007/00001",
            "cscg",
            "城市管理事件",
            "巡查发现和市民上报的城市管理事件",
            "event",
            [
                field_spec("event_id", "事件编号", "C", 20, key=True),
                field_spec("category", "事件类别", "C", 20, required=True),
                field_spec("reported_at", "上报时间", "T", required=True),
                lon,
                lat,
                grid,
                field_spec("status", "办理状态", "C", 10, enum=["待受理", "处置中", "已办结"]),
                field_spec(
                    "reporter_phone",
                    "上报人电话",
                    "C",
                    20,
                    sensitivity="personal",
                    rules=["mobile"],
                ),
            ],
            as_text(
                events.select(
                    "event_id",
                    "category",
                    "reported_at",
                    "longitude",
                    "latitude",
                    "grid_code",
                    "status",
                    "reporter_phone",
                )
            ),
            "jsonl",
            "utf-8",
            open_type="conditional",
            open_condition="仅开放脱敏后的类别、位置与办理状态",
            update_cycle="realtime",
        ),
    ]
