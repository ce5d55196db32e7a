"""Who the population base is built from: household register, residence, social insurance, …"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from citydata.demo.sources.source import PERSONAL_CONDITION, Source, as_text, field_spec


def person_sources(people: pl.DataFrame, rng: np.random.Generator, as_of: date) -> list[Source]:
    id_f = field_spec(
        "id_number", "公民身份号码", "C", 18, sensitivity="sensitive", rules=["id_number"]
    )
    name_f = field_spec("name", "姓名", "C", 50, required=True, sensitivity="personal")
    sex_f = field_spec("sex", "性别", "C", 1, enum=["男", "女"])
    birth_f = field_spec("birth_date", "出生日期", "D", rules=["past_date"])
    phone_f = field_spec("phone", "联系电话", "C", 20, sensitivity="personal", rules=["mobile"])
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
                field_spec(
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
                field_spec("ethnicity", "民族", "C", 20),
                field_spec("division", "户籍地行政区划", "C", 6, required=True, rules=["division"]),
                field_spec("address", "户籍地址", "C", 200, sensitivity="personal"),
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
    insured = subset(0.6, pl.col("birth_date") < date(as_of.year - 18, 1, 1))
    out.append(
        Source(
            "101001/00002",
            "csrs",
            "社会保险参保信息",
            "职工和城乡居民养老保险参保人员",
            "population",
            [
                field_spec("insured_no", "社保编号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                phone_f,
                field_spec("insured_since", "参保日期", "D", rules=["past_date"]),
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
                        pl.col("birth_date")
                        .dt.offset_by("18y")
                        .clip(upper_bound=as_of - timedelta(days=1))
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
                field_spec("med_no", "医保编号", "C", 20, key=True),
                id_f,
                name_f,
                birth_f,
                phone_f,
                field_spec(
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
                field_spec("record_no", "档案编号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                field_spec("address", "现住址", "C", 200, sensitivity="personal"),
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
                field_spec("case_no", "保障编号", "C", 20, key=True),
                id_f,
                name_f,
                field_spec("address", "居住地址", "C", 200, sensitivity="personal"),
                phone_f,
                field_spec("monthly_amount", "月保障金额（元）", "Y", required=True),
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
        pl.col("birth_date").is_between(date(as_of.year - 18, 9, 1), date(as_of.year - 6, 8, 31)),
    )
    out.append(
        Source(
            "101001/00006",
            "csjy",
            "中小学生学籍信息",
            "全市中小学在籍学生",
            "population",
            [
                field_spec("student_no", "全国学籍号", "C", 20, key=True),
                id_f,
                name_f,
                sex_f,
                birth_f,
                field_spec("school", "就读学校", "C", 100, required=True),
                field_spec(
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
