"""Benchmark: `citydata demo generate` people per second and peak memory at several sizes,
against a baseline measured in the same run: Faker (zh_CN) making the same person fields one
person at a time, as a plain generator would.

    python bench/demo_generate.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def faker_people_per_second(n: int = 20_000) -> float:
    from faker import Faker

    fake = Faker("zh_CN")
    Faker.seed(1)
    start = time.perf_counter()
    for _ in range(n):
        (fake.ssn(), fake.name(), fake.date_of_birth(), fake.address(), fake.phone_number())
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    baseline = faker_people_per_second()
    print(f"baseline, Faker one person at a time (fields only, no files): {baseline:,.0f} people/s")
    citydata = str(Path(sys.executable).parent / "citydata")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            subprocess.run(
                [citydata, "demo", "generate", "--out", folder, "--people", str(size)]
                + ["--as-of", "2026-12-04"],  # the same city every run
                check=True,
                capture_output=True,
            )
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rate = size / seconds
        print(
            f"{size:>10,} people: {seconds:7.1f} s  {rate:10,.0f} people/s  ratio to baseline {rate / baseline:6.1f}  "
            f"peak memory so far {peak:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
