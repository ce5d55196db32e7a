"""Finding datasets: the catalogue built once per catalog state (the "stamp": classes, their
last change, the last committed batch) and answered from memory; the Chinese substring index
(SQLite FTS5 trigram / PostgreSQL pg_trgm); ``package_search``'s filters, facets and sorts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import (
    text,
)
from sqlalchemy.orm import Session

from citydata.db.engine import Store
from citydata.mechanisms.locks import hold
from citydata.opendata.datasets import (
    LICENSE,
    MAX_ROWS,
    Dataset,
    OpenDataError,
    build_datasets,
    find_resource,
    not_found,
    slug_of,
    stamp,
)
from citydata.opendata.topics import TOPIC_BY_NAME


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
    # One rebuilder at a time across every server process, from before the first DDL: two
    # workers creating the table at once collide in the catalog, and two upgrading their locks
    # on it deadlock.
    hold(session, "opendata:search_index")
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
        except Exception:  # without pg_trgm, ILIKE still answers (by a scan)
            pass
    stored = conn.exec_driver_sql(f"SELECT body FROM {SEARCH_TABLE} WHERE slug = ''").scalar()
    if stored == marker:
        session.commit()  # let the next one in
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
