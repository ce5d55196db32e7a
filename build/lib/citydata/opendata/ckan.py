"""CKAN's shapes: package, resource, organization and group dicts with CKAN's field names, and
the action envelope, so CKAN clients (ckanapi, harvesters, national portals) read us unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citydata.catalog import vocab
from citydata.opendata.service import FORMATS, LICENSE, TOPIC_BY_NAME, Dataset, resource_id

CKAN_VERSION = "2.11.0"  # the API version whose actions and limits we follow


def ckan_time(value: datetime | None) -> str | None:
    """CKAN writes naive UTC with microseconds: 2026-11-26T08:00:00.000000."""
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") if value else None


def _group(kind: str, name: str, title: str, description: str, count: int | None) -> dict:
    """CKAN's shape for both organizations (our units) and groups (our topics)."""
    found = {
        "id": name,
        "name": name,
        "title": title,
        "display_name": title,
        "description": description,
        "image_url": "",
        "image_display_url": "",
        "type": kind,
        "is_organization": kind == "organization",
        "approval_status": "approved",
        "state": "active",
        "created": None,
    }
    if count is not None:
        found["package_count"] = count
    return found


def organization_dict(code: str, name: str, short: str, count: int | None = None) -> dict:
    return _group("organization", code, name, short, count)


def group_dict(name: str, count: int | None = None, lang: str = "zh") -> dict:
    topic = TOPIC_BY_NAME[name]
    title = topic.title if lang == "zh" else topic.title_en
    return _group("group", name, title, f"{topic.title} / {topic.title_en}", count)


def tag_dict(name: str) -> dict:
    return {
        "id": name,
        "name": name,
        "display_name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def resource_url(base: str, ds: Dataset, fmt: str) -> str:
    return f"{base}/open/dataset/{ds.slug}/download.{fmt}"


def resource_dict(base: str, ds: Dataset, fmt: str) -> dict:
    return {
        "id": resource_id(ds, fmt),
        "package_id": ds.slug,
        "name": f"{ds.title}（{fmt.upper()}）",
        "description": f"{ds.title}的全部数据，{fmt.upper()} 格式"
        + ("；有条件开放，经申请批准后可下载" if not ds.downloadable else ""),
        "format": fmt.upper(),
        "mimetype": FORMATS[fmt],
        "url": resource_url(base, ds, fmt),
        "url_type": None,
        "position": list(FORMATS).index(fmt),
        "created": ckan_time(ds.created),
        "last_modified": ckan_time(ds.modified),
        "metadata_modified": ckan_time(ds.modified),
        "state": "active",
        "datastore_active": True,
        "size": None,
        "hash": "",
        "cache_url": None,
        "resource_type": None,
    }


def package_dict(base: str, ds: Dataset) -> dict[str, Any]:
    extras = {
        "identifier": ds.code,
        "update_cycle": ds.update_cycle,
        "update_cycle_label": vocab.label(vocab.UPDATE_CYCLE, ds.update_cycle),
        "open_type": ds.open_type,
        "open_condition": ds.open_condition,
        "category": ds.category,
        "rows": str(ds.rows),
        "withheld_fields": str(ds.withheld),
        "quality_score": str(ds.quality["score"]),
        "quality_band": ds.quality["band"],
    }
    return {
        "id": ds.slug,
        "name": ds.slug,
        "title": ds.title,
        "notes": ds.notes,
        "type": "dataset",
        "state": "active",
        "private": False,
        "isopen": ds.downloadable,
        "url": f"{base}/open/dataset/{ds.slug}",
        "version": str(ds.version),
        "author": ds.provider_name,
        "author_email": None,
        "maintainer": ds.contact,
        "maintainer_email": None,
        "license_id": LICENSE["id"],
        "license_title": LICENSE["title"],
        "license_url": LICENSE["url"],
        "metadata_created": ckan_time(ds.created),
        "metadata_modified": ckan_time(ds.modified),
        "owner_org": ds.provider,
        "organization": organization_dict(ds.provider, ds.provider_name, ds.provider_short),
        "groups": [group_dict(t) for t in ds.topics],
        "tags": [tag_dict(t) for t in ds.tags],
        "num_tags": len(ds.tags),
        "resources": [resource_dict(base, ds, fmt) for fmt in FORMATS],
        "num_resources": len(FORMATS),
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
        "relationships_as_object": [],
        "relationships_as_subject": [],
        **{k: v for k, v in extras.items() if k not in {"identifier"}},
    }
