"""Each department's own registers (行政许可、行政处罚 …), so that every unit sends files."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from citydata.demo.city import REGISTER_TOPICS, UNITS
from citydata.demo.people import phones, pick
from citydata.demo.sources.source import Source, as_text, field_spec


def register_sources(
    companies: pl.DataFrame, people_count: int, rng: np.random.Generator, as_of: date
) -> list[Source]:
    """Each department's own registers (行政许可、行政处罚 …), so that every unit sends files."""
    out = []
    rows = 40 + people_count // 400
    first = as_of - timedelta(days=2300)  # the registers' records: the 2300 days before as_of
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
                (pl.lit(first) + pl.duration(days=pl.col("days"))).alias("record_date"),
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
                        field_spec("record_no", "记录编号", "C", 20, key=True),
                        field_spec("subject", "当事主体", "C", 200, required=True),
                        field_spec(
                            "credit_code", "统一社会信用代码", "C", 18, rules=["credit_code"]
                        ),
                        field_spec("division", "所在区县", "C", 6, rules=["division"]),
                        field_spec(
                            "record_date", "办理日期", "D", required=True, rules=["past_date"]
                        ),
                        field_spec("amount", "金额（元）", "Y"),
                        field_spec(
                            "status", "办理状态", "C", 10, enum=["办理中", "已办结", "已撤销"]
                        ),
                        field_spec(
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
