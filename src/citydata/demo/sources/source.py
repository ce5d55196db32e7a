"""A Source: one class of one unit, with the rows it sends and the truth of each row."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

PERSONAL_CONDITION = (
    "依据《中华人民共和国个人信息保护法》第十三条，仅向履行法定职责的部门提供，须经提供方审核"
)


def field_spec(
    name: str,
    label: str,
    data_type: str = "C",
    length: int | None = None,
    required: bool = False,
    key: bool = False,
    sensitivity: str = "public",
    rules: tuple[str, ...] | list[str] = (),
    enum: tuple[str, ...] | list[str] = (),
    description: str = "",
) -> dict:
    """One field (信息项) as the catalog JSON declares it."""
    return {
        "name": name,
        "label": label,
        "data_type": data_type,
        "length": length,
        "required": required or key,
        "is_key": key,
        "sensitivity": sensitivity,
        "rules": list(rules),
        "enum": list(enum),
        "description": description,
    }


@dataclass
class Source:
    code: str
    unit: str
    name: str
    summary: str
    base_db: str
    fields: list[dict]
    frame: pl.DataFrame  # text columns named as the fields
    fmt: str = "csv"  # csv | xlsx | jsonl
    encoding: str = "utf-8"
    entity: str = "none"  # person | legal_person | house | none
    entity_ids: pl.Series | None = None
    share_type: str = "unconditional"
    share_condition: str = ""
    open_type: str = "closed"
    open_condition: str = ""
    update_cycle: str = "monthly"
    format_class: str = "database"
    disagree: list[str] = field(default_factory=list)  # valid disagreements to inject
    # False for the map's own outlines (districts, streets, cells): they come clean from the
    # GIS, and a rejected outline would leave a hole in the city's map
    planted: bool = True


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))
