"""Benchmark: `citydata ingest` of an N-row population CSV (full validation, provenance, rejects)
against the sqlite3 shell's `.import` of the same file into a bare table (no checks at all).

    python bench/ingest.py [--rows 1000000]

Prints both speeds, the ratio citydata/bare (target >= 1.0, floor 0.5) and citydata's peak memory.
"""

from __future__ import annotations

import argparse
import json
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


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    citydata = shutil.which("citydata") or str(Path(sys.executable).parent / "citydata")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        csv = work / "population.csv"
        make_csv(args.rows, csv)
        env = {
            "CITYDATA_DATABASE_URL": f"sqlite:///{work}/citydata.db",
            "PATH": str(Path(sys.executable).parent),
            "CITYDATA_ADMIN_PASSWORD": "benchmark-pw",
        }
        subprocess.run([citydata, "init"], env=env, check=True, capture_output=True)
        subprocess.run(
            [citydata, "catalog", "import", str(SAMPLE)], env=env, check=True, capture_output=True
        )
        ours, out = timed([citydata, "ingest", str(csv), "--class", POPULATION, "--json"], env)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = json.loads(out)
        bare, _ = timed(["sqlite3", str(work / "bare.db"), ".mode csv", f".import {csv} bare"])
    print(
        f"rows: {args.rows:,}  accepted: {report['rows_accepted']:,}  rejected: {report['rows_rejected']:,}"
    )
    print(
        f"citydata ingest (SQLite, full validation): {ours:7.2f} s  {args.rows / ours:12,.0f} rows/s"
    )
    print(
        f"sqlite3 .import (bare table, no checks):   {bare:7.2f} s  {args.rows / bare:12,.0f} rows/s"
    )
    print(f"ratio citydata/bare speed: {bare / ours:.2f}  (target >= 1.0, floor 0.5)")
    print(f"peak memory of the citydata process: {peak_mib:,.0f} MiB (target < 2048)")


if __name__ == "__main__":
    main()
