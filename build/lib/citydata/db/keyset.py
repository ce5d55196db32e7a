"""Keyset paging, shared by the sharing API and the open data API: the position after a page's
last row travels as an opaque URL-safe cursor, and the next page resumes strictly after it (deep
pages stay as fast as the first)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, literal, tuple_


def encode(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode(cursor: str) -> list[Any] | None:
    """The values ``encode`` was given, or None when ``cursor`` is not one of ours."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        return None
    return values if isinstance(values, list) else None


INT64 = 1 << 63


def decode_ints(cursor: str, size: int) -> list[int] | None:
    """A cursor of ``size`` whole numbers that fit a database's BIGINT, or None."""
    values = decode(cursor) if isinstance(cursor, str) else None
    if values is None or len(values) != size:
        return None
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and -INT64 <= v < INT64 for v in values
    ):
        return None
    return values


def after(order: Sequence[ColumnElement], values: Sequence[Any]) -> ColumnElement:
    """Rows that sort strictly after ``values`` in ``order``."""
    return tuple_(*order) > tuple_(*[literal(v) for v in values])
