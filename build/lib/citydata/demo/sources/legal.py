"""Legal persons' registers: market entities, taxes, organisations."""

from __future__ import annotations

import numpy as np
import polars as pl

from citydata.demo.people import phones
from citydata.demo.sources.source import Source, as_text, field_spec


def legal_sources(companies: pl.DataFrame, rng: np.random.Generator) -> list[Source]:
    credit_key = field_spec(
        "credit_code", "统一社会信用代码", "C", 18, key=True, rules=["credit_code"]
    )
    name_f = field_spec("name", "名称", "C", 200, required=True)
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
                field_spec(
                    "legal_rep", "法定代表人", "C", 50, required=True, sensitivity="personal"
                ),
                field_spec(
                    "legal_rep_id",
                    "法定代表人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                field_spec("address", "住所", "C", 200),
                field_spec("industry", "行业", "C", 50),
                field_spec("capital", "注册资本（万元）", "Y"),
                field_spec(
                    "status", "登记状态", "C", 10, required=True, enum=["存续", "注销", "吊销"]
                ),
                field_spec("established", "成立日期", "D", rules=["past_date"]),
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
                field_spec("address", "生产经营地址", "C", 200),
                field_spec("tax_office", "主管税务机关", "C", 50, required=True),
                field_spec("registered_at", "登记日期", "D", rules=["past_date"]),
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
                field_spec("unit_insured_no", "单位参保编号", "C", 20, key=True),
                field_spec("credit_code", "统一社会信用代码", "C", 18, rules=["credit_code"]),
                name_f,
                field_spec("employees", "参保人数", "I"),
                field_spec(
                    "contact_phone", "联系电话", "C", 20, sensitivity="personal", rules=["mobile"]
                ),
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
