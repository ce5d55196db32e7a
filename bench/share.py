"""Benchmark: sharing lookups by ID number — credential check, grant check, masking and an audit
entry committed (hash-chained, group commit) before every answer — against Datasette serving the
same population table (row JSON by primary key), both driven from a second process on loopback.

    python bench/share.py [--people 1000000] [--seconds 15] [--connections 16]
                          [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
                          [--workers 1 2 4]

``--workers`` runs citydata with each number of worker processes in turn behind one port
(several need PostgreSQL, as ``citydata serve --workers`` does), against the same Datasette
figure; each line says how many audit entries that run wrote against the answers it gave.

The population base table is filled straight from the demo generator's people (resolving them is
what bench/resolve.py measures). Datasette is installed into its own virtual environment under
the system temp folder on first use. Prints requests/s and p50/p99 for both and the ratio
citydata/Datasette (target >= 1.0 with p99 < 50 ms; aim 3x)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DAY = date(2026, 12, 4)  # the demo's as-of: the same city every run
DATASETTE_VENV = Path(tempfile.gettempdir()) / "citydata-bench-datasette"


# ---------------------------------------------------------------- the load generator


async def _client(host: str, port: int, requests: list[bytes], until: float, latencies: list):
    reader, writer = await asyncio.open_connection(host, port)
    i = random.randrange(len(requests))
    statuses = {}
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(requests[i % len(requests)])
        i += 1
        status_line = await reader.readline()
        length, chunked = 0, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:  # Datasette streams its JSON
            while size := int((await reader.readline()).strip(), 16):
                await reader.readexactly(size + 2)
            await reader.readline()
        else:
            await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        code = int(status_line.split()[1])
        statuses[code] = statuses.get(code, 0) + 1
    writer.close()
    return statuses


async def _drive(host: str, port: int, requests: list[bytes], seconds: float, connections: int):
    latencies: list[float] = []
    warm = time.perf_counter() + 1.0
    await asyncio.gather(*[_client(host, port, requests, warm, []) for _ in range(connections)])
    start = time.perf_counter()
    results = await asyncio.gather(
        *[_client(host, port, requests, start + seconds, latencies) for _ in range(connections)]
    )
    elapsed = time.perf_counter() - start
    statuses: dict[int, int] = {}
    for r in results:
        for code, n in r.items():
            statuses[code] = statuses.get(code, 0) + n
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "statuses": statuses,
    }


def drive_main(args: argparse.Namespace) -> None:
    requests = [bytes.fromhex(line) for line in Path(args.requests).read_text().split()]
    result = asyncio.run(_drive("127.0.0.1", args.port, requests, args.seconds, args.connections))
    print(json.dumps(result))


# ---------------------------------------------------------------- setting up


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, path: str = "/", timeout: float = 60) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"server on {port} did not start")


def build(url: str, people: int, work: Path) -> tuple[str, list[tuple[int, str]]]:
    """Catalog, population base table, one approved application and its credential; returns the
    secret and (master id, ID number) pairs to look up."""
    import numpy as np
    import polars as pl
    from sqlalchemy import select

    from citydata.accounts.models import User
    from citydata.accounts.service import ensure_admin
    from citydata.bases import service as bases
    from citydata.bases.spec import spec
    from citydata.catalog.service import import_catalog
    from citydata.db.engine import Store
    from citydata.demo.generate import generate
    from citydata.demo.people import population
    from citydata.ingest import staging
    from citydata.migrations import upgrade
    from citydata.share import service

    store = Store(url)
    upgrade(store.engine)
    generate(work / "catalog-city", 200, seed=1, as_of=BENCH_DAY)
    base = spec("population")
    frame = population(people, np.random.default_rng(7), BENCH_DAY)
    frame = frame.select(
        pl.int_range(1, pl.len() + 1).alias("master_id"),
        pl.col("id_number").alias("key"),
        *[
            pl.col(a).cast(pl.String) if a in frame.columns else pl.lit(None, pl.String).alias(a)
            for a in base.attributes
        ],
        pl.lit(1).alias("version"),
    )
    with store.session() as session:
        import_catalog(session, work / "catalog-city/catalog.json")
        ensure_admin(session, "benchmark-pw")
        conn = session.connection()
        table = staging.create_or_extend(conn, bases.base_table(base))
        staging.insert_frame(conn, table, frame)
        bases.register_class(session, base)
    with store.session() as session:
        admin = session.scalar(select(User).where(User.role == "admin"))
        from datetime import date, timedelta

        app = service.apply(
            session,
            admin,
            consumer_code="csmz",
            class_code=dict(base.catalog)["class_code"],
            fields=["id_number", "name", "sex", "birth_date", "phone", "address"],
            purpose="基准测试",
            legal_basis="基准测试",
            system_name="bench",
            valid_until=date.today() + timedelta(days=30),
            daily_volume=10**9,
        )
        service.decide(session, admin, app.id, "approve")
        secret = service.issue_credential(session, admin, app.id, rate_per_minute=10**9).secret
    sample = frame.sample(min(people, 20000), seed=3).select("master_id", "key").rows()
    store.engine.dispose()
    return secret, sample


def serve_citydata(port: int, url: str, workers: int = 1, **env: str) -> subprocess.Popen:
    """citydata under uvicorn on 127.0.0.1:``port``, on the database at ``url``, with
    ``workers`` processes (their metrics added up as ``citydata serve --workers`` does)."""
    if workers > 1:
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "citydata.app:create_app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={
            **os.environ,
            "CITYDATA_DATABASE_URL": url,
            "CITYDATA_SECRET_KEY": "bench",
            **env,
        },
    )


def audited(url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from citydata.audit.models import AuditEntry

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(AuditEntry)).scalar() or 0
    engine.dispose()
    return count


def datasette() -> Path:
    exe = DATASETTE_VENV / "bin" / "datasette"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATASETTE_VENV)], check=True)
        subprocess.run([str(DATASETTE_VENV / "bin/pip"), "install", "-q", "datasette"], check=True)
    return exe


def sqlite_copy(url: str, work: Path) -> Path:
    """Datasette serves SQLite: on PostgreSQL runs the same rows are copied into a file."""
    if url.startswith("sqlite"):
        return Path(url.split("///", 1)[1])
    import sqlite3

    import polars as pl

    path = work / "datasette.db"
    from sqlalchemy import create_engine

    engine = create_engine(url)  # polars' own URI reader needs connectorx, not installed
    with engine.connect() as conn:
        frame = pl.read_database("SELECT * FROM base_population", conn)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        columns = frame.columns
        conn.execute(
            f"CREATE TABLE base_population ({', '.join(c + (' INTEGER PRIMARY KEY' if c == 'master_id' else '') for c in columns)})"
        )
        conn.executemany(
            f"INSERT INTO base_population VALUES ({', '.join('?' * len(columns))})", frame.rows()
        )
    return path


def measure(port: int, requests: list[bytes], seconds: float, connections: int, work: Path) -> dict:
    path = work / f"requests-{port}.txt"
    path.write_text("\n".join(r.hex() for r in requests))
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--drive",
            "--port",
            str(port),
            "--requests",
            str(path),
            "--seconds",
            str(seconds),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--postgres")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="citydata's worker processes, each in turn",
    )
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive_main(args)
        return
    if max(args.workers) > 1 and not args.postgres:
        raise SystemExit("--workers above 1 needs --postgres: SQLite is served by one process")

    with tempfile.TemporaryDirectory(prefix="citydata-bench-share-") as tmp:
        work = Path(tmp)
        url = args.postgres or f"sqlite:///{work / 'citydata.db'}"
        if args.postgres:
            from sqlalchemy import create_engine, text

            name = f"bench_share_{os.getpid()}"
            admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
        try:
            started = time.perf_counter()
            secret, sample = build(url, args.people, work)
            print(
                f"built {args.people:,} people in {time.perf_counter() - started:.1f} s", flush=True
            )

            theirs_port = _port()
            copy = sqlite_copy(url, work)  # once: a second copy would find its table there
            theirs = subprocess.Popen(
                [
                    str(datasette()),
                    "serve",
                    str(copy),
                    "--port",
                    str(theirs_port),
                    "--setting",
                    "sql_time_limit_ms",
                    "5000",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait(theirs_port, "/-/versions.json")
                db_name = copy.stem
                theirs_requests = [
                    f"GET /{db_name}/base_population/{master_id}.json HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                    for master_id, _ in sample
                ]
                b = measure(theirs_port, theirs_requests, args.seconds, args.connections, work)
            finally:
                theirs.terminate()
                theirs.wait()
            print(
                f"Datasette rows   : {b['rps']:>8} req/s  p50 {b['p50_ms']} ms  p99 {b['p99_ms']} ms  statuses {b['statuses']}"
            )
            ours_requests = []
            for _, key in sample:
                body = json.dumps(
                    {"keys": [key], "fields": ["name", "id_number", "sex", "birth_date", "phone"]}
                ).encode()
                ours_requests.append(
                    b"POST /api/share/v1/lookup HTTP/1.1\r\nHost: bench\r\n"
                    + f"Authorization: Bearer {secret}\r\nX-Citydata-User-Id: bench\r\nX-Citydata-Case-Id: BENCH-1\r\n".encode()
                    + b"Content-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            for workers in args.workers:
                ours_port = _port()
                before = audited(url)
                ours = serve_citydata(ours_port, url, workers)
                try:
                    _wait(ours_port, "/healthz")
                    time.sleep(1.0 * workers)  # every worker up, not just the first to answer
                    a = measure(ours_port, ours_requests, args.seconds, args.connections, work)
                finally:
                    ours.terminate()
                    ours.wait()
                written = audited(url) - before
                print(
                    f"citydata lookups ({workers} worker{'s' if workers > 1 else ''}): {a['rps']:>8} req/s  "
                    f"p50 {a['p50_ms']} ms  p99 {a['p99_ms']} ms  statuses {a['statuses']}  "
                    f"audit entries {written:,} (answers {a['requests']:,} + warm-up)"
                )
                print(
                    f"ratio citydata/Datasette with {workers}: {a['rps'] / b['rps']:.2f}  "
                    "(target >= 3.0 with p99 < 50 ms and every answer audited)"
                )
        finally:
            if args.postgres:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
