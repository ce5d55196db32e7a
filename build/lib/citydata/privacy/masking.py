"""Masking of personal fields, as Polars expressions so a bulk export masks a million rows in
one pass and a single lookup uses the very same rules. Which mask a field gets is configured in
``masks.toml``; whether it is masked depends on its sensitivity and the approval — and on what
else the approval delivers: ``joint_masks`` strengthens a mask whose hidden parts the other
fields would reveal (see the file's second half)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    "id_division": lambda v: _py_keep_ends(v, 6, 0) if len(v) > 6 else _py_stars(len(v)),
    "division_head": lambda v: _py_keep_ends(v, 6, 0) if len(v) > 6 else _py_stars(len(v)),
    "phone": lambda v: _py_keep_ends(v, 3, 4),
    "name": _py_name,
    "address": _py_address,
    "date": lambda v: v[:4] + "-**-**",
    "partial": lambda v: v[:1] + "***",
    "hidden": lambda v: "******",
}


def mask_value(value: object, kind: str) -> str | None:
    return None if value is None else SCALAR_MASKS[kind](str(value))


def _head(col: pl.Expr, head: int) -> pl.Expr:
    n = col.str.len_chars()
    return (
        pl.when(n > head)
        .then(pl.concat_str(col.str.slice(0, head), _stars(n - head)))
        .otherwise(_stars(n))
    )


MASKS = {
    "id_number": lambda c: _keep_ends(c, 6, 4),
    "id_division": lambda c: _head(c, 6),
    "division_head": lambda c: _head(c, 6),
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
    values = data["values"]
    for kind, spec in data["kinds"].items():
        if kind not in MASKS or spec["value"] not in values:
            raise ValueError(f"masks.toml [kinds] {kind}: 未知的脱敏方式或值类型")
        unknown = set(spec["shows"]) - set(values[spec["value"]]["parts"])
        if unknown or spec.get("stronger", "hidden") not in data["kinds"]:
            raise ValueError(f"masks.toml [kinds] {kind}: 部分或更强的方式有误")
    if set(MASKS) - set(data["kinds"]):
        raise ValueError(f"masks.toml [kinds] 缺少：{'、'.join(set(MASKS) - set(data['kinds']))}")
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


# ---------------------------------------------------------------- judging masks jointly


@dataclass(frozen=True)
class Field:
    """What joint masking needs to know of a granted field."""

    name: str
    kind: str  # the mask it gets when masked (its configured one)
    rules: tuple[str, ...] = ()

    @property
    def value(self) -> str:
        return _config()["kinds"][self.kind]["value"]


def _selects(selectors: Sequence[str], field: Field) -> bool:
    for selector in selectors:
        how, _, name = selector.rpartition(":")
        if (
            (how == "" and field.name == name)
            or (how == "rule" and name in field.rules)
            or (how == "value" and field.value == name)
        ):
            return True
    return False


def _shown(field: Field, kind: str | None) -> set[str]:
    """The parts of ``field``'s value a reader sees: all when clear, else the mask's."""
    config = _config()
    if kind is None:
        return set(config["values"][field.value]["parts"]) | {"all"}
    return set(config["kinds"][kind]["shows"])


def _revealed(
    target: Field, fields: Sequence[Field], kinds: Mapping[str, str]
) -> tuple[set[str], dict[str, set[str]]]:
    """(parts of ``target`` a reader can know, which parts each other field tells)."""
    known = _shown(target, kinds.get(target.name))
    tellers: dict[str, set[str]] = {}
    for rule in _config().get("reveals", []):
        if not _selects(rule["to"], target):
            continue
        for other in fields:
            if other.name == target.name or not _selects(rule["from"], other):
                continue
            if rule["from_part"] in _shown(other, kinds.get(other.name)):
                known.add(rule["to_part"])
                tellers.setdefault(other.name, set()).add(rule["to_part"])
    return known, tellers


def _exposed(field: Field, known: set[str]) -> bool:
    if "all" in known:
        return True
    value = _config()["values"][field.value]
    return set(value["parts"]) - set(value.get("follows", [])) <= known


def _stronger(field: Field, kind: str | None) -> str | None:
    """The next mask: a clear field gets its own, a masked one the next stronger."""
    return field.kind if kind is None else _config()["kinds"][kind].get("stronger")


def joint_masks(fields: Sequence[Field], masked: Mapping[str, str]) -> dict[str, str]:
    """The masks of ``fields`` delivered together, starting from ``masked`` (field → kind).
    While some masked value can be rebuilt from what the others show, either its own mask is
    strengthened or — when another field tells it whole, or it is hidden already — the fields
    that tell it are masked. Masks only ever get stronger, so this ends."""
    kinds = dict(masked)
    by_name = {f.name: f for f in fields}
    changed = True
    while changed:
        changed = False
        for name in list(kinds):
            field = by_name.get(name)
            if field is None:
                continue
            known, tellers = _revealed(field, fields, kinds)
            if not _exposed(field, known):
                continue
            whole = [t for t, parts in tellers.items() if "all" in parts]
            own = _stronger(field, kinds[name])
            if whole or own is None:
                for teller in whole or list(tellers):
                    nxt = _stronger(by_name[teller], kinds.get(teller))
                    if nxt is not None:
                        kinds[teller] = nxt
                        changed = True
            else:
                kinds[name] = own
                changed = True
    return kinds


def class_fields(class_code: str, fields: Sequence) -> tuple[tuple[Field, ...], dict[str, str]]:
    """A class's fields (objects with name, rules, sensitivity) as joint masking sees them, and
    the masks of its personal ones."""
    every = tuple(
        Field(f.name, mask_kind(class_code, f.name, f.rules), tuple(f.rules)) for f in fields
    )
    personal = {f.name for f in fields if f.sensitivity in PERSONAL}
    return every, {f.name: f.kind for f in every if f.name in personal}


def grant_masks(
    fields: Sequence[Field],
    masks: Mapping[str, str],
    granted: Iterable[str],
    unmasked: Iterable[str],
) -> dict[str, str]:
    """Field → mask for everything a grant delivers masked, judged over the whole grant (calls
    can be joined row by row, so one call's fields are not enough): each personal field not
    granted in clear, strengthened where the grant's other fields would reveal what it hides."""
    granted, unmasked = set(granted), set(unmasked)
    delivered = [f for f in fields if f.name in granted]
    return joint_masks(
        delivered, {f: k for f, k in masks.items() if f in granted and f not in unmasked}
    )
