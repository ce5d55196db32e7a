"""Benchmark: reads on a streaming replica while the primary takes a batch.

    python bench/replica.py [--people 200000] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Starts a replica of the PostgreSQL server on port 5434 (tests/replica.py: pg_basebackup -R),
loads a demo city's population register into a scratch database and resolves it, then looks
people up by ID number — the sharing gateway's statement — on the primary and on the replica
(the baseline ratio), and again on the replica while the primary ingests and resolves a second
register of the same size. Prints lookups/s, p50/p99, the replica's largest lag (bytes of WAL,
seconds) seen during the batch and how long it took to catch up afterwards."""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _replica_helper():
    """tests/replica.py, which makes the replica (this file's own name hides it from import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pg_replica", ROOT / "tests" / "replica.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pg_replica"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _lookups(store, keys: list[str], seconds: float, replica: bool) -> tuple[float, float, float]:
    """(lookups/s, p50 ms, p99 ms) of one thread looking keys up for ``seconds``."""
    from sqlalchemy import text

    statement = text("SELECT master_id, name, phone FROM base_population WHERE key = :k")
    latencies = []
    until = time.perf_counter() + seconds
    i = 0
    session_of = store.read_session if replica else store.session
    with session_of() as session:
        while time.perf_counter() < until:
            started = time.perf_counter()
            session.execute(statement, {"k": keys[i % len(keys)]}).all()
            latencies.append(time.perf_counter() - started)
            session.rollback()  # a fresh snapshot per lookup, as each sharing call has
            i += 1
    latencies.sort()
    return (
        len(latencies) / seconds,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    from scratch import scratch_database
    from sqlalchemy import text

    from citydata.bases import service as bases
    from citydata.catalog.service import import_catalog
    from citydata.db.engine import Store
    from citydata.db.replica import replica_lag
    from citydata.demo.generate import generate
    from citydata.ingest.service import ingest
    from citydata.migrations import upgrade

    replica = _replica_helper()
    server = replica.start(args.postgres)
    url = scratch_database(args.postgres, "citydata_bench_replica", create=True)
    try:
        with tempfile.TemporaryDirectory() as folder:
            city = Path(folder) / "city"
            manifest = generate(city, args.people, seed=2020)
            primary = Store(url)
            upgrade(primary.engine)
            with primary.session() as session:
                import_catalog(session, city / "catalog.json")
            household = next(f for f in manifest["files"] if f["class_code"] == "101001/00001")
            ingest(
                primary, city / household["path"], "101001/00001", encoding=household["encoding"]
            )
            bases.resolve(primary, "population")
            replica.wait_for_database(server, "citydata_bench_replica")
            store = Store(url, server.url("citydata_bench_replica"))
            while replica_lag(store)["lag_bytes"]:
                time.sleep(0.1)
            with primary.session() as session:
                keys = session.scalars(
                    text("SELECT key FROM base_population WHERE key IS NOT NULL")
                ).all()
            on_primary = _lookups(store, keys, args.seconds, replica=False)
            on_replica = _lookups(store, keys, args.seconds, replica=True)

            # a second register of the same size, appended and resolved on the primary
            social = next(f for f in manifest["files"] if f["class_code"] == "101001/00002")
            worst = {"bytes": 0, "seconds": 0.0}
            done = threading.Event()

            def batch() -> None:
                started = time.perf_counter()
                ingest(primary, city / social["path"], "101001/00002", encoding=social["encoding"])
                bases.resolve(primary, "population")
                worst["batch_seconds"] = time.perf_counter() - started
                done.set()

            def watch() -> None:
                while not done.is_set():
                    lag = replica_lag(store)
                    worst["bytes"] = max(worst["bytes"], lag.get("lag_bytes") or 0)
                    worst["seconds"] = max(worst["seconds"], lag.get("lag_seconds") or 0.0)
                    time.sleep(0.05)

            threads = [threading.Thread(target=batch), threading.Thread(target=watch)]
            for t in threads:
                t.start()
            during = _lookups(store, keys, args.seconds, replica=True)
            threads[0].join()
            finished = time.perf_counter()
            while replica_lag(store)["lag_bytes"]:
                time.sleep(0.05)
            caught_up = time.perf_counter() - finished
            threads[1].join()
            store.dispose()
            primary.dispose()
    finally:
        scratch_database(args.postgres, "citydata_bench_replica", create=False)
        server.stop()

    def line(name, figures):
        rate, p50, p99 = figures
        return f"  {name:<34} {rate:9,.0f} lookups/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"

    print(f"{args.people:,} people, one thread, {args.seconds:g} s each:")
    print(line("on the primary (baseline)", on_primary))
    print(line("on the replica", on_replica))
    print(line("on the replica, primary in a batch", during))
    print(
        f"  replica/primary lookups/s {on_replica[0] / on_primary[0]:.2f}; during the batch "
        f"({worst['batch_seconds']:.1f} s, one transaction) the replica was at most "
        f"{worst['bytes']:,} bytes of WAL behind (its lag_seconds bound reached "
        f"{worst['seconds']:.2f} s) and showed the batch {caught_up:.2f} s after it committed"
    )


if __name__ == "__main__":
    main()
