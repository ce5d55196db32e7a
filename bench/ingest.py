"""Benchmark: `citydata ingest` of an N-row population CSV (full validation, provenance, rejects)
against a bare load of the same file with no checks at all: the sqlite3 shell's `.import` on
SQLite, and with --postgres a plain `COPY ... FROM STDIN (FORMAT csv)` into a bare table.

    python bench/ingest.py [--rows 1000000] [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

Each side runs --repeat times (3 by default, each citydata run on a new database) and the medians
are compared: a single run of either swings by a fifth on this machine. Prints both speeds, the
ratio citydata/bare (target >= 1.0, floor 0.5) and citydata's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src/citydata/catalog/sample/catalog.json"
POPULATION = "101001/00001"
BENCH_DAY = date(2026, 12, 4)  # the demo's as-of: the same people every run


def make_csv(rows: int, path: Path) -> None:
    """The demo population as the household register sends it: the sample class's Chinese headers."""
    import polars as pl

    from citydata.demo.people import population

    population_class = next(
        c for c in json.loads(SAMPLE.read_text())["classes"] if c["code"] == POPULATION
    )
    labels = {f["name"]: f["label"] for f in population_class["fields"]}
    people = population(rows, np.random.default_rng(1), BENCH_DAY)
    people.select(pl.col(list(labels)).cast(pl.String)).rename(labels).write_csv(path)


def quiet_disk() -> None:
    """Write out what earlier steps left dirty, so no step pays for another's writeback (the
    SQLite runs leave gigabytes that PostgreSQL's commit would otherwise wait behind)."""
    os.sync()


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    quiet_disk()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, done.stdout


def run(citydata: str, url: str, csv: Path, settle=lambda: None) -> tuple[float, dict, float]:
    """(seconds, report, peak MiB) of init + catalog import (untimed) and the timed ingest;
    ``settle`` runs just before the timing starts."""
    env = {
        "CITYDATA_DATABASE_URL": url,
        "PATH": str(Path(sys.executable).parent),
        "CITYDATA_ADMIN_PASSWORD": "benchmark-pw",
    }
    subprocess.run([citydata, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [citydata, "catalog", "import", str(SAMPLE)], env=env, check=True, capture_output=True
    )
    settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds, out = timed([citydata, "ingest", str(csv), "--class", POPULATION, "--json"], env)
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return seconds, json.loads(out), peak


def checkpoint(dsn: str) -> None:
    """Write out what earlier steps left in PostgreSQL's buffers, for the same reason as
    quiet_disk (needs a superuser, as creating the scratch databases does)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def postgres_copy(dsn: str, csv: Path) -> float:
    """The bare baseline on PostgreSQL: COPY the file into a table of text columns."""
    import psycopg

    header = csv.open(encoding="utf-8").readline().strip().split(",")
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = ", ".join(f'"{h}" text' for h in header)
        conn.execute(f"CREATE TABLE bare ({columns})")
        checkpoint(dsn)
        quiet_disk()
        start = time.perf_counter()
        with (
            conn.cursor().copy("COPY bare FROM STDIN (FORMAT csv, HEADER true)") as copy,
            csv.open("rb") as f,
        ):
            while block := f.read(1 << 20):
                copy.write(block)
        return time.perf_counter() - start


def scratch_postgres(url: str, name: str) -> tuple[str, str]:
    """Create database ``name`` beside ``url``'s; returns (SQLAlchemy URL, libpq DSN) for it."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    scratch = base.set(database=name)
    return (
        scratch.render_as_string(hide_password=False),
        scratch.set(drivername="postgresql").render_as_string(hide_password=False),
    )


def drop_postgres(url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def report_line(label: str, rows: int, runs: list[float]) -> None:
    seconds = statistics.median(runs)
    spread = "  (" + ", ".join(f"{r:.2f}" for r in runs) + ")" if len(runs) > 1 else ""
    print(f"{label:<48}{seconds:7.2f} s  {rows / seconds:12,.0f} rows/s{spread}")


def compare(
    database: str,
    baseline: str,
    rows: int,
    ours: list[float],
    bare: list[float],
    peaks: list[float],
) -> None:
    """Both sides' runs, the ratio of their medians and citydata's peak memory."""
    report_line(f"citydata ingest ({database}, full validation):", rows, ours)
    report_line(f"{baseline} (bare table, no checks):", rows, bare)
    ratio = statistics.median(bare) / statistics.median(ours)
    print(f"ratio citydata/bare speed: {ratio:.2f}  (target >= 1.0, floor 0.5)")
    print(f"peak memory of the citydata process: {max(peaks):,.0f} MiB (target < 2048)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL: also run there, against COPY")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each side; the median is compared"
    )
    args = parser.parse_args()
    citydata = shutil.which("citydata") or str(Path(sys.executable).parent / "citydata")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        csv = work / "population.csv"
        make_csv(args.rows, csv)
        ours, bare, peaks = [], [], []
        for i in range(args.repeat):  # a new database each time: the same file twice is a no-op
            seconds, report, peak = run(citydata, f"sqlite:///{work}/citydata{i}.db", csv)
            ours.append(seconds)
            peaks.append(peak)
            bare.append(
                timed(["sqlite3", str(work / f"bare{i}.db"), ".mode csv", f".import {csv} bare"])[0]
            )
        print(
            f"rows: {args.rows:,}  accepted: {report['rows_accepted']:,}  "
            f"rejected: {report['rows_rejected']:,}  runs of each: {args.repeat} (median shown)"
        )
        compare("SQLite", "sqlite3 .import", args.rows, ours, bare, peaks)
        for database in work.glob("*.db"):  # left in the page cache they slowed PostgreSQL's runs
            database.unlink()
        if args.postgres:
            ours, bare, peaks = [], [], []
            for _ in range(args.repeat):
                name = f"citydata_bench_{os.getpid()}"
                url, dsn = scratch_postgres(args.postgres, name)
                try:
                    seconds, report, peak = run(citydata, url, csv, partial(checkpoint, dsn))
                    ours.append(seconds)
                    peaks.append(peak)
                    bare.append(postgres_copy(dsn, csv))
                finally:
                    drop_postgres(args.postgres, name)
            compare("PostgreSQL", "COPY FROM STDIN", args.rows, ours, bare, peaks)


if __name__ == "__main__":
    main()
