"""Houses: registration of real estate and sale contracts."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from citydata.demo.sources.source import Source, as_text, field_spec


def housing_sources(houses: pl.DataFrame, rng: np.random.Generator, as_of: date) -> list[Source]:
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
                field_spec("house_code", "不动产单元号", "C", 28, key=True),
                field_spec("address", "坐落", "C", 200, required=True),
                field_spec("area", "建筑面积（平方米）", "F", required=True),
                field_spec("use", "用途", "C", 10, enum=["住宅", "商业", "办公", "工业"]),
                field_spec(
                    "owner_id_number",
                    "权利人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                field_spec(
                    "owner_credit_code", "权利人统一社会信用代码", "C", 18, rules=["credit_code"]
                ),
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
                field_spec("contract_no", "合同备案号", "C", 30, key=True),
                field_spec("house_code", "不动产单元号", "C", 28, required=True),
                field_spec(
                    "buyer_id_number",
                    "买受人身份号码",
                    "C",
                    18,
                    sensitivity="sensitive",
                    rules=["id_number"],
                ),
                field_spec("price", "成交价（元）", "Y", required=True),
                field_spec("signed_at", "网签日期", "D", rules=["past_date"]),
            ],
            as_text(
                sold.select(
                    pl.format("WQ{}", pl.col("house_id").cast(pl.String).str.zfill(10)).alias(
                        "contract_no"
                    ),
                    "house_code",
                    pl.col("owner_id_number").alias("buyer_id_number"),
                    (pl.col("area") * 12000).round(0).alias("price"),
                    pl.lit(as_of - timedelta(days=2600))  # signed in the 2600 days before
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
