"""Vectorised Polars forms of the scalar checks, for millions of rows without a Python loop.

Each returns a Boolean expression that is False (never null) for missing or malformed values;
tests hold them equal to the scalar functions (python-stdnum) on generated data."""

from __future__ import annotations

from datetime import date

import polars as pl

from citydata.standards.divisions import code_year_keys, known_codes

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = dict(enumerate("10X98765432"))
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _digits_weighted_sum(head: pl.Expr, weights: tuple[int, ...]) -> pl.Expr:
    """Sum of digit*weight over a column of digit strings, using integer arithmetic."""
    n = head.cast(pl.Int64, strict=False)
    size = len(weights)
    return pl.sum_horizontal(((n // 10 ** (size - 1 - i)) % 10) * w for i, w in enumerate(weights))


def id_check_char(first17: pl.Expr) -> pl.Expr:
    """The MOD 11-2 check character for the first 17 digits of an ID number."""
    return (_digits_weighted_sum(first17, _ID_WEIGHTS) % 11).replace_strict(
        _ID_CHECK, return_dtype=pl.String
    )


def credit_check_char(first17: pl.Expr) -> pl.Expr:
    """The mod-31 check character for the first 17 characters of a credit code (null when one
    of them is outside the code's alphabet)."""
    values = {c: i for i, c in enumerate(USCC_ALPHABET)}
    total = pl.sum_horizontal(
        first17.str.slice(i, 1).replace_strict(values, default=None, return_dtype=pl.Int64) * w
        for i, w in enumerate(_USCC_WEIGHTS)
    )
    return ((31 - total % 31) % 31).replace_strict(
        dict(enumerate(USCC_ALPHABET)), return_dtype=pl.String
    )


def _clean(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).str.strip_chars().str.to_uppercase()


def id_birth_date(expr: pl.Expr) -> pl.Expr:
    """Birth date carried by an 18-digit number (null when not a real date)."""
    return _clean(expr).str.slice(6, 8).str.to_date("%Y%m%d", strict=False)


def id_number_valid(expr: pl.Expr, allow_legacy: bool = False) -> pl.Expr:
    """GB 11643 18-digit number, exactly as python-stdnum's ``cn.ric.is_valid``. With
    ``allow_legacy`` a 15-digit number counts when its 18-digit conversion is valid; the
    conversion shares the one weighted sum, so it costs almost nothing extra."""
    s = _clean(expr)
    legacy = s.str.contains(r"^\d{15}$") & pl.lit(allow_legacy)  # s first: keeps the column name
    first17 = (
        pl.when(legacy)
        .then(s.str.slice(0, 6) + "19" + s.str.slice(6, 9))
        .otherwise(s.str.slice(0, 17))
    )
    shaped = legacy | s.str.contains(r"^\d{17}[\dX]$")
    check_ok = legacy | (id_check_char(first17) == s.str.slice(17, 1))
    birth = first17.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    key = first17.str.slice(0, 6).cast(pl.Int64, strict=False) * 10000 + birth.dt.year().cast(
        pl.Int64
    )
    return (
        shaped & check_ok & birth.is_not_null() & key.is_in(code_year_keys().implode())
    ).fill_null(False)


def id_birth_not_future(expr: pl.Expr, today: date | None = None) -> pl.Expr:
    return (id_birth_date(expr) <= pl.lit(today or date.today())).fill_null(False)


def id_number_15_to_18(expr: pl.Expr) -> pl.Expr:
    """Legacy 15-digit numbers converted to 18 digits; other values pass through unchanged.
    Conversion does not validate: follow with ``id_number_valid``."""
    s = _clean(expr)
    first17 = s.str.slice(0, 6) + "19" + s.str.slice(6, 9)
    return pl.when(s.str.contains(r"^\d{15}$")).then(first17 + id_check_char(first17)).otherwise(s)


def credit_code_valid(expr: pl.Expr) -> pl.Expr:
    """GB 32100 unified social credit code, as python-stdnum's ``cn.uscc.is_valid``."""
    s = _clean(expr)
    shaped = s.str.contains(rf"^\d{{8}}[{USCC_ALPHABET}]{{10}}$")
    expected = credit_check_char(s.str.slice(0, 17))
    return (shaped & (expected == s.str.slice(17, 1))).fill_null(False)


def division_valid(expr: pl.Expr) -> pl.Expr:
    """A known GB/T 2260 code (current or retired)."""
    return expr.cast(pl.String).str.strip_chars().is_in(known_codes().implode()).fill_null(False)


def mobile_valid(expr: pl.Expr) -> pl.Expr:
    s = (
        expr.cast(pl.String)
        .str.strip_chars()
        .str.replace(r"^\+86", "")
        .str.replace(r"^86-", "")
        .str.replace_all(" ", "", literal=True)
    )
    return s.str.contains(r"^1[3-9]\d{9}$").fill_null(False)
