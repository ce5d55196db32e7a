"""Every declared rule of a class as Polars expressions: one pass per check over the whole
batch, no Python loop per row. Returns the accepted rows and one reject row per failed check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from citydata.catalog.models import Field
from citydata.standards import expressions as std

CITY_BBOX = (111.89, 27.85, 114.26, 28.67)  # Changsha: lon0, lat0, lon1, lat1
NUMERIC = {"N": pl.Float64, "Y": pl.Float64, "F": pl.Float64, "B": pl.Float64, "I": pl.Int64}
TRUE_FALSE = ["是", "否", "true", "false", "1", "0", "Y", "N", "TRUE", "FALSE"]
ROW = "_row"


def _first_that_parses(e: pl.Expr, parsers: list, dtype: pl.DataType) -> pl.Expr:
    """Each value parsed by the first of ``parsers`` that reads it (null if none does). Later
    parsers see only what the earlier ones left, so the usual layout costs a single pass."""

    def run(values: pl.Series) -> pl.Series:
        out = parsers[0](values)
        for parse in parsers[1:]:
            left = (out.is_null() & values.is_not_null()).arg_true()
            if left.is_empty():
                break
            out = out.scatter(left, parse(values.gather(left)))
        return out

    return e.map_batches(run, return_dtype=dtype, is_elementwise=True)


def _date_format(fmt: str, slashes: bool = False):
    def parse(values: pl.Series) -> pl.Series:
        if slashes:
            values = values.str.replace_all("/", "-", literal=True)
        # No cache: a column of birth dates has too many distinct values to gain from one.
        return values.str.to_date(fmt, strict=False, cache=False)

    return parse


def _datetime_format(fmt: str):
    return lambda values: values.str.to_datetime(fmt, strict=False, cache=False)


def as_date(e: pl.Expr) -> pl.Expr:
    """2024-05-01, 2024/05/01 or 20240501 (null otherwise)."""
    parsers = [_date_format("%Y-%m-%d"), _date_format("%Y-%m-%d", True), _date_format("%Y%m%d")]
    return _first_that_parses(e, parsers, pl.Date)


def as_datetime(e: pl.Expr) -> pl.Expr:
    formats = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S"]
    return _first_that_parses(e, [_datetime_format(f) for f in formats], pl.Datetime("us"))


def id_number_ok(e: pl.Expr) -> pl.Expr:
    """An 18-digit number, or a legacy 15-digit one that converts to a valid 18-digit number."""
    return std.id_number_valid(e, allow_legacy=True)


def checks(
    f: Field, today: date, bbox: tuple[float, float, float, float] = CITY_BBOX
) -> list[tuple[str, pl.Expr]]:
    """(rule, expression that is True where a row FAILS it) for one field."""
    v = pl.col(f.name)
    present = v.is_not_null()
    out: list[tuple[str, pl.Expr]] = []
    if f.required:
        out.append(("required", v.is_null()))
    if f.data_type in NUMERIC:
        out.append(
            (
                "type",
                present
                & v.str.replace_all(",", "").cast(NUMERIC[f.data_type], strict=False).is_null(),
            )
        )
    elif f.data_type == "D":
        out.append(("type", present & as_date(v).is_null()))
    elif f.data_type == "T":
        out.append(("type", present & as_datetime(v).is_null()))
    elif f.data_type == "L":
        out.append(("type", present & ~v.is_in(TRUE_FALSE)))
    if f.length and f.data_type in {"C", "M"}:
        out.append(("length", present & (v.str.len_chars() > f.length)))
    if f.enum:
        out.append(("enum", present & ~v.is_in(list(f.enum))))
    lon0, lat0, lon1, lat1 = bbox
    for rule in f.rules:
        if rule == "id_number":
            out.append((rule, present & ~id_number_ok(v)))
        elif rule == "credit_code":
            out.append((rule, present & ~std.credit_code_valid(v)))
        elif rule == "division":
            out.append((rule, present & ~std.division_valid(v)))
        elif rule == "mobile":
            out.append((rule, present & ~std.mobile_valid(v)))
        elif rule == "past_date":
            when = as_date(v) if f.data_type == "D" else as_datetime(v).dt.date()
            out.append((rule, present & (when > pl.lit(today)).fill_null(False)))
        elif rule in {"longitude", "latitude"}:
            low, high = (lon0, lon1) if rule == "longitude" else (lat0, lat1)
            number = v.cast(pl.Float64, strict=False)
            out.append((rule, present & ~number.is_between(low, high).fill_null(False)))
    return out


class BatchKeys:
    """The business keys seen so far in a batch, so that a key repeated in a later chunk of the
    same file is caught as surely as one repeated inside a chunk.

    Keys are compared by their 64-bit hashes first: looking a chunk's hashes up among a million
    earlier ones costs a tenth of doing the same with the texts. Only rows whose hash was met
    before (a repeated key, or very rarely two keys sharing a hash) are then compared as text,
    so the answer is exact."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.seen = pl.DataFrame(schema={"hash": pl.UInt64, "key": pl.String})
        self.keyed_rows = 0

    def repeated(self, frame: pl.DataFrame) -> pl.Series:
        """True for each row whose complete key appeared earlier in the batch; remembers them."""
        key = frame.select(
            pl.concat_str([pl.col(k) for k in self.keys], separator="\x1f").alias("key")
        ).to_series()
        present = key.is_not_null()
        hashes = self.hash(key)
        maybe = present & (hashes.is_in(self.seen["hash"].implode()) | ~hashes.is_first_distinct())
        if maybe.any():
            met = self.seen.filter(pl.col("hash").is_in(hashes.filter(maybe).implode()))["key"]
            repeated = present & (key.is_in(met.implode()) | ~key.is_first_distinct())
        else:
            repeated = maybe
        new = pl.DataFrame({"hash": hashes, "key": key}).filter(present & ~repeated)
        self.seen = pl.concat([self.seen, new], rechunk=False)
        self.keyed_rows += int(present.sum())
        return repeated

    @staticmethod
    def hash(key: pl.Series) -> pl.Series:
        return key.hash(seed=0)

    def distinct(self) -> int:
        return self.seen.height


@dataclass
class Checked:
    accepted: pl.DataFrame  # _row + field columns
    rejects: pl.DataFrame  # row, field, rule, value


def validate(
    frame: pl.DataFrame,
    fields: list[Field],
    batch_keys: BatchKeys | None = None,
    today: date | None = None,
) -> Checked:
    """Check every row against every rule; a row with any failure is rejected, with each failure.
    With ``batch_keys`` a business key already met in the batch (or earlier in this frame) fails
    as ``duplicate_key``."""
    today = today or date.today()
    failures = [
        (f.name, rule, expr.fill_null(False).alias(f"{f.name}\x1f{rule}"))
        for f in fields
        if f.name in frame.columns
        for rule, expr in checks(f, today)
    ]
    if batch_keys and batch_keys.keys:
        first = batch_keys.keys[0]
        dup = pl.lit(batch_keys.repeated(frame))
        failures.append((first, "duplicate_key", dup.alias(f"{first}\x1fduplicate_key")))
    names = [expr.meta.output_name() for *_, expr in failures]
    flagged = frame.with_columns(expr for *_, expr in failures)
    bad = flagged.select(pl.any_horizontal(names) if names else pl.lit(False)).to_series()
    schema = {"row": pl.Int64, "field": pl.String, "rule": pl.String, "value": pl.String}
    if not bad.any():  # the usual chunk: nothing to copy out
        return Checked(frame, pl.DataFrame(schema=schema))
    accepted = frame.filter(~bad)
    flagged = flagged.filter(bad)
    parts = [
        flagged.filter(pl.col(name)).select(
            pl.col(ROW).alias("row"),
            pl.lit(field).alias("field"),
            pl.lit(rule).alias("rule"),
            pl.col(field).alias("value"),
        )
        for (field, rule, _), name in zip(failures, names, strict=True)
    ]
    parts = [p for p in parts if p.height]
    rejects = pl.concat(parts).sort("row", "field") if parts else pl.DataFrame(schema=schema)
    return Checked(accepted, rejects.cast(schema))
