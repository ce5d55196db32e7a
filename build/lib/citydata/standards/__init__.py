"""National standards for Chinese government data: ID numbers (GB 11643), unified social
credit codes (GB 32100), administrative divisions (GB/T 2260) and mobile numbers.

Scalar functions live here; their vectorised Polars twins are in ``citydata.standards.expressions``.
"""

from citydata.standards.divisions import division_name, is_valid_division
from citydata.standards.ids import (
    credit_check_digit,
    id_birth_date,
    id_check_digit,
    id_number_15_to_18,
    id_number_problem,
    id_sex,
    is_valid_credit_code,
    is_valid_id_number,
    is_valid_mobile,
    normalise_id_number,
)

__all__ = [
    "credit_check_digit",
    "division_name",
    "id_birth_date",
    "id_check_digit",
    "id_number_15_to_18",
    "id_number_problem",
    "id_sex",
    "is_valid_credit_code",
    "is_valid_division",
    "is_valid_id_number",
    "is_valid_mobile",
    "normalise_id_number",
]
