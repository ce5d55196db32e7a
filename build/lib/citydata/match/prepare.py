"""Normalise compared columns by kind, vectorised in Polars, so that formatting never looks like
a difference: full-width digits, 15-digit ID numbers, province/city prefixes of addresses, phone
punctuation. Person names also get a pinyin column, so homophones (张晓/张小) compare equal."""

from __future__ import annotations

import polars as pl

from citydata.ingest.validate import as_date
from citydata.standards.expressions import id_number_15_to_18

_FULL = "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ－　"
_HALF = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz- "


def halfwidth(e: pl.Expr) -> pl.Expr:
    return e.str.replace_many(list(_FULL), list(_HALF))


def pinyin_column(name: str) -> str:
    return f"{name}__pinyin"


def _pinyin(names: pl.Series) -> pl.Series:
    """Toneless pinyin of each distinct name (pypinyin is per string; names repeat a lot, so this
    runs once per distinct name, not per row)."""
    from pypinyin import lazy_pinyin

    distinct = names.drop_nulls().unique()
    table = pl.DataFrame(
        {"name": distinct, "pinyin": ["".join(lazy_pinyin(n)) for n in distinct.to_list()]}
    )
    return (
        names.to_frame("name")
        .join(table, on="name", how="left", maintain_order="left")["pinyin"]
        .alias(pinyin_column(names.name))
    )


def normalise(e: pl.Expr, kind: str) -> pl.Expr:
    s = halfwidth(e.cast(pl.String)).str.strip_chars()
    if kind == "identifier":
        s = id_number_15_to_18(s.str.replace_all(r"[\s-]", "").str.to_uppercase())
    elif kind == "person_name":
        s = s.str.replace_all(r"\s", "")
    elif kind == "date":
        s = as_date(s).dt.to_string("%Y-%m-%d")
    elif kind == "address":
        s = s.str.replace_all(r"\s", "").str.replace(r"^[^省]{2,3}省", "")
        city_first = s.str.contains(r"^[^市]{2,3}市[^市区县]{1,4}[区县市]")
        s = pl.when(city_first).then(s.str.replace(r"^[^市]{2,3}市", "")).otherwise(s)
    elif kind in {"phone", "postcode"}:
        s = s.str.replace_all(r"\D", "")
        if kind == "phone":
            s = s.str.slice(-11)
    return s.replace("", None)


def prepare(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """The compared columns normalised in place, plus a pinyin column per person name."""
    out = frame.with_columns(normalise(pl.col(c), kind).alias(c) for c, kind in columns.items())
    names = [c for c, kind in columns.items() if kind == "person_name"]
    return out.with_columns(_pinyin(out[c]) for c in names) if names else out
