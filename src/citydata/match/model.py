"""A Splink model built from the settings' column kinds, its parameters estimated from the
data: u from a seeded random sample of pairs, m by expectation maximisation on blocks. It runs
on DuckDB, or on Spark for a city beyond one machine (``engines``): the same model either way."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from citydata.match.engines import Backend, backend, duckdb_api, salting_partitions
from citydata.match.prepare import pinyin_column
from citydata.match.settings import MatchSettings

if TYPE_CHECKING:
    from splink.comparison_library import CustomComparison

UID = "__uid"
SALT = "__salt"
U_PAIRS = 300_000  # u-probabilities from every pair of a sample this size (~775 records)
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
        # Edit distance, not Jaro-Winkler: DuckDB's jaro_winkler_similarity and the textbook
        # one in Splink's Spark jar disagree on 4 pairs of Chinese addresses in 10, and the same
        # model must give the same answer on both engines. 小区→花园 is 2 edits.
        levels += [cll.LevenshteinLevel(column, 2), cll.LevenshteinLevel(column, 5)]
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


def _prediction_rules(
    frame: pl.DataFrame, settings: MatchSettings, parallelism: int
) -> tuple[list, dict[tuple[str, ...], int]]:
    """The blocking rules for predictions, each skewed one split into salted copies (Splink 5
    dropped its own salting; on Spark a block of k records is k²/2 pairs in one task). A salt
    restricts the left record only, so the salted copies together make the same pairs."""
    from splink.blocking_rule_library import And, CustomRule, block_on

    rules: list = []
    salts: dict[tuple[str, ...], int] = {}
    for group in block_columns(settings):
        sizes = frame.select(group).drop_nulls().group_by(group).len()["len"].to_list()
        n = salting_partitions(sizes, parallelism)
        if n == 1:
            rules.append(block_on(*group))
            continue
        salts[group] = n
        rules += [And(block_on(*group), CustomRule(f"l.{SALT} % {n} = {k}")) for k in range(n)]
    return rules, salts


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


class Matched(NamedTuple):
    pairs: pl.DataFrame  # __uid_l, __uid_r, match_weight, match_probability ≥ review threshold
    clusters: pl.DataFrame  # __uid, cluster_id (the cluster's smallest __uid)
    model: dict[str, Any]  # the trained Splink model (Splink's JSON settings)


def train_and_predict(
    frame: pl.DataFrame, settings: MatchSettings, engine: str = "duckdb"
) -> Matched:
    """Scored pairs at or above the review threshold, clusters at the match threshold, and
    the model. ``frame`` holds the prepared columns and a unique integer ``__uid``; ``engine`` is where
    the model runs (``duckdb`` or ``spark``) — the same model, the same answer."""
    logging.getLogger("splink").setLevel(logging.ERROR)  # its training chatter is not ours
    keep = [UID, *settings.columns]
    keep += [pinyin_column(c) for c, k in settings.columns.items() if k == "person_name"]
    records = frame.select(keep)
    with backend(engine) as run:
        return _train_and_predict(run, records, settings)


def clusters_at(uids: pl.Series, pairs: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Connected components of the pairs at or above ``threshold``, each named by its smallest
    record: (__uid, cluster_id) for every record in such a pair. Done here, on the pairs the
    engine returned, not by the engine: one sparse-graph pass instead of Splink's iterative
    clustering (22 Spark jobs for 11,000 records), and one answer whichever engine scored."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    strong = pairs.filter(pl.col("match_probability") >= threshold)
    size = int(uids.max()) + 1 if uids.len() else 0
    left, right = strong[f"{UID}_l"].to_numpy(), strong[f"{UID}_r"].to_numpy()
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    linked = np.unique(np.concatenate([left, right]))
    return (
        pl.DataFrame({UID: linked, "label": labels[linked]})
        .with_columns(pl.col(UID).min().over("label").alias("cluster_id"))
        .select(pl.col(UID).cast(pl.Int64), pl.col("cluster_id").cast(pl.Int64))
    )


def _train_and_predict(run: Backend, records: pl.DataFrame, settings: MatchSettings) -> Matched:
    from splink import Linker, SettingsCreator

    rules, salts = _prediction_rules(records, settings, run.parallelism)
    if salts:  # a fixed draw, so a rerun splits the work the same way
        salt = np.random.default_rng(settings.seed).integers(0, 1 << 30, records.height)
        records = records.with_columns(pl.Series(SALT, salt, pl.Int64))

    creator = SettingsCreator(
        link_type="dedupe_only",
        probability_two_random_records_match=_prior(records, settings),
        unique_id_column_name=UID,
        comparisons=[_comparison(c, k) for c, k in settings.columns.items()],
        blocking_rules_to_generate_predictions=rules,
        retain_matching_columns=False,
    )

    # u from every pair of a seeded sample, drawn here and scored on DuckDB whatever the
    # engine: the sample is small at any city size (~775 records), and both engines' models
    # then start from the same u — the engines' own hash-based samples differ.
    rows = min(records.height, math.ceil(0.5 * ((8 * U_PAIRS + 1) ** 0.5 + 1)))
    sample = records.sample(n=rows, seed=settings.seed)
    local = run.db if run.engine == "duckdb" else duckdb_api()
    sampler = Linker(local.register(sample.to_arrow()), creator, log_level=logging.ERROR)
    sampler.training.estimate_u_using_random_sampling(
        max_pairs=float(rows * rows), min_count_per_level=None, num_chunks=1
    )
    model = creator.create_settings_dict(run.db.sql_dialect.sql_dialect_str)
    trained = sampler.misc.save_model_to_json()["comparisons"]
    for comparison, learnt in zip(model["comparisons"], trained, strict=True):
        for level, source in zip(
            comparison["comparison_levels"], learnt["comparison_levels"], strict=True
        ):
            if "u_probability" in source:
                level["u_probability"] = source["u_probability"]
    linker = Linker(run.db.register(records.to_arrow()), model, log_level=logging.ERROR)
    for rule in _blocking(settings):  # each EM session trains every comparison but its block's
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as exc:  # a block with too few pairs to learn from
            logging.getLogger(__name__).info("EM on %s skipped: %s", rule, exc)
    pairs = linker.inference.predict(threshold_match_probability=settings.review_threshold)
    scored = pl.from_arrow(pairs.as_pyarrow_table()).select(
        pl.col(f"{UID}_l", f"{UID}_r").cast(pl.Int64),
        pl.col("match_weight", "match_probability").cast(pl.Float64),
    )
    grouped = clusters_at(records[UID], scored, settings.match_threshold)
    return Matched(scored, grouped, linker.misc.save_model_to_json())
