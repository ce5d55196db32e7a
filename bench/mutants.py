"""Mutation testing of the security-critical modules: how many deliberate small breaks of the
guards (a `<` made `<=`, a condition negated, a value dropped) does the test suite catch?

Runs mutmut (3.x) on a copy of the committed tree, the security and sharing tests selecting
themselves per mutant, and prints per module the mutants killed, survived and the share killed.
Not a test: it takes tens of minutes on two cores.

    pip install mutmut==3.8.1
    python bench/mutants.py [--modules privacy/masking.py share/gateway.py …] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "privacy/masking.py",
    "share/gateway.py",
    "audit/service.py",
    "opendata/sql.py",
    "opendata/sqlguard.py",
    "ingest/staging.py",
]
TESTS = [
    "tests/test_security.py",
    "tests/test_share.py",
    "tests/test_opendata.py",
    "tests/test_ingest.py",
]


def config(modules: list[str]) -> str:
    paths = ", ".join(f'"src/citydata/{m}"' for m in modules)
    tests = ", ".join(f'"{t}"' for t in TESTS)
    return (
        "\n[tool.mutmut]\n"
        f"source_paths = [{paths}]\n"
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x"]\n'
        'also_copy = ["tests", "src/citydata"]\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=MODULES)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--children", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("mutmut") is None and not (Path(sys.executable).parent / "mutmut").exists():
        sys.exit("mutmut is not installed: pip install mutmut==3.8.1")
    mutmut = shutil.which("mutmut") or str(Path(sys.executable).parent / "mutmut")
    work = args.keep or Path(tempfile.mkdtemp(prefix="citydata-mutants-"))
    work.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    (work / "pyproject.toml").write_text(
        (work / "pyproject.toml").read_text(encoding="utf-8") + config(args.modules),
        encoding="utf-8",
    )
    started = time.monotonic()
    subprocess.run([mutmut, "run", "--max-children", str(args.children)], cwd=work, check=False)
    results = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True
    ).stdout
    tally: dict[str, Counter] = {m: Counter() for m in args.modules}
    for line in results.splitlines():
        found = re.match(r"\s*citydata\.([\w.]+?)\.x\w*__mutmut_\d+: (.+)$", line)
        if not found:
            continue
        module = found.group(1).replace(".", "/") + ".py"
        tally.setdefault(module, Counter())[found.group(2).strip()] += 1
    print(f"\nmutants of {len(args.modules)} modules, {time.monotonic() - started:.0f} s")
    print(f"{'module':32} {'killed':>7} {'survived':>9} {'other':>6} {'killed share':>13}")
    total = Counter()
    for module, counts in tally.items():
        killed = counts["killed"] + counts["timeout"]
        survived = counts["survived"]
        other = sum(counts.values()) - killed - survived
        total.update(killed=killed, survived=survived, other=other)
        share = killed / (killed + survived) if killed + survived else 0.0
        print(f"{module:32} {killed:>7} {survived:>9} {other:>6} {share:>13.1%}")
    judged = total["killed"] + total["survived"]
    share = total["killed"] / judged if judged else 0.0
    print(
        f"{'all':32} {total['killed']:>7} {total['survived']:>9} {total['other']:>6} {share:>13.1%}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
