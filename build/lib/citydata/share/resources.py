"""What a class's data is to the sharing API: where its rows are (bases.tables) and how its
fields are masked for a grant — jointly, over everything the grant delivers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from citydata.bases.tables import ClassTable, UnknownClass, locate
from citydata.catalog.service import get_class
from citydata.privacy.masking import (
    Field,
    class_fields,
    grant_masks,
)
from citydata.share.callers import Caller
from citydata.share.service import ShareError

# ---------------------------------------------------------------- what the class's data is


@dataclass(frozen=True)
class Resource:
    """A class as the gateway serves it: where its rows are (bases.tables), and the masks of
    its fields."""

    where: ClassTable
    masks: dict[str, str]  # personal field -> mask kind
    fields: tuple[Field, ...] = ()  # every field, with the mask it would get (joint masking)

    @property
    def class_code(self) -> str:
        return self.where.class_code

    @property
    def kind(self) -> str:
        return self.where.kind

    @property
    def table(self) -> str:
        return self.where.table

    @property
    def key_column(self) -> str | None:
        return self.where.key_column

    @property
    def key_field(self) -> str | None:
        return self.where.key_field

    @property
    def order(self) -> tuple[str, ...]:
        return self.where.order

    @property
    def base(self) -> str | None:
        return self.where.base


_resources: dict[tuple[str, int], Resource] = {}


def resource(session: Session, class_code: str, version: int | None = None) -> Resource:
    cached = _resources.get((class_code, version)) if version is not None else None
    if cached is not None:
        return cached
    try:
        where = locate(session, class_code, version)
    except UnknownClass as exc:
        raise ShareError(str(exc), "unknown_class", 404) from exc
    rc = get_class(session, class_code)
    every, masks = class_fields(rc.code, rc.fields)
    found = Resource(where, masks, every)
    _resources[(class_code, rc.version)] = found
    return found


_grant_masks: dict[tuple, dict[str, str]] = {}


def masks_for(caller: Caller, res: Resource) -> dict[str, str]:
    """What the caller's grant delivers masked, and how (computed once per grant)."""
    signature = (res.class_code, res.table, caller.granted, caller.unmasked)
    found = _grant_masks.get(signature)
    if found is None:
        if len(_grant_masks) >= 4096:
            _grant_masks.clear()
        found = grant_masks(res.fields, res.masks, caller.granted, caller.unmasked)
        _grant_masks[signature] = found
    return found


def wanted_fields(caller: Caller, fields: list[str] | None) -> list[str]:
    """Data minimisation: each call names the fields it needs, all of them granted."""
    if not fields:
        raise ShareError("必须用 fields 列出本次需要的信息项", "fields_required")
    refused = [f for f in fields if f not in caller.granted]
    if refused:
        raise ShareError(f"信息项未获授权：{'、'.join(refused)}", "field_not_granted", 403)
    return list(dict.fromkeys(fields))
