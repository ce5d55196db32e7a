"""Open data (开放): which classes are published, as what.

A dataset is a published resource class: 普遍开放 classes are public with their data;
有条件开放 classes are listed, their data released to a user with an approved application;
不予开放 classes never appear. Only fields of sensitivity ``public`` are ever part of a dataset —
personal, sensitive and internal fields are not in open data at all, not even masked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    case,
    func,
    select,
    table,
)
from sqlalchemy.orm import Session, selectinload

from citydata.bases.tables import ClassTable, UnknownClass, locate
from citydata.catalog import vocab
from citydata.catalog.models import ResourceClass
from citydata.db.base import as_utc
from citydata.ingest.models import Batch
from citydata.opendata.topics import TAG_WORDS, topics_of

PUBLISHED = ("open", "conditional")
LICENSE = {
    "id": "cc-by-4.0",
    "title": "知识共享 署名 4.0 国际 (CC BY 4.0)",
    "url": "https://creativecommons.org/licenses/by/4.0/",
}
MAX_ROWS = 1000  # CKAN 2.11's package_search cap
DATASTORE_MAX = 32000  # CKAN's ckan.datastore.search.rows_max default
FORMATS = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
DATASTORE_TYPES = {"I": "int", "N": "numeric", "Y": "numeric", "F": "numeric", "B": "numeric"}


class OpenDataError(ValueError):
    """``kind`` is CKAN's error ``__type``; ``status`` the HTTP code CKAN answers it with."""

    def __init__(self, message: str, kind: str = "Validation Error", status: int = 409):
        super().__init__(message)
        self.kind = kind
        self.status = status


def not_found(what: str) -> OpenDataError:
    return OpenDataError(f"{what}不存在", "Not Found Error", 404)


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DataField:
    name: str
    label: str
    data_type: str
    description: str


@dataclass
class Dataset:
    code: str
    slug: str
    title: str
    notes: str
    provider: str
    provider_name: str
    provider_short: str
    contact: str
    phone: str
    category: str
    open_type: str
    open_condition: str
    update_cycle: str
    publish_date: date | None
    created: datetime
    modified: datetime
    version: int
    fields: list[DataField]
    withheld: int  # fields never published (personal, sensitive, internal)
    topics: list[str]
    tags: list[str]
    rows: int
    last_batch: datetime | None
    where: ClassTable  # the table holding the rows (bases.tables)
    stored: bool  # the table exists (a department's first batch creates it)
    quality: dict[str, Any] = field(default_factory=dict)

    @property
    def source_kind(self) -> str:
        return self.where.kind  # department | theme | base

    @property
    def table(self) -> str:
        return self.where.table

    @property
    def downloadable(self) -> bool:
        return self.open_type == "open"

    @property
    def formats(self) -> list[str]:
        return [f.upper() for f in FORMATS]


def slug_of(code: str) -> str:
    return code.replace("/", "-")


def resource_id(ds: Dataset, fmt: str) -> str:
    """Each dataset has one resource per format: ``101002-00001-csv``."""
    return f"{ds.slug}-{fmt}"


def find_resource(datasets: Mapping[str, Dataset], rid: str) -> tuple[Dataset, str] | None:
    """The dataset and format a resource id names; a bare dataset id stands for its CSV."""
    slug, _, fmt = rid.rpartition("-")
    if fmt in FORMATS and slug in datasets:
        return datasets[slug], fmt
    if rid in datasets:
        return datasets[rid], "csv"
    return None


def _quality(ds: Dataset, today: date) -> dict[str, Any]:
    """A metadata quality score in the manner of data.gouv.fr's: each check passed adds its
    weight; the failed ones tell the department what to improve."""
    documented = sum(1 for f in ds.fields if f.description.strip())
    if ds.last_batch is None:
        fresh = ds.source_kind != "department"  # themes and bases are refreshed, not sent
    else:
        fresh = vocab.on_time(ds.update_cycle, (today - ds.last_batch.date()).days)
    checks = [
        ("description", 2, len(ds.notes.strip()) >= 20 and ds.notes.strip() != ds.title, "摘要"),
        ("fields_documented", 2, bool(ds.fields) and documented == len(ds.fields), "信息项说明"),
        ("update_cycle", 1, ds.update_cycle != "irregular", "更新周期"),
        ("license", 1, bool(LICENSE["id"]), "开放许可"),
        ("contact", 1, bool(ds.contact.strip() and ds.phone.strip()), "联系方式"),
        ("fresh", 2, fresh, "按周期更新"),
        ("tags", 1, bool(ds.tags), "标签"),
        ("data", 2, ds.rows > 0, "有数据"),
    ]
    total = sum(w for _, w, _, _ in checks)
    score = round(100 * sum(w for _, w, ok, _ in checks if ok) / total)
    return {
        "score": score,
        "band": quality_band(score),
        "checks": [
            {"name": n, "label": lab, "passed": ok, "weight": w} for n, w, ok, lab in checks
        ],
    }


def quality_band(score: int) -> str:
    return "优" if score >= 80 else "良" if score >= 60 else "中" if score >= 40 else "差"


def _row_counts(session: Session) -> tuple[dict[str, int], dict[str, datetime]]:
    """Rows in each class's staging table, kept by the batch ledger (each committed batch adds
    what it accepted and takes what it removed) — no COUNT(*) over millions of rows."""
    added = func.sum(
        case((Batch.mode == "delete", 0), else_=Batch.rows_accepted) - Batch.rows_removed
    )
    found = session.execute(
        select(Batch.class_code, added, func.max(Batch.finished_at))
        .where(Batch.status == "committed")
        .group_by(Batch.class_code)
    ).all()
    return {c: int(n or 0) for c, n, _ in found}, {c: as_utc(t) for c, _, t in found if t}


def stamp(session: Session) -> tuple:
    classes = session.execute(
        select(func.count(), func.max(ResourceClass.updated_at)).where(
            ResourceClass.open_type.in_(PUBLISHED)
        )
    ).one()
    batch = session.scalar(select(func.max(Batch.id)).where(Batch.status == "committed"))
    return (*classes, batch)


def build_datasets(session: Session, today: date | None = None) -> dict[str, Dataset]:
    today = today or date.today()
    counts, last = _row_counts(session)
    classes = session.scalars(
        select(ResourceClass)
        .where(ResourceClass.open_type.in_(PUBLISHED), ResourceClass.status == "published")
        .options(selectinload(ResourceClass.fields), selectinload(ResourceClass.provider))
        .order_by(ResourceClass.code)
    ).all()
    datasets = {}
    for rc in classes:
        try:
            where = locate(session, rc.code, rc.version)
        except UnknownClass:
            continue  # a theme class whose definition is gone: nothing to publish
        public = [
            DataField(f.name, f.label, f.data_type, f.description)
            for f in rc.fields
            if f.sensitivity == "public"
        ]
        if where.kind == "department":
            stored, rows = rc.code in counts, counts.get(rc.code, 0)
        else:
            rows = _table_rows(session, where)
            stored, rows = rows is not None, rows or 0
        described = f"{rc.name} {rc.provider.name} {rc.provider.short_name}"
        ds = Dataset(
            code=rc.code,
            slug=slug_of(rc.code),
            title=rc.name,
            notes=rc.summary,
            provider=rc.provider_code,
            provider_name=rc.provider.name,
            provider_short=rc.provider.short_name,
            contact=rc.provider.contact,
            phone=rc.provider.phone,
            category=rc.category,
            open_type=rc.open_type,
            open_condition=rc.open_condition,
            update_cycle=rc.update_cycle,
            publish_date=rc.publish_date,
            created=as_utc(rc.created_at),
            modified=max(as_utc(rc.updated_at), last.get(rc.code) or as_utc(rc.updated_at)),
            version=rc.version,
            fields=public,
            withheld=len(rc.fields) - len(public),
            topics=topics_of(described),
            tags=[w for w in TAG_WORDS if w in rc.name] + [rc.provider.short_name],
            rows=rows,
            last_batch=last.get(rc.code),
            where=where,
            stored=stored,
        )
        ds.quality = _quality(ds, today)
        datasets[ds.slug] = ds
    return datasets


def _table_rows(session: Session, res: ClassTable) -> int | None:
    """Theme and base tables are refreshed whole and small next to staging: counted directly.
    None when the table has not been made yet."""
    conn = session.connection()
    if not conn.dialect.has_table(conn, res.table):
        return None
    return session.scalar(select(func.count()).select_from(table(res.table))) or 0


def history(session: Session, ds: Dataset, limit: int = 20) -> list[Batch]:
    return list(
        session.scalars(
            select(Batch)
            .where(Batch.class_code == ds.code, Batch.status == "committed")
            .order_by(Batch.id.desc())
            .limit(limit)
        )
    )
