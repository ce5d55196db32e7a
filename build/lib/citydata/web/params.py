"""Parameter types with their true bounds, so the OpenAPI description tells clients what fits
and a number that does not is the caller's 422, never our 500."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

ID_MAX = (1 << 31) - 1  # ids are INTEGER columns (PostgreSQL's int4)
OFFSET_MAX = (1 << 31) - 1

RowId = Annotated[int, Path(ge=1, le=ID_MAX, description="编号")]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX)]
