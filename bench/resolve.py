"""Benchmark: resolution of the demo city against its truth, and a plain Splink baseline.

    python bench/resolve.py [--sizes 20000 1000000] [--errors default realistic]
                            [--engine spark] [--spark-memory 8g]

For each size: generate the city, load it (catalog + every file through aggregation), then time
`citydata resolve` for population and legal persons and score them pairwise against the truth
(precision, recall, F1; target F1 >= 0.99 on persons). In the same run, on the same staged
person rows, a plain Splink model with default-style settings (comparison-library comparisons
on the raw values, no normalisation, no pinyin, trained the usual way) is timed and scored as
the baseline. Each step runs in its own process, so its peak memory is its own.

``--engine spark`` also resolves the same staged rows (a copy of the database made
before the first run) with ``citydata resolve --engine spark`` in Spark's local mode on every
core (CITYDATA_SPARK_MASTER overrides), prints its time and scores beside DuckDB's with their
ratio, and checks that every staged row joined the same master id on both engines. The peak
shown for Spark is the Python process's; the JVM's heap is ``--spark-memory``.

``--errors`` runs each size once per error model (demo/profiles): ``default`` (most rows carry
their own valid key) and ``realistic`` (many rows without an ID number, and rows with a valid
number that is someone else's, which a key join would merge).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
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


def _same_masters(duck, spark, base: str) -> str:
    """Whether every staged row joined the same master id in both databases."""
    from sqlalchemy import select

    from citydata.bases.models import MasterLink

    def links(store) -> set[tuple]:
        with store.session() as session:
            return set(
                session.execute(
                    select(MasterLink.batch_id, MasterLink.row, MasterLink.master_id).where(
                        MasterLink.base == base
                    )
                ).all()
            )

    ours, theirs = links(duck), links(spark)
    if ours == theirs:
        return f"same masters as DuckDB for all {len(ours):,} rows"
    return f"masters differ from DuckDB's on {len(ours ^ theirs):,} rows"


def run(size: int, errors: str, engine: str, spark_memory: str) -> None:
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

        spark_env = None
        if engine == "spark":  # the same staged rows, before any run has touched them
            copy = work / "spark.db"
            with sqlite3.connect(work / "citydata.db") as source, sqlite3.connect(copy) as target:
                source.backup(target)
            spark_env = {
                **env,
                "CITYDATA_DATABASE_URL": f"sqlite:///{copy}",
                "CITYDATA_SPARK_DRIVER_MEMORY": spark_memory,
                "PATH": f"{env['PATH']}:{os.environ.get('PATH', '/usr/bin:/bin')}",  # java
                **{
                    k: os.environ[k]
                    for k in ("JAVA_HOME", "CITYDATA_SPARK_MASTER")
                    if k in os.environ
                },
            }
        duck: dict[str, float] = {}
        for base in ("population", "legal_person"):
            seconds, out, peak = timed([CITYDATA, "resolve", "--base", base, "--json"], env)
            report = json.loads(out)[0]
            scores = resolution_scores(Store(env["CITYDATA_DATABASE_URL"]), city, base)
            print(
                f"  citydata resolve {base:<13} {seconds:7.1f} s  rows {report['rows_resolved']:>10,}  "
                f"masters {report['masters']:>9,}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"F1 {scores['f1']:.4f}  peak {peak:,.0f} MiB"
            )
            duck[base] = seconds
            if base == "population":
                ours = (seconds, scores["f1"])
        if spark_env is not None:
            for base in ("population", "legal_person"):
                try:
                    seconds, out, peak = timed(
                        [CITYDATA, "resolve", "--base", base, "--engine", "spark", "--json"],
                        spark_env,
                    )
                except subprocess.CalledProcessError as exc:
                    print(
                        f"  --engine spark   {base:<13} did not finish: exit status {exc.returncode}"
                    )
                    continue
                report = json.loads(out)[0]
                spark_store = Store(spark_env["CITYDATA_DATABASE_URL"])
                scores = resolution_scores(spark_store, city, base)
                same = _same_masters(Store(env["CITYDATA_DATABASE_URL"]), spark_store, base)
                print(
                    f"  --engine spark   {base:<13} {seconds:7.1f} s  rows {report['rows_resolved']:>10,}  "
                    f"masters {report['masters']:>9,}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                    f"F1 {scores['f1']:.4f}  peak {peak:,.0f} MiB (Python)  time ratio spark/duckdb "
                    f"{seconds / duck[base]:.2f}  {same}"
                )
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
    parser.add_argument(
        "--engine", choices=["duckdb", "spark"], default="duckdb", help="spark: also on Spark"
    )
    parser.add_argument("--spark-memory", default="8g", help="the Spark driver's heap (local mode)")
    parser.add_argument("--baseline", nargs=2, metavar=("URL", "CITY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline(*args.baseline)
        return
    for size in args.sizes:
        for errors in args.errors:
            run(size, errors, args.engine, args.spark_memory)


if __name__ == "__main__":
    main()
