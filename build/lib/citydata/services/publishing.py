"""The platform's own data in the catalog, so sharing and open data apply to it as to any
department's: 办件信息 is a department class of 市政务服务中心 (no applicant's identity in it),
filled through aggregation like every other class — a snapshot batch replacing the last; the
monthly counts per matter are the theme database ``service_monthly`` (bases/themes), open to
all."""

from __future__ import annotations

from datetime import date

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.db.engine import Store
from citydata.ingest import own
from citydata.ingest.service import Report
from citydata.services.models import Case, Matter
from citydata.services.shared import SERVICE_UNIT

CASES_CLASS = "399001/00001"
FIELDS = [  # (name, label, type, length)
    ("case_no", "办件编号", "C", 40),
    ("matter_code", "事项实施编码", "C", 60),
    ("matter_name", "事项名称", "C", 200),
    ("unit_code", "承办单位代码", "C", 32),
    ("level", "层级", "C", 12),
    ("channel", "申请方式", "C", 10),
    ("status", "办件状态", "C", 20),
    ("submitted_on", "申请日期", "D", None),
    ("accepted_on", "受理日期", "D", None),
    ("deadline", "承诺办结日期", "D", None),
    ("finished_on", "办结日期", "D", None),
    ("result", "办理结果", "C", 10),
    ("visits", "到现场次数", "N", 3),
    ("rating", "评价", "N", 1),
]


def class_entry() -> dict:
    return {
        "code": CASES_CLASS,
        "name": "政务服务办件信息",
        "category": "department",
        "classification": CASES_CLASS.split("/")[0],
        "classification_name": "办件信息",
        "provider_code": SERVICE_UNIT,
        "summary": "一网通办平台受理的政务服务办件：事项、渠道、状态、时限、到现场次数和评价，不含申请人身份信息。",
        "format_class": "database",
        "format_type": "CSV",
        "share_type": "unconditional",
        "share_condition": "",
        "share_methods": ["system", "online_query", "download"],
        "open_type": "closed",
        "open_condition": "",
        "update_cycle": "daily",
        "publish_date": "2026-01-01",
        "related_codes": [],
        "secret": "non_classified",
        "base_db": "none",
        "status": "published",
        "version": 1,
        "fields": own.fields(FIELDS, "case_no", set(), {}),
    }


def snapshot(session: Session) -> pl.DataFrame:
    rows = session.execute(
        select(
            Case.case_no,
            Matter.impl_code,
            Matter.name,
            Case.unit_code,
            Matter.level,
            Case.channel,
            Case.status,
            Case.submitted_on,
            Case.accepted_on,
            Case.deadline,
            Case.finished_on,
            Case.result,
            Case.visits,
            Case.rating,
        )
        .join(Matter, Matter.id == Case.matter_id)
        .where(Case.status != "draft")
        .order_by(Case.id)
    ).all()
    names = [name for name, *_ in FIELDS]
    if not rows:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    return frame.with_columns(pl.all().cast(pl.String))


def publish(store: Store, today: date | None = None) -> Report | None:
    """A snapshot of the cases as a batch of the class (replacing the last one)."""
    return own.publish(store, class_entry(), snapshot, "一网通办平台", today)
