"""The city's true population, legal persons and houses, drawn with NumPy and Polars (no
per-person Python loop), deterministic for a seed."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from faker.providers.person.zh_CN import Provider as Names

from citydata.demo import geography
from citydata.demo.city import (
    DISTRICTS,
    ESTATES,
    ETHNICITIES,
    FALLBACK_ID_CODE,
    ID_CODES,
    INDUSTRIES,
    ROADS,
    SHOP_WORDS,
)
from citydata.standards.divisions import FIRST_ISSUE, division_name
from citydata.standards.expressions import USCC_ALPHABET, credit_check_char, id_check_char

PHONE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "157",
    "158",
    "159",
    "173",
    "176",
    "177",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]


def pick(rng: np.random.Generator, values: list, n: int, weights=None) -> np.ndarray:
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    return np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)]


def phones(rng: np.random.Generator, n: int) -> pl.Series:
    prefix = pick(rng, PHONE_PREFIXES, n)
    tail = rng.integers(0, 100_000_000, n)
    return pl.Series(prefix).cast(pl.String) + pl.Series(tail).cast(pl.String).str.zfill(8)


def residences(rng: np.random.Generator, district: np.ndarray) -> pl.DataFrame:
    """For each of ``district`` (codes), a home in a real street and community of it, drawn by
    the communities' weights: its address and the street's and community's codes. In a 社区 a
    flat on one of the district's roads; in a 村 a house of a village group (组)."""
    geo = geography.geography()
    at = geography.communities_for(rng, district)
    n = len(district)
    names = {code: name for code, name, _ in DISTRICTS}
    # one of the district's roads, all at once: its list, then an element of it
    roads = pl.Series(district).replace_strict(ROADS, return_dtype=pl.List(pl.String))
    pick_road = pl.Series(rng.integers(0, 1000, n))
    road = (
        pl.DataFrame({"roads": roads, "i": pick_road})
        .select(pl.col("roads").list.get(pl.col("i") % pl.col("roads").list.len()))
        .to_series()
    )
    place = geo.communities[at]
    frame = pl.DataFrame(
        {
            "d": pl.Series(district).replace_strict(names),
            "street": place["street"],
            "community": place["community"],
            "village": place["kind"] == "村",
            "road": road,
            "no": rng.integers(1, 800, n),
            "estate": pick(rng, ESTATES, n),
            "building": rng.integers(1, 30, n),
            "room": rng.integers(1, 33, n) * 100 + rng.integers(1, 6, n),
            "group": rng.integers(1, 16, n),
        }
    )
    address = (
        pl.when(pl.col("village"))
        .then(pl.format("湖南省长沙市{}{}{}{}组{}号", "d", "street", "community", "group", "no"))
        .otherwise(
            pl.format(
                "湖南省长沙市{}{}{}{}{}号{}小区{}栋{}室",
                "d",
                "street",
                "community",
                "road",
                "no",
                "estate",
                "building",
                "room",
            )
        )
    )
    return frame.select(
        address.alias("address"),
        place["street_code"].alias("street_code"),
        place["community_code"].alias("community_code"),
    )


def addresses(rng: np.random.Generator, district: np.ndarray) -> pl.Series:
    return residences(rng, district)["address"]


def id_numbers(division: pl.Series, born: pl.Series, seq: pl.Series) -> pl.Series:
    first17 = division + born.dt.strftime("%Y%m%d") + seq.cast(pl.String).str.zfill(3)
    return pl.DataFrame({"f": first17}).select(pl.col("f") + id_check_char(pl.col("f"))).to_series()


def _issuing_codes(as_of: date) -> pl.DataFrame:
    """(district, year) → the code a number first issued that year in that district carries:
    the district's first code (today's, then its predecessors) in use that year."""
    rows = [
        (district, year, next((c for c in codes if division_name(c, year)), FALLBACK_ID_CODE))
        for district, codes in ID_CODES.items()
        for year in range(FIRST_ISSUE, as_of.year + 1)
    ]
    return pl.DataFrame(
        rows, schema={"district": pl.String, "issued": pl.Int64, "code": pl.String}, orient="row"
    )


def population(n: int, rng: np.random.Generator, as_of: date) -> pl.DataFrame:
    """``n`` residents alive on ``as_of``, per district by the 2020 census."""
    codes = [d[0] for d in DISTRICTS]
    district = pick(rng, codes, n, [d[2] for d in DISTRICTS]).astype(str)
    male = rng.random(n) < 0.51
    ages = np.arange(0, 96)
    age_weights = np.where(ages < 60, 1.0, np.maximum(0.05, 1.0 - (ages - 60) / 36))
    age = rng.choice(ages, n, p=age_weights / age_weights.sum())
    days = (age * 365.25 + rng.integers(0, 365, n)).astype("int64")
    # born up to the day before as_of: nobody is born on the demo's day itself
    born = pl.Series("born", np.datetime64(as_of) - 1 - days.astype("timedelta64[D]")).cast(pl.Date)
    # A number carries the code of the county where it was first issued, and keeps it: the
    # first numbers went out in 1984–85 (most people by 1990), later ones at birth. So a woman
    # born in 1945 in 芙蓉区 holds 430102, in use only since 1983, and a man born in 1980 in
    # today's 宁乡市 holds 宁乡县's 430124, retired in 2017.
    issued = np.where(
        born.dt.year().to_numpy() < FIRST_ISSUE,
        rng.integers(FIRST_ISSUE, 1991, n),
        born.dt.year().to_numpy(),
    )
    id_division = (
        pl.DataFrame({"district": district, "issued": issued})
        .join(_issuing_codes(as_of), on=["district", "issued"], how="left")
        .get_column("code")
        .fill_null(FALLBACK_ID_CODE)
    )

    seq = pl.Series(rng.integers(0, 500, n) * 2 + male.astype(int))
    ids = id_numbers(id_division, born, seq)
    for _ in range(20):  # same division, birthday and sequence: move to the next free sequence
        dup = pl.DataFrame({"i": ids}).select(pl.col("i").cum_count().over("i") > 1).to_series()
        if not dup.any():
            break
        seq = pl.select(pl.when(dup).then((seq + 2) % 1000).otherwise(seq)).to_series()
        ids = id_numbers(id_division, born, seq)

    surnames = list(Names.last_names)
    surname = pick(rng, surnames, n, list(Names.last_names.values()))
    # Faker's given names are one or two characters already (伟, 建军): one pick each.
    given = np.where(
        male, pick(rng, Names.first_names_male, n), pick(rng, Names.first_names_female, n)
    )
    name = pl.Series(surname + given).cast(pl.String)
    home = residences(rng, district)
    return pl.DataFrame(
        {
            "person_id": pl.int_range(1, n + 1, eager=True),
            "id_number": ids,
            "name": name,
            "sex": pl.Series(np.where(male, "男", "女")),
            "birth_date": born,
            "ethnicity": pl.Series(
                pick(rng, [e[0] for e in ETHNICITIES], n, [e[1] for e in ETHNICITIES])
            ).cast(pl.String),
            "division": pl.Series(district),
            "address": home["address"],
            "phone": phones(rng, n),
            "street": home["street_code"],
            "community": home["community_code"],
        }
    )


def legal_persons(people: pl.DataFrame, rng: np.random.Generator, as_of: date) -> pl.DataFrame:
    n = max(len(people) // 10, 5)
    adults = people.filter(pl.col("birth_date") < date(as_of.year - 20, 1, 1))
    rep = adults.sample(n, with_replacement=n > len(adults), seed=int(rng.integers(1 << 31)))
    district = pick(rng, [d[0] for d in DISTRICTS], n, [d[2] for d in DISTRICTS]).astype(str)
    alphabet = np.array(list(USCC_ALPHABET))
    kind = pick(rng, ["91", "92", "93", "52"], n, [0.8, 0.15, 0.03, 0.02]).astype(str)
    body = rng.integers(0, 31, (n, 9))
    body[:, 0] = rng.integers(0, 10, n)  # organisation codes mostly start with a digit
    org = np.array(["".join(row) for row in alphabet[body]], dtype=object)
    first17 = pl.Series(kind) + pl.Series(district) + pl.Series(org).cast(pl.String)
    codes = (
        pl.DataFrame({"f": first17})
        .select(pl.col("f") + credit_check_char(pl.col("f")))
        .to_series()
    )
    industry = rng.integers(0, len(INDUSTRIES), n)
    word = np.array(list(SHOP_WORDS))
    trade = np.array(["".join(x) for x in word[rng.integers(0, len(word), (n, 2))]], dtype=object)
    suffix = np.array([INDUSTRIES[i][1] for i in industry], dtype=object)
    form = pick(rng, ["有限公司", "有限责任公司", "股份有限公司"], n, [0.8, 0.15, 0.05])
    names = (
        pl.Series(pick(rng, ["长沙", "湖南", "长沙市"], n, [0.6, 0.3, 0.1])).cast(pl.String)
        + pl.Series(trade).cast(pl.String)
        + pl.Series(suffix).cast(pl.String)
        + pl.Series(form).cast(pl.String)
    )
    established = pl.Series(
        np.datetime64(as_of) - rng.integers(30, 40 * 365, n).astype("timedelta64[D]")
    ).cast(pl.Date)
    frame = pl.DataFrame(
        {
            "legal_id": pl.int_range(1, n + 1, eager=True),
            "credit_code": codes,
            "name": names,
            "legal_rep_person": rep["person_id"],
            "legal_rep": rep["name"],
            "legal_rep_id": rep["id_number"],
            "address": addresses(rng, district),
            "industry": pl.Series([INDUSTRIES[i][0] for i in industry]),
            "capital": pl.Series(rng.integers(1, 5000, n) * 10).cast(pl.Float64),
            "status": pl.Series(pick(rng, ["存续", "注销", "吊销"], n, [0.9, 0.08, 0.02])).cast(
                pl.String
            ),
            "established": established,
            "division": pl.Series(district),
        }
    )
    return frame.unique("credit_code", keep="first", maintain_order=True).unique(
        "name", keep="first", maintain_order=True
    )


def houses(people: pl.DataFrame, companies: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    n = max(len(people) // 3, 5)
    owners = people.sample(n, with_replacement=True, seed=int(rng.integers(1 << 31)))
    by_company = rng.random(n) < 0.08
    company = companies.sample(n, with_replacement=True, seed=int(rng.integers(1 << 31)))
    district = owners["division"].to_numpy()
    code = (
        pl.Series(district)
        + pl.Series(rng.integers(0, 999_999, n)).cast(pl.String).str.zfill(6)
        + "GB"
        + pl.Series(rng.integers(0, 99_999, n)).cast(pl.String).str.zfill(5)
        + "F"
        + pl.int_range(1, n + 1, eager=True).cast(pl.String).str.zfill(8)
    )
    use = pick(rng, ["住宅", "商业", "办公", "工业"], n, [0.85, 0.08, 0.05, 0.02]).astype(str)
    return pl.DataFrame(
        {
            "house_id": pl.int_range(1, n + 1, eager=True),
            "house_code": code,
            "address": addresses(rng, district),
            "area": pl.Series(np.round(rng.gamma(6, 18, n) + 20, 2)),
            "use": pl.Series(use),
            "owner_person": owners["person_id"].scatter(np.flatnonzero(by_company), None),
            "owner_id_number": owners["id_number"].scatter(np.flatnonzero(by_company), None),
            "owner_legal": company["legal_id"].scatter(np.flatnonzero(~by_company), None),
            "owner_credit_code": company["credit_code"].scatter(np.flatnonzero(~by_company), None),
            "division": pl.Series(district),
        }
    )
