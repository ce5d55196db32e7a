"""HTTP calls of docked business systems, for every domain that has them (the service
platform's cases, the grid's events): the credential names the system, reads run in one session,
and every write runs under its ``Idempotency-Key`` — the key claimed in the write's own
transaction and the answer kept with it, so a retry gets the same answer and changes nothing,
and the same key with another body is refused (422). An answer holding a secret is kept
encrypted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from citydata.mechanisms import idempotency, outbox
from citydata.mechanisms.idempotency import IdempotencyError
from citydata.mechanisms.outbox import SubscriptionError
from citydata.web.client import client_ip
from citydata.web.params import RowId

JSON = "application/json"
Authorization = Annotated[str, Header(description="Bearer cdk_<key id>_<secret>")]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="每个写请求一个新值；重试时不变")
]


class System(Protocol):
    key_id: str


class Refusal(Protocol):
    status: int


Authenticate = Callable[[Session, str, str], Any]  # (session, Authorization, client ip) -> system


def json_response(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers=headers, media_type=JSON)


def problem(exc: Exception) -> Response:
    return json_response(getattr(exc, "status", 400), {"detail": str(exc)})


class Call:
    """One request of a docked system: the app's store and keys, and who it is."""

    def __init__(self, request: Request, authorization: str, authenticate: Authenticate):
        self.request = request
        self.store = request.app.state.store
        self.keys = request.app.state.keys
        self.authorization = authorization
        self._authenticate = authenticate

    def system(self, session: Session) -> Any:
        return self._authenticate(session, self.authorization, client_ip(self.request))


def read(
    request: Request,
    authorization: str,
    authenticate: Authenticate,
    errors: tuple[type[Exception], ...],
    work: Callable[[Session, Any, Call], Response],
) -> Response:
    call = Call(request, authorization, authenticate)
    try:
        with call.store.session() as session:
            return work(session, call.system(session), call)
    except errors as exc:
        return problem(exc)


def write(
    request: Request,
    authorization: str,
    authenticate: Authenticate,
    errors: tuple[type[Exception], ...],
    key: str | None,
    body: BaseModel | None,
    work: Callable[[Session, Any, Call], tuple[int, Any]],
    secret: bool = False,
) -> Response:
    """``work(session, system, call) -> (status, content)`` under the Idempotency-Key."""
    call = Call(request, authorization, authenticate)
    payload = orjson.dumps(
        body.model_dump(mode="json") if body else {}, option=orjson.OPT_SORT_KEYS
    )
    digest = idempotency.request_hash(request.method, request.url.path, payload)
    try:
        with call.store.session() as session:
            system = call.system(session)
            scope = f"docked:{system.key_id}"
            stored = idempotency.begin(session, scope, key, digest)
            if stored is not None:
                return Response(
                    call.keys.decrypt(stored.response) if secret else stored.response,
                    stored.status_code,
                    media_type=JSON,
                    headers={"Idempotent-Replayed": "true"},
                )
            status, content = work(session, system, call)
            raw = orjson.dumps(content)
            kept = call.keys.encrypt(raw.decode()) if secret else raw.decode()
            idempotency.finish(session, scope, key, status, kept)
        return Response(raw, status, media_type=JSON)
    except (*errors, IdempotencyError, SubscriptionError) as exc:
        return problem(exc)


class SubscriptionIn(BaseModel):
    url: Annotated[str, Field(min_length=1, max_length=500)]


def add_subscriptions(
    router: APIRouter,
    authenticate: Authenticate,
    errors: tuple[type[Exception], ...],
    owner: Callable[[str], str],
    what: str,
) -> None:
    """``POST /subscriptions`` and ``DELETE /subscriptions/{id}``: a docked system hears of its
    unit's ``what`` through webhooks kept under ``owner(unit_code)``."""

    @router.post("/subscriptions", status_code=201, summary=f"订阅本单位{what}的通知（webhook）")
    def subscribe(
        request: Request,
        body: SubscriptionIn,
        authorization: Authorization = "",
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        def work(session: Session, system: Any, call: Call) -> tuple[int, Any]:
            sub, secret = outbox.subscribe(
                session,
                owner(system.unit_code),
                body.url,
                system.name,
                call.keys,
                request.app.state.settings.webhook_allow_hosts,
            )
            return 201, {"id": sub.id, "url": sub.url, "signing_secret": secret}

        return write(
            request, authorization, authenticate, errors, idempotency_key, body, work, True
        )

    @router.delete("/subscriptions/{subscription_id}", summary="取消订阅")
    def unsubscribe(
        request: Request,
        subscription_id: RowId,
        authorization: Authorization = "",
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        def work(session: Session, system: Any, call: Call) -> tuple[int, Any]:
            sub = outbox.unsubscribe(session, owner(system.unit_code), subscription_id)
            return 200, {"id": sub.id, "ended": True}

        return write(request, authorization, authenticate, errors, idempotency_key, None, work)
