"""Masking of personal fields, as Polars expressions so a bulk export masks a million rows in
one pass and a single lookup uses the very same rules. Which mask a field gets is configured in
``masks.toml``; whether it is masked at all depends only on its sensitivity and the approval."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

import polars as pl

MASKS_FILE = Path(__file__).with_name("masks.toml")
PERSONAL = {"personal", "sensitive"}
_STARS = "*" * 64
# Province and city prefixes, then the district, county or county-level city.
_DISTRICT = r"^((?:[^省]{2,7}省)?(?:[^市]{2,7}市)?[^区县市]{1,7}(?:区|县|市))"


def _stars(n: pl.Expr) -> pl.Expr:
    return pl.lit(_STARS).str.slice(0, n.clip(0, 64))


def _keep_ends(col: pl.Expr, head: int, tail: int) -> pl.Expr:
    n = col.str.len_chars()
    return (
        pl.when(n > head + tail)
        .then(pl.concat_str(col.str.slice(0, head), _stars(n - head - tail), col.str.slice(-tail)))
        .otherwise(_stars(n))
    )


def _name(col: pl.Expr) -> pl.Expr:
    n = col.str.len_chars()
    return (
        pl.when(n <= 1)
        .then(pl.lit("*"))
        .when(n == 2)
        .then(pl.concat_str(col.str.slice(0, 1), pl.lit("*")))
        .otherwise(pl.concat_str(col.str.slice(0, 1), _stars(n - 2), col.str.slice(-1)))
    )


# The same masks on one value: a lookup of a few rows is answered without building a frame.
# tests/test_share.py holds the two forms equal on random text.
def _py_stars(n: int) -> str:
    return "*" * max(0, min(n, 64))


def _py_keep_ends(value: str, head: int, tail: int) -> str:
    n = len(value)
    if n > head + tail:
        return value[:head] + _py_stars(n - head - tail) + value[n - tail :]
    return _py_stars(n)


def _py_name(value: str) -> str:
    n = len(value)
    if n <= 1:
        return "*"
    if n == 2:
        return value[0] + "*"
    return value[0] + _py_stars(n - 2) + value[-1]


def _py_address(value: str) -> str:
    found = _DISTRICT_RE.match(value)
    return found.group(1) if found else "***"


_DISTRICT_RE = re.compile(_DISTRICT)
SCALAR_MASKS = {
    "id_number": lambda v: _py_keep_ends(v, 6, 4),
    "phone": lambda v: _py_keep_ends(v, 3, 4),
    "name": _py_name,
    "address": _py_address,
    "date": lambda v: v[:4] + "-**-**",
    "partial": lambda v: v[:1] + "***",
    "hidden": lambda v: "******",
}


def mask_value(value: object, kind: str) -> str | None:
    return None if value is None else SCALAR_MASKS[kind](str(value))


MASKS = {
    "id_number": lambda c: _keep_ends(c, 6, 4),
    "phone": lambda c: _keep_ends(c, 3, 4),
    "name": _name,
    "address": lambda c: pl.coalesce(c.str.extract(_DISTRICT, 1), pl.lit("***")),
    "date": lambda c: pl.concat_str(c.str.slice(0, 4), pl.lit("-**-**")),
    "partial": lambda c: pl.concat_str(c.str.slice(0, 1), pl.lit("***")),
    "hidden": lambda c: pl.lit("******"),
}


@cache
def _config() -> dict:
    data = tomllib.loads(MASKS_FILE.read_text(encoding="utf-8"))
    for section in ("rules", "fields"):
        for where, kind in data.get(section, {}).items():
            if kind not in MASKS:
                raise ValueError(f"masks.toml [{section}] {where}: 未知的脱敏方式「{kind}」")
    if data.get("default") not in MASKS:
        raise ValueError(f"masks.toml default: 未知的脱敏方式「{data.get('default')}」")
    return data


def mask_kind(class_code: str, field: str, rules: list[str] | tuple[str, ...] = ()) -> str:
    config = _config()
    fields = config.get("fields", {})
    for where in (f"{class_code}.{field}", field):
        if where in fields:
            return fields[where]
    for rule in rules:
        if rule in config.get("rules", {}):
            return config["rules"][rule]
    return config["default"]


def mask_expr(column: str, kind: str) -> pl.Expr:
    """The masked column; nulls stay null (an absent value reveals nothing to hide)."""
    col = pl.col(column).cast(pl.String)
    return pl.when(col.is_null()).then(None).otherwise(MASKS[kind](col)).alias(column)


def mask_frame(frame: pl.DataFrame, masks: dict[str, str]) -> pl.DataFrame:
    """Apply ``{column: mask kind}`` to the columns that are present."""
    present = [mask_expr(c, kind) for c, kind in masks.items() if c in frame.columns]
    return frame.with_columns(present) if present else frame
