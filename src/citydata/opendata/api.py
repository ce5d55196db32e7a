"""HTTP for open data: CKAN's Action API (``/api/3/action/...``), the downloads, and the whole
catalogue as JSON Lines. Anonymous use is rate-limited per IP address; files stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from citydata.accounts.models import User
from citydata.accounts.service import user_for_token
from citydata.opendata import ckan, downloads, service, sql
from citydata.opendata.permissions import may_read
from citydata.opendata.service import Catalogue, OpenDataError
from citydata.web import clock
from citydata.web.auth import cookie_user
from citydata.web.client import client_ip
from citydata.web.errors import documented


class CkanAnswer(BaseModel):
    """CKAN's envelope, which every action answers in, errors included."""

    help: str
    success: bool
    result: Any = None
    error: Any = None


router = APIRouter(
    tags=["opendata 开放数据 (CKAN)"],
    responses={
        **documented(400, 403, 404, 409, 413, 429, 503, model=CkanAnswer),
        **documented(422),
    },
)
JSON = "application/json"


def catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def api_user(request: Request, session: Session) -> User | None:
    """CKAN clients send their API key as ``Authorization: <key>`` (ckanapi also as
    ``X-CKAN-API-Key``); a browser has its session."""
    key = request.headers.get("authorization") or request.headers.get("x-ckan-api-key") or ""
    key = key.removeprefix("Bearer ").strip()
    if key:
        return user_for_token(session, key)
    return cookie_user(request, session)


def limited(request: Request) -> int | None:
    state = request.app.state
    return state.open_limiter.take(
        client_ip(request), state.settings.open_rate_per_minute, state.clock()
    )


# ---------------------------------------------------------------- CKAN's envelope


def _envelope(request: Request, action: str, status: int, payload: dict) -> Response:
    body = {"help": f"{base_url(request)}/api/3/action/help_show?name={action}", **payload}
    return Response(orjson.dumps(body), status, media_type=JSON)


def _error(request: Request, action: str, exc: OpenDataError) -> Response:
    error = {"__type": exc.kind, "message": str(exc)}
    return _envelope(request, action, exc.status, {"success": False, "error": error})


INT_MAX = (1 << 31) - 1  # offsets, limits, rows: a database's INTEGER, and far past any page


def _int(params: dict, name: str, default: int, lowest: int = 0) -> int:
    value = params.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OpenDataError(f"{name} 必须是整数") from exc
    if not lowest <= number <= INT_MAX:
        raise OpenDataError(f"{name} 应在 {lowest}–{INT_MAX} 之间")
    return number


def _bool(params: dict, name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, str):
        return value.lower() in {"true", "1", "yes"}
    return bool(value)


def _json_param(value: Any, name: str) -> Any:
    """GET parameters carry JSON for objects and lists (filters, facet.field)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise OpenDataError(f"{name} 不是有效的 JSON") from exc
    return value


def _list(value: Any, name: str) -> list[str]:
    value = _json_param(value, name)
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise OpenDataError(f"{name} 应为字符串列表")


# ---------------------------------------------------------------- the actions

Action = Callable[[Request, Session, dict], Any]
ACTIONS: dict[str, Action] = {}


def action(fn: Action) -> Action:
    ACTIONS[fn.__name__] = fn
    return fn


@action
def status_show(request: Request, session: Session, params: dict) -> dict:
    """Site and API version."""
    return {
        "site_title": "长沙市公共数据开放平台",
        "site_description": "citydata 开放数据门户：普遍开放与有条件开放的政务数据资源",
        "site_url": base_url(request),
        "ckan_version": ckan.CKAN_VERSION,
        "locale_default": "zh_Hans_CN",
        "extensions": ["datastore", "dcat", "citydata"],
    }


@action
def site_read(request: Request, session: Session, params: dict) -> bool:
    return True


@action
def help_show(request: Request, session: Session, params: dict) -> str:
    name = params.get("name", "")
    if name not in ACTIONS:
        raise service.not_found(f"接口「{name}」")
    return (ACTIONS[name].__doc__ or name).strip()


@action
def package_list(request: Request, session: Session, params: dict) -> list[str]:
    """Names of every published dataset."""
    names = sorted(catalogue(request).datasets(session))
    offset = _int(params, "offset", 0)
    limit = _int(params, "limit", len(names))
    return names[offset : offset + limit]


DEFAULT_FACETS = ("organization", "groups", "tags", "res_format", "license_id")


@action
def package_search(request: Request, session: Session, params: dict) -> dict:
    """Search with q (Chinese substrings), fq, rows (≤ 1000), start, sort and facet.field."""
    facet_fields = _list(params.get("facet.field"), "facet.field")
    if "facet.field" not in params:
        facet_fields = list(DEFAULT_FACETS) if _bool(params, "facet", True) else []
    limit = _int(params, "facet.limit", 50, lowest=-1)  # CKAN's -1: every value
    found = service.search(
        catalogue(request),
        session,
        q=str(params.get("q") or ""),
        fq=str(params.get("fq") or ""),
        sort=str(params.get("sort") or ""),
        rows=_int(params, "rows", 10),
        start=_int(params, "start", 0),
        facet_fields=facet_fields,
    )
    base = base_url(request)
    search_facets = {}
    for name, counts in found.facets.items():
        items = list(counts.items())[: limit if limit >= 0 else None]
        search_facets[name] = {
            "title": name,
            "items": [
                {"name": value, "display_name": _display(name, value), "count": n}
                for value, n in items
            ],
        }
    return {
        "count": found.count,
        "sort": found.sort,
        "results": [ckan.package_dict(base, ds) for ds in found.results],
        "facets": found.facets,
        "search_facets": search_facets,
    }


def _display(facet: str, value: str) -> str:
    if facet == "groups" and value in service.TOPIC_BY_NAME:
        return service.TOPIC_BY_NAME[value].title
    return value


@action
def package_show(request: Request, session: Session, params: dict) -> dict:
    """One dataset by id or name (the class code, with ``-`` for ``/``)."""
    ds = catalogue(request).get(session, str(params.get("id") or params.get("name") or ""))
    return ckan.package_dict(base_url(request), ds)


@action
def current_package_list_with_resources(request: Request, session: Session, params: dict) -> list:
    """Datasets with their resources, the most recently changed first."""
    datasets = sorted(
        catalogue(request).datasets(session).values(), key=lambda d: d.modified, reverse=True
    )
    offset = _int(params, "offset", 0)
    limit = min(_int(params, "limit", service.MAX_ROWS), service.MAX_ROWS)
    base = base_url(request)
    return [ckan.package_dict(base, ds) for ds in datasets[offset : offset + limit]]


def _organizations(request: Request, session: Session) -> dict[str, dict]:
    orgs: dict[str, dict] = {}
    for ds in catalogue(request).datasets(session).values():
        org = orgs.setdefault(
            ds.provider, ckan.organization_dict(ds.provider, ds.provider_name, ds.provider_short, 0)
        )
        org["package_count"] += 1
    return orgs


@action
def organization_list(request: Request, session: Session, params: dict) -> list:
    """Departments that publish datasets (names, or dicts with ``all_fields``)."""
    orgs = sorted(_organizations(request, session).values(), key=lambda o: o["name"])
    if _bool(params, "all_fields", False):
        return orgs
    return [o["name"] for o in orgs]


@action
def organization_show(request: Request, session: Session, params: dict) -> dict:
    code = str(params.get("id") or "")
    org = _organizations(request, session).get(code)
    if org is None:
        raise service.not_found(f"组织「{code}」")
    if _bool(params, "include_datasets", False):
        base = base_url(request)
        datasets = catalogue(request).datasets(session).values()
        org["packages"] = [ckan.package_dict(base, d) for d in datasets if d.provider == code][
            : service.MAX_ROWS
        ]
    return org


def _groups(request: Request, session: Session) -> dict[str, int]:
    counts = dict.fromkeys(service.TOPIC_BY_NAME, 0)
    for ds in catalogue(request).datasets(session).values():
        for topic in ds.topics:
            counts[topic] += 1
    return counts


@action
def group_list(request: Request, session: Session, params: dict) -> list:
    """Topics (主题)."""
    counts = _groups(request, session)
    if _bool(params, "all_fields", False):
        return [ckan.group_dict(name, n) for name, n in counts.items()]
    return list(counts)


@action
def group_show(request: Request, session: Session, params: dict) -> dict:
    name = str(params.get("id") or "")
    counts = _groups(request, session)
    if name not in counts:
        raise service.not_found(f"主题「{name}」")
    return ckan.group_dict(name, counts[name])


@action
def tag_list(request: Request, session: Session, params: dict) -> list:
    query = str(params.get("query") or "")
    tags = sorted(
        {t for ds in catalogue(request).datasets(session).values() for t in ds.tags if query in t}
    )
    if _bool(params, "all_fields", False):
        return [ckan.tag_dict(t) for t in tags]
    return tags


@action
def resource_show(request: Request, session: Session, params: dict) -> dict:
    ds, fmt = catalogue(request).by_resource(session, str(params.get("id") or ""))
    return ckan.resource_dict(base_url(request), ds, fmt)


@action
def datastore_search(request: Request, session: Session, params: dict) -> dict:
    """Rows of a resource: filters, q, fields, sort, limit (≤ 32000), offset, include_total,
    and ``next_page`` (keyset paging: pass the value the previous page returned)."""
    resource_id = str(params.get("resource_id") or params.get("id") or "")
    ds, _ = catalogue(request).by_resource(session, resource_id)
    if not may_read(session, api_user(request, session), ds):
        raise OpenDataError(
            f"「{ds.title}」为有条件开放数据，需申请并获批准后才能读取数据",
            "Authorization Error",
            403,
        )
    filters = _json_param(params.get("filters"), "filters")
    q = _json_param(params.get("q"), "q")
    # the rows may come from the read replica; the catalogue and the caller's rights did not
    with request.app.state.store.read_session(alongside=session) as rows:
        page = service.datastore_search(
            rows,
            ds,
            filters=filters,
            q=q,
            fields=_list(params.get("fields"), "fields") or None,
            sort=str(params.get("sort") or ""),
            limit=_int(params, "limit", 100),
            offset=_int(params, "offset", 0),
            include_total=_bool(params, "include_total", True),
            next_page=params.get("next_page") or None,
        )
    start = f"/api/3/action/datastore_search?resource_id={resource_id}"
    if page.next_page:
        next_link = f"{start}&next_page={page.next_page}"
    else:
        next_link = f"{start}&offset={page.offset + page.limit}"
    result = {
        "resource_id": resource_id,
        "fields": page.fields,
        "records": page.records,
        "limit": page.limit,
        "offset": page.offset,
        "_links": {"start": start, "next": next_link},
        "next_page": page.next_page,
    }
    if page.total is not None:
        result["total"] = page.total
        result["total_was_estimated"] = page.total_was_estimated
    return result


@action
def datastore_search_sql(request: Request, session: Session, params: dict) -> dict:
    """One read-only SELECT over published resources (by resource id, in double quotes),
    stopped after a time limit; personal fields do not exist here."""
    datasets = catalogue(request).datasets(session)
    user = api_user(request, session)
    readable = {slug: ds for slug, ds in datasets.items() if may_read(session, user, ds)}
    found = sql.run(session, readable, str(params.get("sql") or ""))
    return {
        "sql": found.sql,
        "fields": found.fields,
        "records": found.records,
        "records_truncated": found.records_truncated,
    }


def _call(request: Request, name: str, params: dict) -> Response:
    if name not in ACTIONS:
        error = OpenDataError(f"Bad request - Action name not known: {name}", "Bad Request", 400)
        return _error(request, name, error)
    calls = getattr(request.app.state, "open_calls", None)
    if calls is not None:  # counted in memory; the server adds them up every few seconds
        calls.add(clock.today(request), name)
    try:
        with request.app.state.store.session() as session:
            result = ACTIONS[name](request, session, params)
    except OpenDataError as exc:
        return _error(request, name, exc)
    return _envelope(request, name, 200, {"success": True, "result": result})


def _too_many(request: Request, name: str, wait: int) -> Response:
    response = _error(request, name, OpenDataError("请求过于频繁，请稍后再试", "Throttled", 429))
    response.headers["Retry-After"] = str(wait)
    return response


@router.get("/api/3/action/{name}")
@router.get("/api/action/{name}", include_in_schema=False)  # CKAN answers both; ckanapi uses this
async def action_get(name: str, request: Request) -> Response:
    if (wait := limited(request)) is not None:
        return _too_many(request, name, wait)
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        params[key] = value if key not in params else [*_as_list(params[key]), value]
    return await run_in_threadpool(_call, request, name, params)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@router.post("/api/3/action/{name}")
@router.post("/api/action/{name}", include_in_schema=False)
async def action_post(name: str, request: Request) -> Response:
    if (wait := limited(request)) is not None:
        return _too_many(request, name, wait)
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params = dict((await request.form()).items())
    else:
        try:
            params = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            return _error(request, name, OpenDataError("请求体不是有效的 JSON", "Bad Request", 400))
        if not isinstance(params, dict):
            return _error(request, name, OpenDataError("请求体应为 JSON 对象", "Bad Request", 400))
    return await run_in_threadpool(_call, request, name, params)


# ---------------------------------------------------------------- files


def _plain_error(status: int, message: str, headers: dict | None = None) -> Response:
    body = {"success": False, "error": {"message": message}}
    return Response(orjson.dumps(body), status, headers=headers, media_type=JSON)


@router.get("/open/dataset/{slug}/download.{fmt}", include_in_schema=False)
def download(slug: str, fmt: str, request: Request) -> Response:
    """The whole dataset as CSV (UTF-8 with BOM, for Excel), XLSX or JSON — streamed."""
    if (wait := limited(request)) is not None:
        return _plain_error(429, "请求过于频繁，请稍后再试", {"Retry-After": str(wait)})
    if fmt not in service.FORMATS:
        return _plain_error(404, f"不支持的格式「{fmt}」")
    store = request.app.state.store
    with store.session() as session:
        try:
            ds = catalogue(request).get(session, slug)
        except OpenDataError as exc:
            return _plain_error(exc.status, str(exc))
        if not may_read(session, api_user(request, session), ds):
            return _plain_error(403, "有条件开放数据，需申请并获批准后才能下载")
        downloads.count(session, ds.code, fmt, clock.today(request))
    try:
        body: Iterator[bytes] = downloads.stream(store, ds, fmt)
    except OpenDataError as exc:
        return _plain_error(exc.status, str(exc))
    name = f"{ds.slug}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(body, media_type=service.FORMATS[fmt], headers=headers)


@router.get("/open/catalog.jsonl", include_in_schema=False)
def catalogue_export(request: Request) -> Response:
    """Every dataset's CKAN package, one per line: the whole catalogue without the 1000 cap."""
    base = base_url(request)
    with request.app.state.store.session() as session:
        datasets = list(catalogue(request).datasets(session).values())

    def lines() -> Iterator[bytes]:
        for ds in datasets:
            yield orjson.dumps(ckan.package_dict(base, ds)) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
