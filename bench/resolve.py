"""Benchmark: resolution of the demo city against its truth, and a plain Splink baseline.

    python bench/resolve.py [--sizes 20000 1000000] [--errors default realistic]

For each size: generate the city, load it (catalog + every file through aggregation), then time
`citydata resolve` for population and legal persons and score them pairwise against the truth
(precision, recall, F1; target F1 >= 0.99 on persons). In the same run, on the same staged
person rows, a plain Splink model with default-style settings (comparison-library comparisons
on the raw values, no normalisation, no pinyin, trained the usual way) is timed and scored as
the baseline. Each step runs in its own process, so its peak memory is its own.

``--errors`` runs each size once per error model (demo/profiles): ``default`` (most rows carry
their own valid key) and ``realistic`` (many rows without an ID number, and rows with a valid
number that is someone else's, which a key join would merge).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CITYDATA = str(Path(sys.executable).parent / "citydata")


def timed(cmd: list[str], env: dict) -> tuple[float, str, float]:
    """(seconds, stdout, peak MiB) of one child process, its peak measured by GNU time."""
    with tempfile.NamedTemporaryFile("r") as peak:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", peak.name, *cmd],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        return seconds, done.stdout, int(peak.read().split()[-1]) / 1024


def baseline(url: str, city: str) -> None:
    """The plain Splink run (child process): prints its scores as JSON."""
    import polars as pl
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on

    from citydata.bases.service import feeds, staged_rows
    from citydata.bases.spec import spec
    from citydata.db.engine import Store
    from citydata.demo.truth import pairwise_scores, truth_rows
    from citydata.ingest.models import Batch
    from citydata.match.engines import duckdb_api

    store = Store(url)
    base = spec("population")
    with store.session() as session:
        rows = staged_rows(session.connection(), base, feeds(session, base))
        files = dict(session.query(Batch.id, Batch.file_name).all())
    start = time.perf_counter()
    records = rows.with_row_index("unique_id").select("unique_id", *base.attributes)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ExactMatch("id_number"),
            cl.NameComparison("name"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("address", [1, 3]),
            cl.ExactMatch("phone"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id_number"),
            block_on("name", "birth_date"),
            block_on("phone"),
        ],
    )
    linker = Linker(duckdb_api().register(records.to_arrow()), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("id_number")], recall=0.9
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("birth_date"), block_on("name")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pairs = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, 0.95)
    clustered = pl.from_arrow(clusters.as_pyarrow_table()).select(
        pl.col("unique_id").cast(pl.Int64), "cluster_id"
    )
    seconds = time.perf_counter() - start
    labelled = (
        rows.with_row_index("unique_id")
        .with_columns(pl.col("unique_id").cast(pl.Int64))
        .join(clustered, on="unique_id")
        .with_columns(
            pl.col("batch_id").replace_strict(files, return_dtype=pl.String).alias("file")
        )
        .join(truth_rows(Path(city), "population"), on=["file", "row"])
    )
    print(json.dumps({"seconds": seconds, **pairwise_scores(labelled, "cluster_id", "entity_id")}))


def run(size: int, errors: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {
            "CITYDATA_DATABASE_URL": f"sqlite:///{work}/citydata.db",
            "CITYDATA_ADMIN_PASSWORD": "benchmark-pw",
            "PATH": str(Path(sys.executable).parent),
        }
        city = work / "city"
        subprocess.run(
            [CITYDATA, "demo", "generate", "--out", str(city), "--people", str(size)]
            + ["--errors", errors],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run([CITYDATA, "init"], env=env, check=True, capture_output=True)
        load_seconds, _, _ = timed([CITYDATA, "demo", "load", str(city), "--no-resolve"], env)
        print(
            f"{size:,} people, error model {errors}: city generated and aggregated "
            f"({load_seconds:.0f} s)"
        )
        from citydata.db.engine import Store
        from citydata.demo.truth import resolution_scores

        for base in ("population", "legal_person"):
            seconds, out, peak = timed([CITYDATA, "resolve", "--base", base, "--json"], env)
            report = json.loads(out)[0]
            scores = resolution_scores(Store(env["CITYDATA_DATABASE_URL"]), city, base)
            print(
                f"  citydata resolve {base:<13} {seconds:7.1f} s  rows {report['rows_resolved']:>10,}  "
                f"masters {report['masters']:>9,}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"F1 {scores['f1']:.4f}  peak {peak:,.0f} MiB"
            )
            if base == "population":
                ours = (seconds, scores["f1"])
        try:
            seconds, out, peak = timed(
                [sys.executable, __file__, "--baseline", env["CITYDATA_DATABASE_URL"], str(city)],
                env,
            )
        except subprocess.CalledProcessError as exc:  # e.g. killed for memory (exit status 137)
            print(
                f"  plain Splink (baseline)  population    did not finish: exit status {exc.returncode}"
            )
            return
        plain = json.loads(out.strip().splitlines()[-1])
        print(
            f"  plain Splink (baseline)  population    {plain['seconds']:7.1f} s  "
            f"precision {plain['precision']:.4f}  recall {plain['recall']:.4f}  F1 {plain['f1']:.4f}  peak {peak:,.0f} MiB"
        )
        print(
            f"  population F1: citydata {ours[1]:.4f} vs baseline {plain['f1']:.4f}; "
            f"time ratio citydata/baseline {ours[0] / plain['seconds']:.2f} (aim <= 1.0)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--errors", nargs="+", default=["default", "realistic"])
    parser.add_argument("--baseline", nargs=2, metavar=("URL", "CITY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline(*args.baseline)
        return
    for size in args.sizes:
        for errors in args.errors:
            run(size, errors)


if __name__ == "__main__":
    main()
