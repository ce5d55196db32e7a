from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citydata import standards as s
from citydata.standards import expressions as e

# Published examples: GB 11643-1999 appendix and python-stdnum's documentation.
GB11643_EXAMPLES = ["11010519491231002X", "360426199101010071"]
CHANGSHA = [
    "430102",
    "430103",
    "430104",
    "430105",
    "430111",
    "430112",
    "430121",
    "430181",
    "430182",
]


def make_id(division: str, born: date, seq: int) -> str:
    first17 = f"{division}{born:%Y%m%d}{seq:03d}"
    return first17 + s.id_check_digit(first17)


def vectorised(values, expr):
    return (
        pl.DataFrame({"v": values}, schema={"v": pl.String})
        .select(expr(pl.col("v")))["v"]
        .to_list()
    )


@pytest.mark.parametrize("number", GB11643_EXAMPLES)
def test_published_id_examples_are_valid(number):
    assert s.is_valid_id_number(number)
    assert vectorised([number], e.id_number_valid) == [True]


def test_id_number_parts_are_readable():
    assert s.id_birth_date("11010519491231002X") == date(1949, 12, 31)
    assert s.id_sex("11010519491231002X") == "F"
    assert s.id_sex("440524188001010014") == "M"


def test_second_gb11643_example_is_valid_though_born_before_its_county_code():
    # The standard's own example 440524188001010014: 潮阳县's 440524 was in use 1983–1993, so
    # a number first issued in 1984–93 carries it, whenever its holder was born. python-stdnum
    # refuses it (no 440524 in 1880); we do not — its birth-year rule is not how numbers were
    # issued.
    assert s.id_check_digit("44052418800101001") == "4"
    assert s.is_valid_id_number("440524188001010014")
    assert vectorised(["440524188001010014"], e.id_number_valid) == [True]


def test_legacy_15_digit_conversion_follows_the_standard():
    assert s.id_number_15_to_18("110105491231002") == "11010519491231002X"
    assert vectorised(["110105491231002", "11010519491231002X"], e.id_number_15_to_18) == [
        "11010519491231002X",
        "11010519491231002X",
    ]
    with pytest.raises(ValueError):
        s.id_number_15_to_18("110105491331002")  # month 13
    assert s.normalise_id_number("110105491231002") == "11010519491231002X"
    assert s.normalise_id_number("110105491331002") is None


# (code, birth date, valid?): a code is possible when it was in use at some time between the
# later of the birth year and 1984 (the first numbers), and today.
ISSUE_CASES = [
    ("430102", date(1945, 1, 1), True),  # 芙蓉区's code dates from 1983: issued 1985, valid
    ("430102", date(1940, 6, 1), True),
    ("430124", date(1980, 5, 5), True),  # 宁乡县, retired 2017 (now 宁乡市 430182)
    ("430124", date(2017, 12, 31), True),  # its last year
    ("430124", date(2018, 1, 1), False),  # born after it was retired
    ("430182", date(1950, 1, 1), True),  # 宁乡市 from 2017: a number first issued since
    ("430122", date(2011, 12, 31), True),  # 望城县's last year
    ("430122", date(2015, 5, 1), False),  # cannot be born under it after 2011
    ("430122", date(1990, 5, 1), True),
    ("430112", date(1990, 5, 1), True),  # 望城区 from 2011: a number first issued since
    ("430120", date(1960, 1, 1), False),  # 长沙市市区, retired 1983: on no number at all
    ("430120", date(1983, 1, 1), False),
    ("430123", date(1993, 6, 1), True),  # 浏阳县's last year
    ("430123", date(1994, 1, 1), False),
    ("430199", date(1990, 1, 1), False),  # no such code
]


@pytest.mark.parametrize(("code", "born", "valid"), ISSUE_CASES)
def test_a_number_carries_the_code_of_its_first_issue(code, born, valid):
    number = make_id(code, born, 123)
    assert s.is_valid_id_number(number) is valid
    assert vectorised([number], e.id_number_valid) == [valid]
    if not valid:
        assert code in s.id_number_problem(number)
    if born.year < 2000:  # the same number as it was issued before 1999, 15 digits
        legacy = number[:6] + number[8:17]
        assert (s.normalise_id_number(legacy) is not None) is valid
        assert vectorised([legacy], lambda c: e.id_number_valid(c, allow_legacy=True)) == [valid]


def test_a_refused_number_says_which_rule_and_why():
    assert s.id_number_problem(make_id("430120", date(1960, 1, 1), 1)) == (
        "430120：1983 年后停用，早于首次发证"
    )
    assert s.id_number_problem(make_id("430122", date(2015, 5, 1), 1)) == (
        "430122：2011 年后停用，早于出生年份 2015"
    )
    assert s.id_number_problem("43010219450101123") == "应为 18 位（现为 17 位）"
    assert s.id_number_problem("430102194501011230") == "校验码应为 1"
    assert s.id_number_problem("430102194502301230") == "出生日期不存在（第 7–14 位）"


def test_retired_division_codes_keep_their_names():
    assert s.division_name("430124", 2000) == "宁乡县"
    assert s.division_name("430182") == "宁乡市"
    assert s.division_name("430122") == "望城县"
    assert s.is_valid_division("430122") and not s.is_valid_division("430199")


def test_hunan_is_covered_to_county_level():
    prefectures = [
        "4301",
        "4302",
        "4303",
        "4304",
        "4305",
        "4306",
        "4307",
        "4308",
        "4309",
        "4310",
        "4311",
        "4312",
        "4313",
        "4331",
    ]
    for code in prefectures:
        assert s.division_name(code + "00"), code
    assert s.division_name("430000") == "湖南省"
    assert s.division_name("433101") == "吉首市"


@pytest.mark.parametrize("number", GB11643_EXAMPLES)
def test_every_single_digit_change_and_adjacent_swap_is_caught(number):
    corrupted = []
    for i in range(17):
        for d in "0123456789":
            if d != number[i]:
                corrupted.append(number[:i] + d + number[i + 1 :])
        if i < 16 and number[i] != number[i + 1]:
            corrupted.append(number[:i] + number[i + 1] + number[i] + number[i + 2 :])
    assert not any(s.is_valid_id_number(c) for c in corrupted)
    assert not any(vectorised(corrupted, e.id_number_valid))


id_like = st.one_of(
    st.text(alphabet="0123456789X", min_size=17, max_size=19),
    st.builds(
        make_id,
        st.sampled_from(CHANGSHA + ["430120", "430122", "430123", "430124", "110105", "999999"]),
        st.dates(date(1890, 1, 1), date(2030, 12, 31)),
        st.integers(0, 999),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(id_like, min_size=1, max_size=40))
def test_vectorised_id_check_equals_the_scalar_check(values):
    assert vectorised(values, e.id_number_valid) == [s.is_valid_id_number(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(id_like)
def test_python_stdnum_stays_the_oracle_for_length_check_digit_and_date(value):
    """We differ from stdnum only in which division codes a birth year may carry: where the
    two disagree, both find length, check digit and date right."""
    from stdnum.cn import ric

    ours, theirs = s.is_valid_id_number(value), ric.is_valid(value)
    if ours == theirs:
        return
    number = ric.compact(value)
    assert len(number) == 18 and number[-1] == ric.calc_check_digit(number)
    assert ric.get_birth_date(number)
    if theirs:  # we refuse a code retired before the holder could have been issued it
        assert number[:6] in s.id_number_problem(number)
    else:  # stdnum refuses a code that was not yet in use in the birth year
        with pytest.raises(Exception):  # noqa: B017
            ric.get_birth_place(number)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=15, max_size=15), min_size=1, max_size=30))
def test_vectorised_15_to_18_equals_scalar(values):
    converted = vectorised(values, e.id_number_15_to_18)
    for raw, out in zip(values, converted, strict=True):
        try:
            assert out == s.id_number_15_to_18(raw)
        except ValueError:
            assert not s.is_valid_id_number(out)


CREDIT_EXAMPLES = ["91110000600037341L", "91430100MA4L16JD2K"]
uscc_alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def make_credit(body: str) -> str:
    return body + s.credit_check_digit(body)


def test_published_credit_code_example():
    assert s.is_valid_credit_code("91110000600037341L")
    assert not s.is_valid_credit_code("91110000600037341M")
    assert not s.is_valid_credit_code("A1110000600037341L")
    assert vectorised(["91110000600037341L", "91110000600037341M"], e.credit_code_valid) == [
        True,
        False,
    ]


credit_like = st.one_of(
    st.text(alphabet=uscc_alphabet + "IOZSV", min_size=17, max_size=19),
    st.builds(
        lambda a, b: make_credit(a + b),
        st.text(alphabet="0123456789", min_size=8, max_size=8),
        st.text(alphabet=uscc_alphabet, min_size=9, max_size=9),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(credit_like, min_size=1, max_size=40))
def test_vectorised_credit_check_equals_python_stdnum(values):
    assert vectorised(values, e.credit_code_valid) == [s.is_valid_credit_code(v) for v in values]


def test_mobile_numbers():
    good = ["13812345678", "+8619912345678", "15000000000"]
    bad = ["12812345678", "1381234567", "0731-88661000", "", None]
    assert all(s.is_valid_mobile(x) for x in good)
    assert not any(s.is_valid_mobile(x) for x in bad)
    assert vectorised(good + bad, e.mobile_valid) == [True] * 3 + [False] * 5


def test_division_expression_knows_retired_codes():
    assert vectorised(["430122", "430182", "430199", None], e.division_valid) == [
        True,
        True,
        False,
        False,
    ]


def test_birth_date_not_in_future():
    future = make_id("430102", date(2030, 1, 1), 1)
    past = make_id("430102", date(1990, 1, 1), 1)
    values = [future, past]
    out = pl.DataFrame({"v": values}).select(e.id_birth_not_future(pl.col("v"), date(2026, 1, 1)))
    assert out["v"].to_list() == [False, True]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(id_like, st.text(alphabet="0123456789", min_size=15, max_size=15)),
        min_size=1,
        max_size=40,
    )
)
def test_legacy_aware_check_equals_normalise(values):
    expected = [s.normalise_id_number(v) is not None for v in values]
    assert vectorised(values, lambda c: e.id_number_valid(c, allow_legacy=True)) == expected
