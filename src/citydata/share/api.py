"""HTTP for the sharing API itself (``/api/share/v1``), called by business systems with a
credential. People manage sharing through ``share.manage_api``.

Every sharing call is audited before it answers: the body is built, hashed, the audit entry
(with that hash) committed, and only then sent. If the entry cannot be written the caller gets
503 and no data. Personal keys travel in POST bodies, never in URLs."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from citydata import keys
from citydata.audit import service as audit
from citydata.audit.service import AuditError
from citydata.cells import neutralise
from citydata.share import gateway, webhooks
from citydata.share.service import ShareError
from citydata.web.client import client_ip, peer
from citydata.web.errors import documented
from citydata.web.params import RowId


class ShareProblem(BaseModel):
    """The sharing API's error body: a stable code, a message, the audited request's id."""

    error: dict[str, Any]
    request_id: str


share_router = APIRouter(
    prefix="/api/share/v1",
    tags=["share 共享接口"],
    responses={
        **documented(400, 401, 403, 404, 409, 413, 429, 503, model=ShareProblem),
        **documented(422),  # a malformed path, answered by FastAPI itself
    },
)

JSON = "application/json"


def _json(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers=headers, media_type=JSON)


# ---------------------------------------------------------------- the sharing API


# Calls that deliver or confirm data must say for whom and in which case (the national sharing
# rules' 经办人 and 办件编号): an audit entry naming no person is worth little.
NAMED_CALLS = {"lookup", "verify", "query", "export", "changes"}
END_USER, CASE_ID = "x-citydata-user-id", "x-citydata-case-id"


def _header_text(request: Request, name: str) -> str:
    """A header as UTF-8 text (HTTP carries bytes; Starlette hands them over as Latin-1)."""
    raw = request.headers.get(name, "")
    try:
        text = raw.encode("latin-1").decode("utf-8").strip()
    except UnicodeError as exc:
        raise ShareError(f"{name} 不是有效的 UTF-8 文本", "bad_header") from exc
    if len(text) > 100 or any(not c.isprintable() for c in text):
        raise ShareError(f"{name} 过长或含控制字符（最多 100 个字符）", "bad_header")
    return text


class _Call:
    """One audited call: the entry grows as we learn who calls and what leaves."""

    def __init__(self, request: Request, action: str):
        self.request = request
        self.store = request.app.state.store
        self.request_id = str(uuid.uuid4())
        self.entry: dict[str, Any] = {
            "at": datetime.now(UTC),
            "request_id": self.request_id,
            "key_id": None,
            "consumer_code": None,
            "system_name": None,
            "application_id": None,
            "class_code": None,
            "action": action,
            "fields": [],
            "query": {},
            "end_user": "",
            "case_id": "",
            "client_ip": client_ip(request),
            "peer_ip": peer(request.scope),
            "rows": 0,
            "subjects": [],
            "outcome": "ok",
            "status_code": 200,
            "response_hash": "",
        }

    async def sealed(self, response: Response) -> Response:
        """``response`` once the entry is committed; 503 and no data when it cannot be."""
        try:
            await self.request.app.state.audit.write(self.entry)
        except AuditError:
            return self._unaudited()
        return response

    def error(self, exc: ShareError) -> Response:
        self.entry.update(outcome=exc.code, status_code=exc.status, rows=0, subjects=[])
        headers = {"X-Request-Id": self.request_id}
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        body = {"error": {"code": exc.code, "message": str(exc)}, "request_id": self.request_id}
        return _json(exc.status, body, headers)

    def _unaudited(self) -> Response:
        body = {
            "error": {
                "code": "audit_unavailable",
                "message": "审计记录无法写入，本次调用不返回数据",
            },
            "request_id": self.request_id,
        }
        return _json(503, body, {"X-Request-Id": self.request_id})

    def identify(self) -> None:
        """Who the call is for, from its headers; required where data is delivered."""
        end_user, case_id = (
            _header_text(self.request, END_USER),
            _header_text(self.request, CASE_ID),
        )
        self.entry.update(end_user=end_user, case_id=case_id)
        if self.entry["action"] in NAMED_CALLS and not (end_user and case_id):
            raise ShareError(
                "必须在 X-Citydata-User-Id 和 X-Citydata-Case-Id 中写明经办人和办件编号",
                "end_user_required",
            )

    def open(
        self, session: Session, body: dict[str, Any]
    ) -> tuple[gateway.Caller, gateway.Resource]:
        caller = gateway.authenticate(
            session, self.request.headers.get("authorization", ""), self.entry["client_ip"]
        )
        self.entry.update(
            key_id=caller.key_id,
            consumer_code=caller.consumer_code,
            system_name=caller.system_name,
            application_id=caller.application_id,
            class_code=caller.class_code,
        )
        asked = body.get("class_code", caller.class_code)
        if asked != caller.class_code:
            self.entry["query"] = {"class_code": asked}
            raise ShareError(
                f"凭证对应的申请只授权了「{caller.class_code}」", "class_not_granted", 403
            )
        # rate windows and quotas run on the app's clock (tests fix it)
        self.request.app.state.limiter.check(session, caller, self.request.app.state.clock())
        return caller, gateway.resource(session, caller.class_code, caller.class_version)

    def answer(self, payload: dict[str, Any], rows: int, subjects: list[int]) -> Response:
        content = orjson.dumps({"request_id": self.request_id, **payload})
        digest = hashlib.sha256(content).hexdigest()
        self.entry.update(rows=rows, subjects=subjects, response_hash=digest)
        headers = {"X-Request-Id": self.request_id, "X-Citydata-Response-Sha256": digest}
        return Response(content, 200, headers=headers, media_type=JSON)


MAX_BODY = 1 << 20  # a sharing call names at most 100 keys and some filters


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ShareError("请求体过大（最多 1 MiB）", "body_too_large", 413)
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ShareError(f"请求体不是有效的 JSON：{exc}", "bad_json") from exc
    if not isinstance(body, dict):
        raise ShareError("请求体应为 JSON 对象", "bad_json")
    return body


async def _serve(
    request: Request,
    action: str,
    work: Callable[[Session, gateway.Caller, gateway.Resource, dict, _Call], Response | tuple],
    by_key: bool = False,
    replica: bool = False,
) -> Response:
    """Check the caller and build the answer, then send it once its audit entry is committed;
    the commit is awaited without holding a thread.

    ``replica``: ``work`` only reads the data delivered, which may come from the read replica;
    the caller, its grant and quota are still read on the primary (a credential revoked a
    moment ago stops this call), and the audit entry is written there.

    ``by_key`` calls (lookup, verify: at most 100 keys, indexed) run on the event loop: they are
    a few sub-millisecond queries, and handing them to a worker thread cost more than they do
    (threads queueing for the GIL). The rest — filters that may scan, the change feed, exports —
    run on a worker thread, so a slow one never holds up the others."""
    call = _Call(request, action)
    try:
        call.identify()
        body = await _body(request)

        def answer() -> Response:
            with call.store.session() as session:
                caller, res = call.open(session, body)
                if replica:
                    with call.store.read_session(alongside=session) as reading:
                        result = work(reading, caller, res, body, call)
                else:
                    result = work(session, caller, res, body, call)
            return result if isinstance(result, Response) else call.answer(*result)

        response = answer() if by_key else await run_in_threadpool(answer)
    except ShareError as exc:
        response = call.error(exc)
    return await call.sealed(response)


def _fields(call: _Call, caller: gateway.Caller, body: dict[str, Any]) -> list[str]:
    fields = body.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ShareError("fields 应为信息项名称的列表", "fields_required")
    call.entry["fields"] = fields
    return gateway.wanted_fields(caller, fields)


def _delivered(delivery: gateway.Delivery, fields: list[str]) -> dict[str, Any]:
    return {
        "fields": fields,
        "count": len(delivery.records),
        "records": delivery.records,
        "delivered_subjects": delivery.subjects,
    }


@share_router.post("/lookup")
async def lookup(request: Request) -> Response:
    """Records by business key (ID number, credit code, house code …), keys in the body."""

    def work(session, caller, res, body, call):
        fields = _fields(call, caller, body)
        keys = body.get("keys")
        call.entry["query"] = {"keys": keys}
        found = gateway.lookup(session, caller, res, keys, fields)
        return _delivered(found, fields), len(found.records), found.subjects

    return await _serve(request, "lookup", work, by_key=True, replica=True)


@share_router.post("/verify")
async def verify(request: Request) -> Response:
    """核验: are the claimed values those on record? 一致/不一致 per field, no data returned."""

    def work(session, caller, res, body, call):
        claims = body.get("fields")
        call.entry["fields"] = sorted(claims) if isinstance(claims, dict) else []
        call.entry["query"] = {"key": body.get("key")}
        answer, found, subjects = gateway.verify(session, caller, res, body.get("key"), claims)
        return {"found": found, "result": answer}, int(found), subjects

    return await _serve(request, "verify", work, by_key=True, replica=True)


@share_router.post("/query")
async def query(request: Request) -> Response:
    """Rows matching filters on granted fields, a page at a time (``next_cursor``)."""

    def work(session, caller, res, body, call):
        fields = _fields(call, caller, body)
        call.entry["query"] = {"filters": body.get("filters"), "cursor": body.get("cursor")}
        page = gateway.query(
            session,
            caller,
            res,
            fields,
            body.get("filters"),
            body.get("cursor"),
            _limit(body),
        )
        return (
            {**_delivered(page, fields), "next_cursor": page.next_cursor},
            len(page.records),
            page.subjects,
        )

    return await _serve(request, "query", work, replica=True)


def _limit(body: dict[str, Any]) -> int:
    limit = body.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ShareError("limit 应为整数", "bad_limit")
    return limit


@share_router.post("/changes")
async def changes(request: Request) -> Response:
    """Changes since ``cursor`` (from the last answer's ``next_cursor``; none: from the start)."""

    def work(session, caller, res, body, call):
        fields = _fields(call, caller, body)
        call.entry["query"] = {"cursor": body.get("cursor")}
        feed = gateway.changes(session, caller, res, fields, body.get("cursor"), _limit(body))
        return (
            {
                "fields": fields,
                "count": len(feed.records),
                "changes": feed.records,
                "next_cursor": feed.next_cursor,
                "delivered_subjects": feed.subjects,
            },
            len(feed.records),
            feed.subjects,
        )

    return await _serve(request, "changes", work, replica=True)


@share_router.post("/subscriptions")
async def subscribe(request: Request) -> Response:
    """A webhook on the change feed: ``{"url": …}``; the signing secret is shown once."""

    def work(session, caller, res, body, call):
        call.entry["query"] = {"url": body.get("url")}
        state = request.app.state
        sub, secret = webhooks.subscribe(
            session,
            caller,
            res,
            body.get("url"),
            state.keys,
            state.settings.webhook_allow_hosts,
        )
        return {"subscription": webhooks.subscription_dict(sub), "signing_secret": secret}, 0, []

    return await _serve(request, "subscribe", work)


@share_router.get("/subscriptions")
async def list_subscriptions(request: Request) -> Response:
    def work(session, caller, res, body, call):
        found = webhooks.subscriptions(session, caller.application_id)
        return {"subscriptions": [webhooks.subscription_dict(s) for s in found]}, 0, []

    return await _serve(request, "subscriptions", work)


@share_router.delete("/subscriptions/{subscription_id}")
async def unsubscribe(request: Request, subscription_id: RowId) -> Response:
    def work(session, caller, res, body, call):
        call.entry["query"] = {"subscription": subscription_id}
        sub = webhooks.unsubscribe(session, caller, subscription_id)
        return {"subscription": webhooks.subscription_dict(sub)}, 0, []

    return await _serve(request, "unsubscribe", work)


@share_router.post("/export")
async def export(request: Request) -> Response:
    """Every matching row, streamed as JSON Lines or CSV (UTF-8 with BOM). The audit entry —
    rows and whose — is written before the first byte. The body's hash cannot be known then:
    a closing entry (``export_end``, naming this request id) holds it once the last byte has
    been handed over, so the consumer can still prove what it received."""

    def work(session, caller, res, body, call):
        fields = _fields(call, caller, body)
        fmt = body.get("format", "jsonl")
        if fmt not in {"jsonl", "csv"}:
            raise ShareError("format 应为 jsonl 或 csv", "bad_format")
        filters = body.get("filters")
        call.entry["query"] = {"filters": filters, "format": fmt}
        rows, subjects = gateway.export_plan(session, caller, res, filters)
        call.entry.update(rows=rows, subjects=subjects)
        return StreamingResponse(  # sent, and so started, only once the entry is committed
            _hashed(_stream(call.store, caller, res, fields, filters, fmt), call),
            media_type="text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson",
            headers={"X-Request-Id": call.request_id},
        )

    return await _serve(request, "export", work, replica=True)


def _hashed(chunks: Iterator[bytes], call: _Call) -> Iterator[bytes]:
    """The chunks as they are, then an audit entry with the SHA-256 of all of them."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    closing = {
        **call.entry,
        "at": datetime.now(UTC),
        "request_id": str(uuid.uuid4()),
        "action": audit.EXPORT_END,
        "query": {"export_request_id": call.request_id},
        "subjects": [],  # named by the opening entry: one read, counted once
        "response_hash": digest.hexdigest(),
    }
    try:
        call.request.app.state.audit.write_blocking(closing)
    except AuditError:  # the body has left already; the opening entry names rows and whose
        logging.getLogger(__name__).exception("closing entry of export %s", call.request_id)


def _stream(store, caller, res, fields, filters, fmt):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")

    def flush() -> bytes:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    if fmt == "csv":  # BOM and header even when no row matches
        buffer.write("\ufeff")
        writer.writeheader()
        yield flush()
    with store.read_session() as session:
        for page in gateway.export(session, caller, res, fields, filters):
            if fmt == "csv":
                writer.writerows({k: neutralise(v) for k, v in r.items()} for r in page)
                yield flush()
            else:
                yield b"".join(orjson.dumps(r) + b"\n" for r in page)


def standalone(store, settings) -> FastAPI:
    """The sharing API alone, as a business system reaches it: its routes and the state they
    read. For a gateway process of its own, and for the demo city's replay of a day of calls."""
    app = FastAPI(title="citydata 共享接口")
    app.state.store, app.state.settings = store, settings
    app.state.keys = keys.load(settings)
    app.state.clock = time.time
    app.state.audit = audit.AuditLog(store)
    app.state.limiter = gateway.Limiter(store)
    app.include_router(share_router)
    return app
