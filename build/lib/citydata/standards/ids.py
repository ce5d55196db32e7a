"""Scalar checks of Chinese identifiers. python-stdnum is the authority; we add the legacy
15-digit conversion and the readers of birth date and sex that stdnum does not offer."""

from __future__ import annotations

import re
from datetime import date

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from citydata.standards.divisions import issue_problem

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def id_number_problem(number: object) -> str | None:
    """Why ``number`` is no valid GB 11643 ID number, in words a clerk can act on (None: it is
    valid). python-stdnum is the authority for length, check digit and date; which division
    codes a number may carry is our rule (divisions.issue_problem: stdnum demands the code was
    in use in the birth year, which refuses everyone born before their county's code)."""
    if not isinstance(number, str):
        return "不是文本"
    number = ric.compact(number)
    if len(number) != 18:
        return f"应为 18 位（现为 {len(number)} 位）"
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return "前 17 位应为数字，最后一位为数字或 X"
    expected = ric.calc_check_digit(number)
    if number[17] != expected:
        return f"校验码应为 {expected}"
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return "出生日期不存在（第 7–14 位）"  # no digits echoed: the value may be shown masked
    return issue_problem(number[:6], born.year)


def is_valid_id_number(number: str) -> bool:
    """GB 11643: 18 characters, MOD 11-2 check digit, real birth date, and a division code that
    could have been issued to someone born then (see ``id_number_problem``)."""
    return id_number_problem(number) is None


def id_check_digit(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def id_number_15_to_18(number: str) -> str:
    """Convert a legacy 15-digit number (issued before 1999, born in the 1900s) to 18 digits.

    Raises ValueError when the result is not a valid number (bad date or division)."""
    number = number.strip()
    if len(number) != 15 or not number.isdigit():
        raise ValueError(f"not a 15-digit ID number: {number!r}")
    first17 = number[:6] + "19" + number[6:]
    converted = first17 + id_check_digit(first17)
    if not is_valid_id_number(converted):
        raise ValueError(f"legacy ID number has an impossible date or division: {number!r}")
    return converted


def normalise_id_number(number: str | None) -> str | None:
    """The canonical 18-digit form of a valid 18- or 15-digit number, else None."""
    if not number:
        return None
    number = number.strip().upper()
    if len(number) == 15:
        try:
            return id_number_15_to_18(number)
        except ValueError:
            return None
    return number if is_valid_id_number(number) else None


def id_birth_date(number: str) -> date:
    return ric.get_birth_date(normalise_id_number(number) or number)


def id_sex(number: str) -> str:
    """'M' or 'F' from the sequence digit (odd men, even women)."""
    number = normalise_id_number(number) or number
    return "M" if int(number[16]) % 2 else "F"


def is_valid_credit_code(code: str) -> bool:
    """GB 32100 unified social credit code: 18 characters of its alphabet, mod-31 check."""
    return isinstance(code, str) and uscc.is_valid(code)


def credit_check_digit(first17: str) -> str:
    return uscc.calc_check_digit(first17 + "0")


def is_valid_mobile(number: str) -> bool:
    """A mainland mobile number: 11 digits starting 13-19 (an optional +86 prefix allowed)."""
    if not isinstance(number, str):
        return False
    number = number.strip().removeprefix("+86").removeprefix("86-").replace(" ", "")
    return bool(_MOBILE.match(number))
