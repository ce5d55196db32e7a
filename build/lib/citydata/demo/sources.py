"""The departments' resource classes with data: their catalog entries and the rows they send.

A Source is one class of one unit, with its rows as a text frame (what a department's file holds)
and, per row, the true entity the row describes. Columns are the catalog field names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from citydata.demo.city import DISTRICTS, REGISTER_TOPICS, UNITS
from citydata.demo.people import REFERENCE_DAY, phones, pick

PERSONAL_CONDITION = (
    "依据《中华人民共和国个人信息保护法》第十三条，仅向履行法定职责的部门提供，须经提供方审核"
)


def F(
    name,
    label,
    data_type="C",
    length=None,
    required=False,
    key=False,
    sensitivity="public",
    rules=(),
    enum=(),
    description="",
):  # noqa: ANN001, ANN201, N802
    return {
        "name": name,
        "label": label,
        "data_type": data_type,
        "length": length,
        "required": required or key,
        "is_key": key,
        "sensitivity": sensitivity,
        "rules": list(rules),
        "enum": list(enum),
        "description": description,
    }


@dataclass
class Source:
    code: str
    unit: str
    name: str
    summary: str
    base_db: str
    fields: list[dict]
    frame: pl.DataFrame  # text columns named as the fields
    fmt: str = "csv"  # csv | xlsx | jsonl
    encoding: str = "utf-8"
    entity: str = "none"  # person | legal_person | house | none
    entity_ids: pl.Series | None = None
    share_type: str = "unconditional"
    share_condition: str = ""
    open_type: str = "closed"
    open_condition: str = ""
    update_cycle: str = "monthly"
    format_class: str = "database"
    disagree: list[str] = field(default_factory=list)  # valid disagreements to inject


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))


def person_sources(people: pl.DataFrame, rng: np.random.Generator) -> list[Source]:
    id_f = F("id_number", "公民身份号码", "C", 18, sensitivity="sensitive", rules=["id_number"])
    name_f = F("name", "姓名", "C", 50, required=True, sensitivity="personal")
    sex_f = F("sex", "性别", "C", 1, enum=["男", "女"])
    birth_f = F("birth_date", "出生日期", "D", rules=["past_date"])
    phone_f = F("phone", "联系电话", "C", 20, sensitivity="personal", rules=["mobile"])
    out = []

    def subset(share: float, where: pl.Expr | None = None) -> pl.DataFrame:
        pool = people.filter(where) if where is not None else people
        k = max(1, int(len(pool) * share))
        return pool.sample(k, seed=int(rng.integers(1 << 31))).sort("person_id")

    out.append(
        Source(
            "101001/00001",
            "csga",
            "户籍人口信息",
            "全市户籍人口的身份、出生、民族和户籍地址",
            "population",
            [
                F(
                    "id_number",
                    "公民身份号码",
                    "C",
                    18,
                    key=True,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                name_f,
                {**sex_f, "required": True},
                {**birth_f, "required": True},
                F("ethnicity", "民族", "C", 20),
                F("division", "户籍地行政区划", "C", 6, required=True, rules=["division"]),
                F("address", "户籍地址", "C", 200, sensitivity="personal"),
                phone_f,
            ],
            as_text(
                people.select(
                    "id_number",
                    "name",
                    "sex",
                    "birth_date",
                    "ethnicity",
                    "division",
                    "address",
                    "phone",
                )
            ),
            "csv",
            "gbk",
            "person",
            people["person_id"],
            "conditional",
            PERSONAL_CONDITION,
            update_cycle="daily",
        )
    )
    insured = subset(0.6, pl.col("birth_date") < date(REFERENCE_DAY.year - 18, 1, 1))
    out.append(
        Source(
            "101001/00002",
            "csrs",
            "社会保险参保信息",
            "职工和城乡居民养老保险参保人员",
            "population",
            [
                F("insured_no", "社保编号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                phone_f,
                F("insured_since", "参保日期", "D", rules=["past_date"]),
            ],
            as_text(
                insured.select(
                    pl.format("SB{}", pl.col("person_id").cast(pl.String).str.zfill(9)).alias(
                        "insured_no"
                    ),
                    "id_number",
                    "name",
                    "sex",
                    "birth_date",
                    "phone",
                    (
                        pl.col("birth_date").dt.offset_by("18y").clip(upper_bound=REFERENCE_DAY)
                    ).alias("insured_since"),
                )
            ),
            "csv",
            "utf-8",
            "person",
            insured["person_id"],
            "conditional",
            PERSONAL_CONDITION,
            disagree=["name", "legacy_id", "missing_id", "phone"],
        )
    )
    medical = subset(0.9)
    twice = medical.sample(max(1, len(medical) // 100), seed=int(rng.integers(1 << 31)))
    medical = pl.concat([medical, twice]).sort("person_id", maintain_order=True)
    med_no = pl.format(
        "YB{}{}",
        pl.col("person_id").cast(pl.String).str.zfill(9),
        pl.col("person_id").cum_count().over("person_id").cast(pl.String),
    )
    out.append(
        Source(
            "101001/00003",
            "csyb",
            "医疗保险参保信息",
            "职工医保和城乡居民医保参保人员（一人可有两条参保记录）",
            "population",
            [
                F("med_no", "医保编号", "C", 20, key=True),
                id_f,
                name_f,
                birth_f,
                phone_f,
                F(
                    "insurance_type",
                    "险种",
                    "C",
                    10,
                    required=True,
                    enum=["职工医保", "城乡居民医保"],
                ),
            ],
            as_text(
                medical.select(
                    med_no.alias("med_no"),
                    "id_number",
                    "name",
                    "birth_date",
                    "phone",
                    pl.when(pl.col("person_id") % 3 == 0)
                    .then(pl.lit("职工医保"))
                    .otherwise(pl.lit("城乡居民医保"))
                    .alias("insurance_type"),
                )
            ),
            "jsonl",
            "utf-8",
            "person",
            medical["person_id"],
            "conditional",
            PERSONAL_CONDITION,
            disagree=["name", "legacy_id", "missing_id", "phone"],
        )
    )
    health = subset(0.7)
    out.append(
        Source(
            "101001/00004",
            "cswj",
            "居民电子健康档案",
            "居民电子健康档案基本信息",
            "population",
            [
                F("record_no", "档案编号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                F("address", "现住址", "C", 200, sensitivity="personal"),
                phone_f,
            ],
            as_text(
                health.select(
                    pl.format("JK{}", pl.col("person_id").cast(pl.String).str.zfill(10)).alias(
                        "record_no"
                    ),
                    "id_number",
                    "name",
                    "sex",
                    "birth_date",
                    "address",
                    "phone",
                )
            ),
            "csv",
            "gb18030",
            "person",
            health["person_id"],
            "conditional",
            PERSONAL_CONDITION,
            disagree=["name", "missing_id", "address", "phone"],
        )
    )
    aid = subset(0.03)
    out.append(
        Source(
            "101001/00005",
            "csmz",
            "最低生活保障对象信息",
            "城乡最低生活保障对象及保障金额",
            "population",
            [
                F("case_no", "保障编号", "C", 20, key=True),
                id_f,
                name_f,
                F("address", "居住地址", "C", 200, sensitivity="personal"),
                phone_f,
                F("monthly_amount", "月保障金额（元）", "Y", required=True),
            ],
            as_text(
                aid.select(
                    pl.format("DB{}", pl.col("person_id").cast(pl.String).str.zfill(9)).alias(
                        "case_no"
                    ),
                    "id_number",
                    "name",
                    "address",
                    "phone",
                    (pl.col("person_id") % 400 + 300).cast(pl.Float64).alias("monthly_amount"),
                )
            ),
            "xlsx",
            "",
            "person",
            aid["person_id"],
            "none",
            "依据《社会救助暂行办法》，救助对象信息不予共享",
            update_cycle="monthly",
            format_class="spreadsheet",
            disagree=["name", "missing_id"],
        )
    )
    pupils = subset(
        0.9,
        pl.col("birth_date").is_between(
            date(REFERENCE_DAY.year - 18, 9, 1), date(REFERENCE_DAY.year - 6, 8, 31)
        ),
    )
    out.append(
        Source(
            "101001/00006",
            "csjy",
            "中小学生学籍信息",
            "全市中小学在籍学生",
            "population",
            [
                F("student_no", "全国学籍号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                F("school", "就读学校", "C", 100, required=True),
                F(
                    "guardian_phone",
                    "监护人电话",
                    "C",
                    20,
                    sensitivity="personal",
                    rules=["mobile"],
                ),
            ],
            as_text(
                pupils.select(
                    pl.format("G{}", pl.col("id_number")).alias("student_no"),
                    "id_number",
                    "name",
                    "sex",
                    "birth_date",
                    pl.format(
                        "长沙市第{}中学", (pl.col("person_id") % 90 + 1).cast(pl.String)
                    ).alias("school"),
                    pl.col("phone").alias("guardian_phone"),
                )
            ),
            "csv",
            "utf-8-sig",
            "person",
            pupils["person_id"],
            "conditional",
            PERSONAL_CONDITION,
            update_cycle="quarterly",
            disagree=["name"],
        )
    )
    return out


def legal_sources(companies: pl.DataFrame, rng: np.random.Generator) -> list[Source]:
    credit_key = F("credit_code", "统一社会信用代码", "C", 18, key=True, rules=["credit_code"])
    name_f = F("name", "名称", "C", 200, required=True)
    taxed = companies.sample(int(len(companies) * 0.85), seed=int(rng.integers(1 << 31))).sort(
        "legal_id"
    )
    insured = companies.sample(int(len(companies) * 0.7), seed=int(rng.integers(1 << 31))).sort(
        "legal_id"
    )
    return [
        Source(
            "101002/00001",
            "csscjg",
            "市场主体登记信息",
            "企业、个体工商户和农民专业合作社登记信息",
            "legal_person",
            [
                credit_key,
                name_f,
                F("legal_rep", "法定代表人", "C", 50, required=True, sensitivity="personal"),
                F(
                    "legal_rep_id",
                    "法定代表人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                F("address", "住所", "C", 200),
                F("industry", "行业", "C", 50),
                F("capital", "注册资本（万元）", "Y"),
                F("status", "登记状态", "C", 10, required=True, enum=["存续", "注销", "吊销"]),
                F("established", "成立日期", "D", rules=["past_date"]),
            ],
            as_text(
                companies.select(
                    "credit_code",
                    "name",
                    "legal_rep",
                    "legal_rep_id",
                    "address",
                    "industry",
                    "capital",
                    "status",
                    "established",
                )
            ),
            "csv",
            "utf-8",
            "legal_person",
            companies["legal_id"],
            open_type="open",
            update_cycle="daily",
        ),
        Source(
            "101002/00002",
            "cssw",
            "纳税人登记信息",
            "纳税人识别号、名称和主管税务机关",
            "legal_person",
            [
                credit_key,
                name_f,
                F("address", "生产经营地址", "C", 200),
                F("tax_office", "主管税务机关", "C", 50, required=True),
                F("registered_at", "登记日期", "D", rules=["past_date"]),
            ],
            as_text(
                taxed.select(
                    "credit_code",
                    "name",
                    "address",
                    pl.lit("国家税务总局长沙市税务局").alias("tax_office"),
                    pl.col("established").alias("registered_at"),
                )
            ),
            "jsonl",
            "utf-8",
            "legal_person",
            taxed["legal_id"],
            "conditional",
            "依据《税收征收管理法》，纳税人涉税信息仅向有关部门依法提供",
            update_cycle="daily",
        ),
        Source(
            "101002/00003",
            "csrs",
            "单位参保登记信息",
            "参加社会保险的用人单位",
            "legal_person",
            [
                F("unit_insured_no", "单位参保编号", "C", 20, key=True),
                F("credit_code", "统一社会信用代码", "C", 18, rules=["credit_code"]),
                name_f,
                F("employees", "参保人数", "I"),
                F("contact_phone", "联系电话", "C", 20, sensitivity="personal", rules=["mobile"]),
            ],
            as_text(
                insured.select(
                    pl.format("DW{}", pl.col("legal_id").cast(pl.String).str.zfill(8)).alias(
                        "unit_insured_no"
                    ),
                    "credit_code",
                    "name",
                    (pl.col("legal_id") * 7 % 300 + 1).alias("employees"),
                    pl.lit(None, pl.String).alias("contact_phone"),
                ).with_columns(contact_phone=phones(rng, len(insured)))
            ),
            "csv",
            "gbk",
            "legal_person",
            insured["legal_id"],
            "unconditional",
        ),
    ]


def housing_sources(houses: pl.DataFrame, rng: np.random.Generator) -> list[Source]:
    sold = (
        houses.filter(pl.col("owner_id_number").is_not_null())
        .sample(fraction=0.3, seed=int(rng.integers(1 << 31)))
        .sort("house_id")
    )
    return [
        Source(
            "101005/00001",
            "csbdc",
            "房屋登记信息",
            "房屋坐落、面积、用途与权利人",
            "housing",
            [
                F("house_code", "不动产单元号", "C", 28, key=True),
                F("address", "坐落", "C", 200, required=True),
                F("area", "建筑面积（平方米）", "F", required=True),
                F("use", "用途", "C", 10, enum=["住宅", "商业", "办公", "工业"]),
                F(
                    "owner_id_number",
                    "权利人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                F("owner_credit_code", "权利人统一社会信用代码", "C", 18, rules=["credit_code"]),
            ],
            as_text(
                houses.select(
                    "house_code", "address", "area", "use", "owner_id_number", "owner_credit_code"
                )
            ),
            "csv",
            "gb18030",
            "house",
            houses["house_id"],
            "conditional",
            "依据《不动产登记资料查询暂行办法》，须经提供方审核",
            update_cycle="daily",
        ),
        Source(
            "101005/00002",
            "cszj",
            "商品房网签备案信息",
            "商品房买卖合同网签备案",
            "housing",
            [
                F("contract_no", "合同备案号", "C", 30, key=True),
                F("house_code", "不动产单元号", "C", 28, required=True),
                F(
                    "buyer_id_number",
                    "买受人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                F("price", "成交价（元）", "Y", required=True),
                F("signed_at", "网签日期", "D", rules=["past_date"]),
            ],
            as_text(
                sold.select(
                    pl.format("WQ{}", pl.col("house_id").cast(pl.String).str.zfill(10)).alias(
                        "contract_no"
                    ),
                    "house_code",
                    pl.col("owner_id_number").alias("buyer_id_number"),
                    (pl.col("area") * 12000).round(0).alias("price"),
                    pl.lit(date(2019, 5, 1))
                    .dt.offset_by(pl.format("{}d", pl.col("house_id") % 2000))
                    .alias("signed_at"),
                )
            ),
            "csv",
            "utf-8",
            "house",
            sold["house_id"],
            "conditional",
            "仅向住房保障、税务等部门提供",
        ),
    ]


def _box(code: str) -> tuple[float, float, float, float]:
    return next(d[3] for d in DISTRICTS if d[0] == code)


def _wkt(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON(({x0:.4f} {y0:.4f},{x1:.4f} {y0:.4f},{x1:.4f} {y1:.4f},{x0:.4f} {y1:.4f},{x0:.4f} {y0:.4f}))"


def grid_cells(people_count: int) -> pl.DataFrame:
    """Each district cut into a k×k lattice of cells; k grows with the city's size."""
    k = 4 if people_count < 100_000 else 10
    rows = []
    for code, name, _, (x0, y0, x1, y1) in DISTRICTS:
        dx, dy = (x1 - x0) / k, (y1 - y0) / k
        for i in range(k):
            for j in range(k):
                rows.append(
                    (
                        f"{code}{i:02d}{j:02d}",
                        f"{name}第{i * k + j + 1}网格",
                        code,
                        _wkt(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy),
                        x0 + i * dx,
                        y0 + j * dy,
                        dx,
                        dy,
                    )
                )
    return pl.DataFrame(
        rows,
        schema=["grid_code", "name", "division", "boundary", "x", "y", "dx", "dy"],
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


def place_sources(people_count: int, rng: np.random.Generator) -> list[Source]:
    cells = grid_cells(people_count)
    districts = pl.DataFrame(
        [(c, n, _wkt(*box)) for c, n, _, box in DISTRICTS],
        schema=["division", "name", "boundary"],
        orient="row",
    )
    nc, ne = max(people_count // 20, 20), max(people_count // 10, 20)
    comp = points_in_cells(cells, nc, rng).with_columns(
        component_id=pl.format("BJ{}", pl.int_range(1, nc + 1).cast(pl.String).str.zfill(9)),
        kind=pl.Series(
            pick(rng, ["井盖", "路灯", "消防栓", "垃圾箱", "公交站亭"], nc, [4, 4, 2, 2, 1])
        ).cast(pl.String),
        status=pl.Series(pick(rng, ["完好", "损坏", "丢失"], nc, [0.9, 0.08, 0.02])).cast(
            pl.String
        ),
    )
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
    lon = F("longitude", "经度", "B", required=True, rules=["longitude"])
    lat = F("latitude", "纬度", "B", required=True, rules=["latitude"])
    grid = F("grid_code", "网格编码", "C", 12)
    division = F("division", "所属区县", "C", 6, required=True, rules=["division"])
    return [
        Source(
            "101003/00001",
            "cszrzy",
            "区县行政区划",
            "各区县（市）行政区划边界",
            "spatial",
            [
                F("division", "行政区划代码", "C", 6, key=True, rules=["division"]),
                F("name", "名称", "C", 50, required=True),
                F("boundary", "边界（WKT）", "G", required=True),
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
                F("grid_code", "网格编码", "C", 12, key=True),
                F("name", "网格名称", "C", 50, required=True),
                division,
                F("boundary", "边界（WKT）", "G", required=True),
            ],
            as_text(cells.select("grid_code", "name", "division", "boundary")),
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
                F("component_id", "部件编码", "C", 20, key=True),
                F(
                    "kind",
                    "部件类型",
                    "C",
                    10,
                    required=True,
                    enum=["井盖", "路灯", "消防栓", "垃圾箱", "公交站亭"],
                ),
                lon,
                lat,
                division,
                grid,
                F("status", "状态", "C", 10, enum=["完好", "损坏", "丢失"]),
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
                F("division", "区县", "C", 6, key=True, rules=["division"]),
                F("month", "月份", "C", 7, key=True),
                F("indicator", "指标", "C", 30, key=True),
                F("value", "数值", "N", required=True),
                F("unit", "计量单位", "C", 10),
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
                F("event_id", "事件编号", "C", 20, key=True),
                F("category", "事件类别", "C", 20, required=True),
                F("reported_at", "上报时间", "T", required=True),
                lon,
                lat,
                grid,
                F("status", "办理状态", "C", 10, enum=["待受理", "处置中", "已办结"]),
                F(
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


def register_sources(
    companies: pl.DataFrame, people_count: int, rng: np.random.Generator
) -> list[Source]:
    """Each department's own registers (行政许可、行政处罚 …), so that every unit sends files."""
    out = []
    rows = 40 + people_count // 400
    for ui, (unit, _, short) in enumerate(UNITS, start=1):
        for ti, topic in enumerate(REGISTER_TOPICS[:8], start=1):
            subject = companies.sample(
                rows, with_replacement=len(companies) < rows, seed=int(rng.integers(1 << 31))
            )
            share = str(
                pick(rng, ["unconditional", "conditional", "none"], 1, [0.55, 0.35, 0.10])[0]
            )
            open_type = (
                "closed"
                if share == "none"
                else str(pick(rng, ["open", "conditional", "closed"], 1, [0.4, 0.15, 0.45])[0])
            )
            frame = pl.DataFrame(
                {
                    "n": pl.int_range(1, rows + 1, eager=True),
                    "subject": subject["name"],
                    "credit_code": subject["credit_code"],
                    "division": subject["division"],
                    "days": pl.Series(rng.integers(0, 2300, rows)),
                    "amount": pl.Series(np.round(rng.gamma(2, 5000, rows), 2)),
                    "status": pl.Series(
                        pick(rng, ["办理中", "已办结", "已撤销"], rows, [0.2, 0.75, 0.05])
                    ).cast(pl.String),
                    "contact_phone": phones(rng, rows),
                }
            ).select(
                pl.format(
                    "{}{}",
                    pl.lit(f"{unit.upper()}{ti:02d}"),
                    pl.col("n").cast(pl.String).str.zfill(7),
                ).alias("record_no"),
                "subject",
                "credit_code",
                "division",
                (pl.lit(date(2020, 1, 1)) + pl.duration(days=pl.col("days"))).alias("record_date"),
                "amount",
                "status",
                "contact_phone",
            )
            fmt, enc = [
                ("csv", "utf-8"),
                ("csv", "gbk"),
                ("xlsx", ""),
                ("jsonl", "utf-8"),
                ("csv", "gb18030"),
                ("csv", "utf-8-sig"),
            ][(ui + ti) % 6]
            out.append(
                Source(
                    f"3{ui:02d}{ti:03d}/00001",
                    unit,
                    f"{short}{topic}信息",
                    f"{short}{topic}工作中形成的登记信息",
                    "none",
                    [
                        F("record_no", "记录编号", "C", 20, key=True),
                        F("subject", "当事主体", "C", 200, required=True),
                        F("credit_code", "统一社会信用代码", "C", 18, rules=["credit_code"]),
                        F("division", "所在区县", "C", 6, rules=["division"]),
                        F("record_date", "办理日期", "D", required=True, rules=["past_date"]),
                        F("amount", "金额（元）", "Y"),
                        F("status", "办理状态", "C", 10, enum=["办理中", "已办结", "已撤销"]),
                        F(
                            "contact_phone",
                            "联系电话",
                            "C",
                            20,
                            sensitivity="personal",
                            rules=["mobile"],
                        ),
                    ],
                    as_text(frame),
                    fmt,
                    enc,
                    "legal_person",
                    subject["legal_id"],
                    share,
                    ""
                    if share == "unconditional"
                    else f"依据《政务信息资源共享管理暂行办法》，{topic}信息经{short}审核后提供",
                    open_type,
                    "申请并经审核后开放" if open_type == "conditional" else "",
                    str(
                        pick(
                            rng,
                            ["daily", "weekly", "monthly", "quarterly", "yearly", "irregular"],
                            1,
                        )[0]
                    ),
                    "spreadsheet" if fmt == "xlsx" else "database",
                )
            )
    return out
