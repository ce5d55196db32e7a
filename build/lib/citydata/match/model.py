"""A Splink model (DuckDB backend) built from the settings' column kinds, its parameters
estimated from the data: u by random sampling, m by expectation maximisation on blocks.

For cities beyond one machine the same settings run on Splink's Spark backend: only the
DatabaseAPI changes (see docs/matching.md)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citydata.match.prepare import pinyin_column
from citydata.match.settings import MatchSettings

if TYPE_CHECKING:
    from splink.comparison_library import CustomComparison

UID = "__uid"
# Splink (and DuckDB under it) is imported where a model is built, not when the web application
# or the CLI starts: it costs a quarter of a second that most commands never need.


def _comparison(column: str, kind: str) -> CustomComparison:
    import splink.comparison_level_library as cll
    from splink.comparison_library import CustomComparison

    levels: list = [cll.NullLevel(column), cll.ExactMatchLevel(column)]
    if kind == "person_name":
        levels += [
            cll.ExactMatchLevel(pinyin_column(column)),  # homophones: 张晓 / 张小
            cll.DamerauLevenshteinLevel(column, 1),  # one character mistyped
        ]
    elif kind in {"identifier", "date"}:
        levels.append(cll.DamerauLevenshteinLevel(column, 1))  # one digit wrong, or two swapped
    elif kind == "address":
        levels += [cll.JaroWinklerLevel(column, 0.92), cll.JaroWinklerLevel(column, 0.8)]
    elif kind == "phone":
        levels.append(cll.DamerauLevenshteinLevel(column, 1))  # one digit mistyped
    levels.append(cll.ElseLevel())
    return CustomComparison(levels, output_column_name=column)


def block_columns(settings: MatchSettings) -> list[tuple[str, ...]]:
    """Candidate pairs share one of these column groups: an identifier, a phone, the sounds of
    a whole name split over several columns, a name's sound together with a date or a
    postcode, or a date with a postcode (a name or a date alone would pair millions of records in a city). Without those
    kinds, the first compared column."""
    kinds = settings.columns.items()
    names = [pinyin_column(c) for c, k in kinds if k == "person_name"]
    dates = [c for c, k in kinds if k == "date"]
    places = [c for c, k in kinds if k == "postcode"]
    groups: list[tuple[str, ...]] = [(c,) for c, k in kinds if k in {"identifier", "phone"}]
    if len(names) > 1:
        groups.append(tuple(names))  # a whole name (given + family) is rare enough alone
    if names and dates:
        groups += [(n, d) for n in names for d in dates]
    else:
        groups += [(c,) for c in names or dates]
    groups += [(n, p) for n in names for p in places] + [(d, p) for d in dates for p in places]
    return groups or [(next(iter(settings.columns)),)]


def _blocking(settings: MatchSettings) -> list:
    from splink import block_on

    return [block_on(*group) for group in block_columns(settings)]


def pairs_within(frame: pl.DataFrame, *by: str) -> int:
    """How many unordered pairs of rows share the values of ``by``."""
    sizes = frame.group_by(*by).len()["len"].cast(pl.Int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _prior(frame: pl.DataFrame, settings: MatchSettings, recall: float = 0.9) -> float:
    """The chance that two random records match, from the pairs that share an identifier
    (assumed to find ``recall`` of the true pairs); without identifiers, Splink's default."""
    n = frame.height
    identifiers = [c for c, k in settings.columns.items() if k == "identifier"]
    if n < 2 or not identifiers:
        return 1e-4
    sharing = max(pairs_within(frame.select(c).drop_nulls(), c) for c in identifiers)
    return min(max(sharing / recall / (n * (n - 1) / 2), 1e-7), 0.5)


def duckdb_api():
    """Splink's DuckDB backend, spilling to the system's temporary folder — by default DuckDB
    spills to ``.tmp`` in the working directory, which may be a source checkout."""
    import duckdb
    from splink.backends.duckdb import DuckDBAPI

    spill = Path(tempfile.gettempdir()) / "citydata-duckdb"
    spill.mkdir(exist_ok=True)
    return DuckDBAPI(connection=duckdb.connect(config={"temp_directory": str(spill)}))


def train_and_predict(
    frame: pl.DataFrame, settings: MatchSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scored pairs at or above the review threshold, clusters at the match threshold).
    ``frame`` holds the prepared columns and a unique integer ``__uid``."""
    from splink import Linker, SettingsCreator

    logging.getLogger("splink").setLevel(logging.ERROR)  # its training chatter is not ours
    db = duckdb_api()
    keep = [UID, *settings.columns]
    keep += [pinyin_column(c) for c, k in settings.columns.items() if k == "person_name"]
    table = db.register(frame.select(keep).to_arrow())
    creator = SettingsCreator(
        link_type="dedupe_only",
        probability_two_random_records_match=_prior(frame, settings),
        unique_id_column_name=UID,
        comparisons=[_comparison(c, k) for c, k in settings.columns.items()],
        blocking_rules_to_generate_predictions=_blocking(settings),
        retain_matching_columns=False,
    )
    linker = Linker(table, creator, log_level=logging.ERROR)
    linker.training.estimate_u_using_random_sampling(max_pairs=3e5, seed=settings.seed)
    for rule in _blocking(settings):  # each EM session trains every comparison but its block's
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as exc:  # a block with too few pairs to learn from
            logging.getLogger(__name__).info("EM on %s skipped: %s", rule, exc)
    pairs = linker.inference.predict(threshold_match_probability=settings.review_threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pairs, threshold_match_probability=settings.match_threshold
    )
    return pl.from_arrow(pairs.as_pyarrow_table()), pl.from_arrow(clusters.as_pyarrow_table())
