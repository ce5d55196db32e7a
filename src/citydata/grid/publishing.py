"""The grid's events in the 事件基础库: a class of the city management bureau (``101007/00002``)
feeding the event base (``base_db = event``), filled like any department's class — a snapshot
batch replacing the last — so resolution, sharing (approval, masking, audit) and the base's
history apply to it. No reporter's identity leaves the grid; the category goes by name."""

from __future__ import annotations

from datetime import date

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.db.engine import Store
from citydata.grid import sla
from citydata.grid.events import TRANSITIONS
from citydata.grid.models import Event
from citydata.grid.permissions import CENTRE
from citydata.ingest import own
from citydata.ingest.service import Report

EVENTS_CLASS = "101007/00002"
FIELDS = [  # (name, label, type, length)
    ("event_id", "事件编号", "C", 24),
    ("category", "事件类别", "C", 40),
    ("reported_at", "上报时间", "T", None),
    ("longitude", "经度", "B", None),
    ("latitude", "纬度", "B", None),
    ("grid_code", "网格编码", "C", 20),
    ("component_id", "部件标识码", "C", 16),  # when the event concerns a city component
    ("status", "办理状态", "C", 10),
]


def class_entry() -> dict:
    return {
        "code": EVENTS_CLASS,
        "name": "一格通管城市管理事件",
        "category": "basic",  # it feeds a base database: a 1xxxxx class
        "classification": EVENTS_CLASS.split("/")[0],
        "classification_name": "城市管理事件",
        "provider_code": CENTRE,
        "summary": "数字城管监督指挥中心受理的城市管理事件：类别、位置、单元网格、所涉城市部件和七步流转状态，不含上报人信息。",
        "format_class": "database",
        "format_type": "CSV",
        "share_type": "conditional",
        "share_condition": "仅向承担处置职责的部门提供，须经审核",
        "share_methods": ["system", "online_query"],
        "open_type": "closed",
        "open_condition": "",
        "update_cycle": "realtime",
        "publish_date": "2026-01-01",
        "related_codes": [],
        "secret": "non_classified",
        "base_db": "event",
        "status": "published",
        "version": 1,
        "fields": own.fields(
            FIELDS,
            "event_id",
            {"category", "reported_at"},
            {"longitude": "longitude", "latitude": "latitude"},
        ),
    }


def snapshot(session: Session) -> pl.DataFrame:
    rows = session.execute(
        select(
            Event.event_no,
            Event.category,
            Event.reported_at,
            Event.longitude,
            Event.latitude,
            Event.grid_code,
            Event.component_id,
            Event.status,
        ).order_by(Event.id)
    ).all()
    names = [name for name, *_ in FIELDS]
    frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    if frame.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    categories = {code: c.name for code, c in sla.categories().items()}
    return frame.with_columns(
        pl.col("category").replace_strict(categories, default=pl.col("category")),
        pl.col("reported_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("status").replace_strict(TRANSITIONS.labels, default=pl.col("status")),
    ).with_columns(pl.all().cast(pl.String))


def publish(store: Store, today: date | None = None) -> Report | None:
    return own.publish(store, class_entry(), snapshot, "一格通管平台", today)
