"""Open data's logic, as pages and the API call it; each part in a module of its own:

- ``datasets``: which classes are published, as what (``Dataset``, ``build_datasets``);
- ``topics``: topics and tags;
- ``search``: the catalogue held in memory per catalog state, full-text search, facets;
- ``datastore``: a dataset's rows, paged and filtered, and every row for downloads."""

from __future__ import annotations

from citydata.opendata.datasets import (
    DATASTORE_MAX,
    FORMATS,
    LICENSE,
    MAX_ROWS,
    PUBLISHED,
    DataField,
    Dataset,
    OpenDataError,
    build_datasets,
    find_resource,
    history,
    not_found,
    quality_band,
    resource_id,
    slug_of,
    stamp,
)
from citydata.opendata.datastore import (
    Page,
    Source,
    datastore_fields,
    datastore_search,
    iter_rows,
)
from citydata.opendata.search import (
    FACETS,
    SORTS,
    Catalogue,
    SearchResult,
    parse_fq,
    refresh_search_index,
    search,
    search_slugs,
)
from citydata.opendata.topics import TAG_WORDS, TOPIC_BY_NAME, TOPICS, Topic

__all__ = [
    "DATASTORE_MAX",
    "FACETS",
    "FORMATS",
    "LICENSE",
    "MAX_ROWS",
    "PUBLISHED",
    "SORTS",
    "TAG_WORDS",
    "TOPICS",
    "TOPIC_BY_NAME",
    "Catalogue",
    "DataField",
    "Dataset",
    "OpenDataError",
    "Page",
    "SearchResult",
    "Source",
    "Topic",
    "build_datasets",
    "datastore_fields",
    "datastore_search",
    "find_resource",
    "history",
    "iter_rows",
    "not_found",
    "parse_fq",
    "quality_band",
    "refresh_search_index",
    "resource_id",
    "search",
    "search_slugs",
    "slug_of",
    "stamp",
]
