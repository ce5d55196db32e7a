"""Open data (开放): which classes are published, as what, and their rows.

A dataset is a published resource class: 普遍开放 classes are public with their data;
有条件开放 classes are listed, their data released to a user with an approved application;
不予开放 classes never appear. Only fields of sensitivity ``public`` are ever part of a dataset —
personal, sensitive and internal fields are not in open data at all, not even masked.

The catalogue of datasets is small (hundreds to a few thousand) and read constantly, so it is
built once per catalog state (the "stamp": classes, their last change, the last committed batch)
and answered from memory; the rows stay in the database and are paged by keyset."""

from __future__ import annotations

import threading
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    TableClause,
    case,
    func,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.orm import Session, selectinload

from citydata.bases.tables import ID_SHIFT, ClassTable, UnknownClass, locate
from citydata.catalog import vocab
from citydata.catalog.models import ResourceClass
from citydata.db import keyset
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.ingest import staging
from citydata.ingest.models import Batch

TOPICS_FILE = Path(__file__).with_name("topics.toml")
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


# ---------------------------------------------------------------- topics and tags


@dataclass(frozen=True)
class Topic:
    name: str
    title: str
    title_en: str
    theme: str
    words: tuple[str, ...]


def _load_topics() -> tuple[list[Topic], tuple[str, ...]]:
    spec = tomllib.loads(TOPICS_FILE.read_text(encoding="utf-8"))
    topics = [
        Topic(t["name"], t["title"], t["title_en"], t["theme"], tuple(t["words"]))
        for t in spec["topic"]
    ]
    return topics, tuple(spec["tags"]["words"])


TOPICS, TAG_WORDS = _load_topics()
TOPIC_BY_NAME = {t.name: t for t in TOPICS}


def _topics_of(text_: str) -> list[str]:
    found = [t.name for t in TOPICS if any(w in text_ for w in t.words)]
    return found or [TOPICS[-1].name]


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
            topics=_topics_of(described),
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


class Catalogue:
    """The published datasets of one store, rebuilt when the catalog or the data changes."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._datasets: dict[str, Dataset] = {}

    def datasets(self, session: Session | None = None) -> dict[str, Dataset]:
        if session is None:
            with self.store.session() as own:
                return self.datasets(own)
        now = stamp(session)
        if now != self._stamp:
            with self._lock:
                if now != self._stamp:
                    self._datasets = build_datasets(session)
                    refresh_search_index(session, self._datasets.values(), now)
                    self._stamp = now
        return self._datasets

    def get(self, session: Session, id_or_name: str) -> Dataset:
        datasets = self.datasets(session)
        ds = datasets.get(id_or_name) or datasets.get(slug_of(id_or_name))
        if ds is None:
            raise not_found(f"数据集「{id_or_name}」")
        return ds

    def by_resource(self, session: Session, rid: str) -> tuple[Dataset, str]:
        found = find_resource(self.datasets(session), rid)
        if found is None:
            raise not_found(f"资源「{rid}」")
        return found


# ---------------------------------------------------------------- full-text search

SEARCH_TABLE = "open_search"


def _search_body(ds: Dataset) -> str:
    labels = " ".join(f.label for f in ds.fields)
    topics = " ".join(TOPIC_BY_NAME[t].title for t in ds.topics)
    return " ".join([ds.title, ds.notes, ds.provider_name, ds.code, *ds.tags, topics, labels])


def refresh_search_index(session: Session, datasets: Iterable[Dataset], now: tuple) -> None:
    """Chinese substring search: an FTS5 trigram table on SQLite, a pg_trgm GIN index on
    PostgreSQL. Rebuilt whole (a few thousand rows at most) when the stamp moves."""
    conn = session.connection()
    marker = orjson.dumps([str(v) for v in now]).decode()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} "
            "USING fts5(slug UNINDEXED, body, tokenize='trigram')"
        )
    else:
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} (slug text, body text)")
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS ix_{SEARCH_TABLE}_trgm ON {SEARCH_TABLE} "
                    "USING gin (body gin_trgm_ops)"
                )
        except Exception:  # noqa: BLE001 - without pg_trgm, ILIKE still answers (by a scan)
            pass
        conn.exec_driver_sql(f"LOCK TABLE {SEARCH_TABLE} IN EXCLUSIVE MODE")
    stored = conn.exec_driver_sql(f"SELECT body FROM {SEARCH_TABLE} WHERE slug = ''").scalar()
    if stored == marker:
        return  # another process rebuilt it for the same state
    conn.exec_driver_sql(f"DELETE FROM {SEARCH_TABLE}")
    rows = [{"slug": "", "body": marker}] + [
        {"slug": ds.slug, "body": _search_body(ds)} for ds in datasets
    ]
    conn.execute(text(f"INSERT INTO {SEARCH_TABLE} (slug, body) VALUES (:slug, :body)"), rows)
    session.commit()


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_slugs(session: Session, q: str) -> set[str]:
    """Datasets whose title, summary, provider, tags or field labels contain every word of
    ``q`` (substrings: 「人口」 finds 「老年人口分区县统计」)."""
    conn = session.connection()
    op = "LIKE" if conn.dialect.name == "sqlite" else "ILIKE"
    found: set[str] | None = None
    for word in q.split():
        slugs = set(
            conn.execute(
                text(
                    f"SELECT slug FROM {SEARCH_TABLE} WHERE slug <> '' "
                    f"AND body {op} :pattern ESCAPE '\\'"
                ),
                {"pattern": _like_pattern(word)},
            ).scalars()
        )
        found = slugs if found is None else found & slugs
    return found or set()


# ---------------------------------------------------------------- package_search

FACETS = {
    "organization": lambda ds: [ds.provider],
    "groups": lambda ds: ds.topics,
    "tags": lambda ds: ds.tags,
    "res_format": lambda ds: ds.formats,
    "update_cycle": lambda ds: [ds.update_cycle],
    "open_type": lambda ds: [ds.open_type],
    "quality": lambda ds: [ds.quality["band"]],
    "license_id": lambda ds: [LICENSE["id"]],
}
SORTS = {
    "metadata_modified": lambda ds: ds.modified,
    "metadata_created": lambda ds: ds.created,
    "name": lambda ds: ds.slug,
    "title_string": lambda ds: ds.title,
    "quality": lambda ds: ds.quality["score"],
    "rows": lambda ds: ds.rows,
}


def parse_fq(fq: str) -> list[tuple[str, str]]:
    """The Solr filter CKAN clients send: ``organization:csga +tags:"行政许可" groups:health``."""
    terms: list[tuple[str, str]] = []
    rest = fq.strip()
    while rest:
        rest = rest.lstrip("+ ")
        if rest.upper().startswith("AND "):
            rest = rest[4:]
            continue
        name, sep, rest = rest.partition(":")
        if not sep or not name.strip():
            raise OpenDataError(f"无法解析的 fq：{fq}")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(" ")
        name = name.strip()
        if name not in FACETS:
            raise OpenDataError(f"fq 不支持字段「{name}」；可用：{'、'.join(FACETS)}")
        terms.append((name, value))
        rest = rest.strip()
    return terms


@dataclass
class SearchResult:
    count: int
    results: list[Dataset]
    facets: dict[str, dict[str, int]]
    sort: str


def search(
    catalogue: Catalogue,
    session: Session,
    *,
    q: str = "",
    fq: str = "",
    filters: list[tuple[str, str]] | None = None,
    sort: str = "",
    rows: int = 10,
    start: int = 0,
    facet_fields: list[str] | None = None,
) -> SearchResult:
    if rows < 0 or start < 0:
        raise OpenDataError("rows 和 start 不能为负数")
    rows = min(rows, MAX_ROWS)
    datasets = list(catalogue.datasets(session).values())
    q = q.strip()
    scores: dict[str, int] = {}
    if q and q not in {"*:*", "*"}:
        hits = search_slugs(session, q)
        datasets = [ds for ds in datasets if ds.slug in hits]
        scores = {ds.slug: 2 if all(w in ds.title for w in q.split()) else 1 for ds in datasets}
    terms = [*(filters or []), *parse_fq(fq)]
    for name, value in terms:
        datasets = [ds for ds in datasets if value in FACETS[name](ds)]
    facets = {}
    for name in facet_fields or []:
        if name not in FACETS:
            raise OpenDataError(f"facet.field 不支持「{name}」")
        facets[name] = dict(Counter(v for ds in datasets for v in FACETS[name](ds)).most_common())
    sort = sort.strip() or ("score desc, metadata_modified desc" if scores else "name asc")
    for part in reversed([p.strip() for p in sort.split(",") if p.strip()]):
        key, _, direction = part.partition(" ")
        descending = direction.strip().lower() == "desc"
        if key == "score":
            datasets.sort(key=lambda ds: scores.get(ds.slug, 0), reverse=descending)
        elif key in SORTS:
            datasets.sort(key=SORTS[key], reverse=descending)
        else:
            raise OpenDataError(f"不支持按「{key}」排序；可用：score、{'、'.join(SORTS)}")
    return SearchResult(len(datasets), datasets[start : start + rows], facets, sort)


# ---------------------------------------------------------------- rows (datastore)


@dataclass(frozen=True)
class Source:
    """How a dataset's rows are read: its public fields from the class's table (bases.tables),
    in its stable order, with the ``_id`` CKAN shows."""

    dataset: Dataset

    @property
    def keyset(self) -> bool:
        return self.dataset.where.keyset

    def table(self) -> TableClause:
        return self.dataset.where.source([f.name for f in self.dataset.fields])

    def id_expr(self, source: TableClause) -> ColumnElement:
        return self.dataset.where.row_id(source)

    def order(self, source: TableClause) -> list[ColumnElement]:
        # theme rows have no stored order: all their fields make one
        return self.dataset.where.order_by(source) or [
            source.c[f.name] for f in self.dataset.fields
        ]


def datastore_fields(ds: Dataset) -> list[dict[str, Any]]:
    return [{"id": "_id", "type": "int"}] + [
        {
            "id": f.name,
            "type": "text",  # staged values are kept exactly as the department sent them
            "info": {
                "label": f.label,
                "notes": f.description,
                "type_override": DATASTORE_TYPES.get(f.data_type, ""),
            },
        }
        for f in ds.fields
    ]


@dataclass
class Page:
    fields: list[dict[str, Any]]
    records: list[dict[str, Any]]
    total: int | None
    total_was_estimated: bool
    next_page: str | None
    limit: int
    offset: int


def _filters(ds: Dataset, source, filters: dict[str, Any], q: Any) -> list[ColumnElement]:  # noqa: ANN001
    names = {f.name for f in ds.fields}
    where: list[ColumnElement] = []
    for name, value in (filters or {}).items():
        if name == "_id" and ds.source_kind == "department":
            ids = value if isinstance(value, list) else [value]
            try:
                numbers = [int(i) for i in ids]
            except (TypeError, ValueError) as exc:
                raise OpenDataError("_id 必须是整数") from exc
            if not all(0 <= i < 1 << 62 for i in numbers):
                raise OpenDataError("_id 超出范围")
            pairs = [(i // ID_SHIFT, i % ID_SHIFT) for i in numbers]
            where.append(tuple_(source.c[staging.BATCH], source.c[staging.ROW]).in_(pairs))
            continue
        if name not in names:
            raise OpenDataError(f"filters 中的字段「{name}」不存在")
        values = value if isinstance(value, list) else [value]
        where.append(source.c[name].in_([str(v) for v in values]))
    if isinstance(q, dict):
        for name, word in q.items():
            if name not in names:
                raise OpenDataError(f"q 中的字段「{name}」不存在")
            where.append(source.c[name].contains(str(word), autoescape=True))
    elif q:
        for word in str(q).split():
            where.append(
                or_(*[source.c[f.name].contains(word, autoescape=True) for f in ds.fields])
            )
    return where


def datastore_search(
    session: Session,
    ds: Dataset,
    *,
    filters: dict[str, Any] | None = None,
    q: Any = None,
    fields: list[str] | None = None,
    sort: str = "",
    limit: int = 100,
    offset: int = 0,
    include_total: bool = True,
    next_page: str | None = None,
) -> Page:
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
        raise OpenDataError("limit 和 offset 必须是非负整数")
    limit = min(limit, DATASTORE_MAX)
    if filters is not None and not isinstance(filters, dict):
        raise OpenDataError("filters 必须是对象")
    src = Source(ds)
    source = src.table()
    if not ds.stored:
        described = datastore_fields(ds)
        return Page(described, [], 0 if include_total else None, False, None, limit, offset)
    all_names = [f.name for f in ds.fields]
    wanted = fields or ["_id", *all_names]
    unknown = [f for f in wanted if f != "_id" and f not in all_names]
    if unknown:
        raise OpenDataError(f"fields 中的字段不存在：{'、'.join(unknown)}")
    where = _filters(ds, source, filters or {}, q)
    order = src.order(source)
    if sort.strip():
        order = []
        for part in sort.split(","):
            name, _, direction = part.strip().strip('"').partition(" ")
            name = name.strip('"')
            if name == "_id":
                cols = src.order(source)
            elif name in all_names:
                cols = [source.c[name]]
            else:
                raise OpenDataError(f"sort 中的字段「{name}」不存在")
            order += [c.desc() if direction.strip().lower() == "desc" else c for c in cols]
    paged_by_key = src.keyset and sort.strip() in {"", "_id", "_id asc"}
    if next_page:
        if not paged_by_key:
            raise OpenDataError("next_page 只能用于按 _id 排序的查询")
        after = keyset.decode_ints(next_page, len(src.order(source)))
        if after is None:
            raise OpenDataError("next_page 无效")
        where.append(keyset.after(src.order(source), after))
        offset = 0
    id_col = src.id_expr(source).label("_id")
    stmt: Select = (
        select(id_col, *[source.c[n] for n in all_names], *src.order(source))
        .where(*where)
        .order_by(*order)
        .limit(limit + 1)
        .offset(offset)
    )
    result = session.execute(stmt).all()
    more = len(result) > limit
    result = result[:limit]
    columns = ["_id", *all_names]
    records = []
    for i, row in enumerate(result):
        record = dict(zip(columns, row[: len(columns)], strict=True))
        if record["_id"] is None:
            record["_id"] = offset + i + 1
        records.append({k: record[k] for k in wanted})
    cursor = None
    if paged_by_key and more and result:
        cursor = keyset.encode(result[-1][len(columns) :])
    total, estimated = None, False
    if include_total:
        if not where and ds.source_kind == "department":
            total = ds.rows  # the batch ledger's count: no COUNT(*) over the table
        else:
            total = session.scalar(select(func.count()).select_from(source).where(*where))
    described = [f for f in datastore_fields(ds) if f["id"] in wanted]
    return Page(described, records, total, estimated, cursor, limit, offset)


def iter_rows(session: Session, ds: Dataset, chunk: int = 50_000) -> Iterator[list[tuple]]:
    """Every row of the dataset in chunks, by keyset (or by offset for small theme tables)."""
    src = Source(ds)
    source = src.table()
    if not ds.stored:
        return
    names = [f.name for f in ds.fields]
    order = src.order(source)
    after: tuple | None = None
    offset = 0
    while True:
        stmt = select(*[source.c[n] for n in names], *order).order_by(*order).limit(chunk)
        if src.keyset and after is not None:
            stmt = stmt.where(keyset.after(order, after))
        elif not src.keyset:
            stmt = stmt.offset(offset)
        rows = session.execute(stmt).all()
        if not rows:
            return
        yield [tuple(r[: len(names)]) for r in rows]
        if len(rows) < chunk:
            return
        after = tuple(rows[-1][len(names) :])
        offset += len(rows)


def history(session: Session, ds: Dataset, limit: int = 20) -> list[Batch]:
    return list(
        session.scalars(
            select(Batch)
            .where(Batch.class_code == ds.code, Batch.status == "committed")
            .order_by(Batch.id.desc())
            .limit(limit)
        )
    )
