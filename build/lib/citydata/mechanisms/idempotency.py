"""``Idempotency-Key`` for writes that a system may retry (a timeout, a lost answer): the first
request with a key does the work and its answer is kept with the key, in the same transaction;
a retry with the same key and the same request gets that answer again, and changes nothing; the
same key with a different request is the caller's mistake (422), as the IETF draft has it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citydata.mechanisms.models import IdempotencyKey

KEY_MAX = 255


class IdempotencyError(ValueError):
    """``status``: 400 (no or bad key), 409 (the first request is still running), 422 (the key
    was used for another request)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Stored:
    status_code: int
    response: str


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def begin(session: Session, scope: str, key: str | None, digest: str) -> Stored | None:
    """The stored answer of a repeated request, or None after claiming ``key`` for this one
    (the claim commits or rolls back with the caller's transaction)."""
    if not key or len(key) > KEY_MAX or not key.isprintable():
        raise IdempotencyError(f"写操作须带 Idempotency-Key（1–{KEY_MAX} 个可见字符）", 400)
    found = session.get(IdempotencyKey, (scope, key))
    if found is None:
        try:
            with session.begin_nested():
                session.add(IdempotencyKey(scope=scope, key=key, request_hash=digest))
        except IntegrityError:  # another request claimed it a moment ago
            raise IdempotencyError("同一 Idempotency-Key 的请求正在处理，请稍后重试", 409) from None
        return None
    if found.request_hash != digest:
        raise IdempotencyError("Idempotency-Key 已用于另一个请求：每个新请求须用新的键", 422)
    if found.status_code is None:
        raise IdempotencyError("同一 Idempotency-Key 的请求正在处理，请稍后重试", 409)
    return Stored(found.status_code, found.response)


def finish(session: Session, scope: str, key: str, status_code: int, response: str) -> None:
    found = session.get(IdempotencyKey, (scope, key))
    found.status_code, found.response = status_code, response
