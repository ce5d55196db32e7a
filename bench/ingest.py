"""Benchmark: `citydata ingest` of an N-row population CSV (full validation, provenance, rejects)
against a bare load of the same file with no checks at all: the sqlite3 shell's `.import` on
SQLite, and with --postgres a plain `COPY ... FROM STDIN (FORMAT csv)` into a bare table.

    python bench/ingest.py [--rows 1000000] [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

Prints both speeds, the ratio citydata/bare (target >= 1.0, floor 0.5) and citydata's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src/citydata/catalog/sample/catalog.json"
POPULATION = "101001/00001"


def make_csv(rows: int, path: Path) -> None:
    """The demo population as the household register sends it: the sample class's Chinese headers."""
    import polars as pl

    from citydata.demo.people import population

    population_class = next(
        c for c in json.loads(SAMPLE.read_text())["classes"] if c["code"] == POPULATION
    )
    labels = {f["name"]: f["label"] for f in population_class["fields"]}
    people = population(rows, np.random.default_rng(1))
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


def run(citydata: str, url: str, csv: Path) -> tuple[float, dict, float]:
    """(seconds, report, peak MiB) of init + catalog import (untimed) and the timed ingest."""
    env = {
        "CITYDATA_DATABASE_URL": url,
        "PATH": str(Path(sys.executable).parent),
        "CITYDATA_ADMIN_PASSWORD": "benchmark-pw",
    }
    subprocess.run([citydata, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [citydata, "catalog", "import", str(SAMPLE)], env=env, check=True, capture_output=True
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds, out = timed([citydata, "ingest", str(csv), "--class", POPULATION, "--json"], env)
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return seconds, json.loads(out), peak


def postgres_copy(dsn: str, csv: Path) -> float:
    """The bare baseline on PostgreSQL: COPY the file into a table of text columns."""
    import psycopg

    header = csv.open(encoding="utf-8").readline().strip().split(",")
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = ", ".join(f'"{h}" text' for h in header)
        conn.execute(f"CREATE TABLE bare ({columns})")
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


def report_line(label: str, rows: int, seconds: float) -> None:
    print(f"{label:<44}{seconds:7.2f} s  {rows / seconds:12,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL: also run there, against COPY")
    args = parser.parse_args()
    citydata = shutil.which("citydata") or str(Path(sys.executable).parent / "citydata")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        csv = work / "population.csv"
        make_csv(args.rows, csv)
        ours, report, peak = run(citydata, f"sqlite:///{work}/citydata.db", csv)
        bare, _ = timed(["sqlite3", str(work / "bare.db"), ".mode csv", f".import {csv} bare"])
        print(
            f"rows: {args.rows:,}  accepted: {report['rows_accepted']:,}  "
            f"rejected: {report['rows_rejected']:,}"
        )
        report_line("citydata ingest (SQLite, full validation):", args.rows, ours)
        report_line("sqlite3 .import (bare table, no checks):", args.rows, bare)
        print(f"ratio citydata/bare speed: {bare / ours:.2f}  (target >= 1.0, floor 0.5)")
        print(f"peak memory of the citydata process: {peak:,.0f} MiB (target < 2048)")
        if args.postgres:
            name = f"citydata_bench_{os.getpid()}"
            url, dsn = scratch_postgres(args.postgres, name)
            try:
                ours, report, peak = run(citydata, url, csv)
                bare = postgres_copy(dsn, csv)
            finally:
                drop_postgres(args.postgres, name)
            report_line("citydata ingest (PostgreSQL, full validation):", args.rows, ours)
            report_line("COPY FROM STDIN (bare table, no checks):", args.rows, bare)
            print(f"ratio citydata/bare speed: {bare / ours:.2f}  (target >= 1.0, floor 0.5)")
            print(f"peak memory of the citydata process: {peak:,.0f} MiB (target < 2048)")


if __name__ == "__main__":
    main()
