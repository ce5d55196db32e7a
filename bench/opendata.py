"""Benchmark: the open data portal under load from a second process on loopback, against
Datasette serving the same SQLite file as the baseline.

    python bench/opendata.py [--people 1000000] [--seconds 10] [--connections 16]

Builds the demo city at --people, loads the catalog and the open legal-person class
(101002/00001, about people/10 rows) through aggregation, then measures:

- package_search (``q`` = a word of a dataset title, 10 rows, default facets) against Datasette's
  table JSON of ``resource_classes`` filtered by ``name__contains``;
- datastore_search by a business key (``filters={"credit_code": …}``, with the total) against
  Datasette's table JSON of the same staging table filtered by ``credit_code``;
- the dataset page (no baseline here; for scale, data.gov measured a CKAN 2.x dataset page at
  about 5 requests/s and its replacement at about 120).

Prints requests/s and p50/p99 for each and the ratio citydata/Datasette."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from share import _port, _wait, datasette, measure, serve_citydata  # noqa: E402  (the load generator)

LEGAL = "101002/00001"


def build(url: str, people: int, work: Path) -> tuple[list[str], list[str]]:
    """The city's catalog and its open legal-person file; returns title words and credit codes."""
    from sqlalchemy import text

    from citydata.catalog.service import import_catalog
    from citydata.db.engine import Store
    from citydata.demo.generate import generate
    from citydata.ingest.service import ingest
    from citydata.migrations import upgrade
    from citydata.opendata.service import Catalogue

    store = Store(url)
    upgrade(store.engine)
    city = work / "city"
    generate(city, people, seed=1, as_of=date(2026, 12, 4))
    manifest = json.loads((city / "manifest.json").read_text(encoding="utf-8"))
    with store.session() as session:
        import_catalog(session, city / "catalog.json")
    entry = next(
        f for f in manifest["files"] if f["class_code"] == LEGAL and f["expect"] == "accept"
    )
    report = ingest(store, city / entry["path"], LEGAL, encoding=entry["encoding"])
    print(f"ingested {report.rows_accepted:,} legal persons ({report.status})", flush=True)
    datasets = Catalogue(store).datasets()
    words = sorted({w for ds in datasets.values() for w in ds.tags})
    with store.session() as session:
        codes = list(
            session.execute(text("SELECT credit_code FROM stg_101002_00001 LIMIT 20000")).scalars()
        )
    store.engine.dispose()
    return words, codes


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def _line(name: str, ours: dict, theirs: dict | None) -> None:
    text = f"{name:<18} citydata {ours['rps']:8.1f} req/s  p50 {ours['p50_ms']:6.1f} ms  p99 {ours['p99_ms']:6.1f} ms"
    if theirs:
        text += (
            f"  | Datasette {theirs['rps']:8.1f} req/s  p50 {theirs['p50_ms']:6.1f} ms"
            f"  p99 {theirs['p99_ms']:6.1f} ms  | ratio {ours['rps'] / theirs['rps']:.2f}"
        )
    text += f"  (statuses {ours['statuses']}" + (f" / {theirs['statuses']})" if theirs else ")")
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citydata-bench-open-") as tmp:
        work = Path(tmp)
        db = work / "citydata.db"
        url = f"sqlite:///{db}"
        started = time.perf_counter()
        words, codes = build(url, args.people, work)
        print(f"built in {time.perf_counter() - started:.1f} s", flush=True)
        ours_port, theirs_port = _port(), _port()
        # The per-IP limit would stop a load test.
        ours = serve_citydata(ours_port, url, CITYDATA_OPEN_RATE=str(10**9))
        theirs = subprocess.Popen(
            [str(datasette()), "serve", str(db), "--port", str(theirs_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(ours_port, "/healthz")
            _wait(theirs_port, "/-/versions.json")
            rng = random.Random(5)
            picked_words = [rng.choice(words) for _ in range(2000)]
            q = urllib.parse.quote
            runs = {
                "package_search": (
                    [_get(f"/api/3/action/package_search?q={q(w)}&rows=10") for w in picked_words],
                    [
                        _get(f"/citydata/resource_classes.json?name__contains={q(w)}&_size=10")
                        for w in picked_words
                    ],
                ),
                "datastore_search": (
                    [
                        _get(
                            "/api/3/action/datastore_search?resource_id=101002-00001-csv&filters="
                            + q(json.dumps({"credit_code": c}))
                        )
                        for c in codes
                    ],
                    [_get(f"/citydata/stg_101002_00001.json?credit_code={c}") for c in codes],
                ),
                "dataset page": ([_get("/open/dataset/101002-00001")], None),
            }
            for name, (mine, baseline) in runs.items():
                a = measure(ours_port, mine, args.seconds, args.connections, work)
                b = (
                    measure(theirs_port, baseline, args.seconds, args.connections, work)
                    if baseline
                    else None
                )
                _line(name, a, b)
        finally:
            ours.terminate()
            theirs.terminate()
            ours.wait()
            theirs.wait()


if __name__ == "__main__":
    main()
