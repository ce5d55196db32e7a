"""Places: grid cells, city components, events and monthly indicators — points inside the
city's own grid."""

from __future__ import annotations

import numpy as np
import polars as pl

from citydata.demo.city import DISTRICTS, STREETS
from citydata.demo.people import phones, pick
from citydata.demo.sources.source import Source, as_text, field_spec


def _box(code: str) -> tuple[float, float, float, float]:
    return next(d[3] for d in DISTRICTS if d[0] == code)


def _wkt(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON(({x0:.4f} {y0:.4f},{x1:.4f} {y0:.4f},{x1:.4f} {y1:.4f},{x0:.4f} {y1:.4f},{x0:.4f} {y0:.4f}))"


def grid_cells(people_count: int) -> pl.DataFrame:
    """Each district cut into a k×k lattice of cells (k grows with the city's size): its west
    half one street, its east half the other; each street's south half one community, its north
    half the other. Codes as GB/T 30428.1 builds them: district (6) + street (3) + community (3)
    + the cell's number in its community (2)."""
    k = 4 if people_count < 100_000 else 10
    half = k // 2
    rows = []
    for code, _, _, (x0, y0, x1, y1) in DISTRICTS:
        dx, dy = (x1 - x0) / k, (y1 - y0) / k
        for i in range(k):
            for j in range(k):
                s, c = i // half, j // half
                street, communities = STREETS[code][s]
                number = (i % half) * half + j % half + 1
                rows.append(
                    (
                        f"{code}{s + 1:03d}{c + 1:03d}{number:02d}",
                        f"{street}{communities[c]}第{number}网格",
                        code,
                        street,
                        communities[c],
                        _wkt(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy),
                        x0 + i * dx,
                        y0 + j * dy,
                        dx,
                        dy,
                    )
                )
    return pl.DataFrame(
        rows,
        schema=[
            "grid_code",
            "name",
            "division",
            "street",
            "community",
            "boundary",
            "x",
            "y",
            "dx",
            "dy",
        ],
        orient="row",
    )


def points_in_cells(cells: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    chosen = cells[rng.integers(0, len(cells), n)]
    return chosen.select(
        "grid_code",
        "division",
        (pl.col("x") + pl.Series(rng.random(n)) * pl.col("dx")).round(6).alias("longitude"),
        (pl.col("y") + pl.Series(rng.random(n)) * pl.col("dy")).round(6).alias("latitude"),
    )


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
    placed = points_in_cells(grid_cells(people_count), n, rng).with_columns(
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


def place_sources(people_count: int, rng: np.random.Generator, seed: int) -> list[Source]:
    cells = grid_cells(people_count)
    districts = pl.DataFrame(
        [(c, n, _wkt(*box)) for c, n, _, box in DISTRICTS],
        schema=["division", "name", "boundary"],
        orient="row",
    )
    ne = max(people_count // 10, 20)
    comp = components(people_count, seed)
    events = points_in_cells(cells, ne, rng).with_columns(
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
            pl.lit(np.datetime64("2026-01-01T00:00:00"))
            + pl.Series(rng.integers(0, 180 * 86400, ne)) * pl.duration(seconds=1)
        ).dt.strftime("%Y-%m-%d %H:%M:%S"),
        status=pl.Series(pick(rng, ["待受理", "处置中", "已办结"], ne, [0.1, 0.2, 0.7])).cast(
            pl.String
        ),
        reporter_phone=phones(rng, ne),
    )
    months = [f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)]
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
        Source(
            "101003/00001",
            "cszrzy",
            "区县行政区划",
            "各区县（市）行政区划边界",
            "spatial",
            [
                field_spec("division", "行政区划代码", "C", 6, key=True, rules=["division"]),
                field_spec("name", "名称", "C", 50, required=True),
                field_spec("boundary", "边界（WKT）", "G", required=True),
            ],
            as_text(districts),
            "jsonl",
            "utf-8",
            open_type="open",
            update_cycle="yearly",
        ),
        Source(
            "101003/00002",
            "cscg",
            "网格单元",
            "城市网格化管理的网格单元及边界",
            "spatial",
            [
                field_spec("grid_code", "网格编码", "C", 14, key=True),
                field_spec("name", "网格名称", "C", 50, required=True),
                division,
                field_spec("street", "所属街道", "C", 30, required=True),
                field_spec("community", "所属社区", "C", 30, required=True),
                field_spec("boundary", "边界（WKT）", "G", required=True),
            ],
            as_text(
                cells.select("grid_code", "name", "division", "street", "community", "boundary")
            ),
            "csv",
            "utf-8",
            open_type="open",
            update_cycle="yearly",
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
