"""Benchmark: the service platform's docking API over HTTP, on a database holding a million cases.

1. Case creation — ``POST /api/services/v1/cases`` with a fresh ``Idempotency-Key`` each: the
   credential checked, the key claimed, the case numbered, its first status appended to the
   history, a webhook notice put in the outbox, the answer kept with the key, one commit —
   against a bare endpoint of the same server that inserts one row into the same database (the
   baseline, measured in the same run). Goal: creation >= 0.5x the bare endpoint.
2. A unit's queue — ``GET /api/services/v1/cases`` with filters (to accept; running with the
   overdue first; one matter; the next page by cursor) over 1 M cases. Goal: p50 < 20 ms.

    python bench/services.py [--cases 1000000] [--seconds 10] [--connections 4]
                             [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

The million cases are written straight into the table (what the demo loader does), spread over
the demo city's units, matters and stages; the server runs under uvicorn in its own process and
the load comes from a second process on loopback."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from scratch import scratch_database  # bench/scratch.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
UNIT = "csga"
BENCH_DAY = date(2026, 12, 4)  # the demo's as-of: the same city every run


# ---------------------------------------------------------------- the server, with a bare route


def bench_app():
    """The platform's app plus ``POST /bench/bare``: one row into one table, one commit."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert

    from citydata.app import create_app

    app = create_app()
    bare = Table(
        "bench_bare",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("key", String(64)),
        Column("body", String(2000)),
    )
    bare.create(app.state.store.engine, checkfirst=True)

    @app.post("/bench/bare", status_code=201)
    def bare_insert(body: dict):
        with app.state.store.session() as session:
            session.execute(insert(bare).values(key=str(body.get("k")), body=json.dumps(body)))
        return {"ok": True}

    return app


# ---------------------------------------------------------------- the load generator


async def _client(port: int, requests: list[bytes], until: float, latencies: list, statuses: dict):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in requests:
        if time.perf_counter() >= until:
            break
        started = time.perf_counter()
        writer.write(raw)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def _drive(port: int, requests: list[bytes], seconds: float, connections: int) -> dict:
    """Each connection sends its own share of ``requests`` (no two send the same one)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shares = [requests[i::connections] for i in range(connections)]
    start = time.perf_counter()
    await asyncio.gather(*[_client(port, s, start + seconds, latencies, statuses) for s in shares])
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "statuses": statuses,
    }


def drive_main(args: argparse.Namespace) -> None:
    requests = [bytes.fromhex(x) for x in Path(args.requests).read_text().split()]
    print(json.dumps(asyncio.run(_drive(args.port, requests, args.seconds, args.connections))))


def measure(port: int, requests: list[bytes], seconds: float, connections: int, work: Path) -> dict:
    path = work / f"requests-{time.monotonic_ns()}.txt"
    path.write_text("\n".join(r.hex() for r in requests))
    command = [sys.executable, __file__, "--drive", "--port", str(port), "--requests", str(path)]
    command += ["--seconds", str(seconds), "--connections", str(connections)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------- the database


def build(url: str, cases: int, work: Path) -> dict:
    """Catalog with the halls, the demo's matters, a docked system of ``UNIT``, ``cases`` cases."""
    import numpy as np
    import polars as pl
    from sqlalchemy import func, insert, select

    from citydata.accounts.service import ensure_admin
    from citydata.bases.publish import register_class
    from citydata.bases.spec import specs
    from citydata.catalog.models import Unit
    from citydata.catalog.service import import_catalog
    from citydata.db.base import advance_sequences
    from citydata.db.engine import Store
    from citydata.demo.generate import generate
    from citydata.demo.people import population
    from citydata.demo.services import matters_doc
    from citydata.keys import Keys
    from citydata.migrations import upgrade
    from citydata.services import docking, matters
    from citydata.services.identity import subject_hash
    from citydata.services.models import Case, Matter

    store = Store(url)
    upgrade(store.engine)
    generate(work / "city", 200, seed=1, as_of=BENCH_DAY)
    keys = Keys(("bench",))
    with store.session() as session:
        import_catalog(session, work / "city/catalog.json")
        admin, _ = ensure_admin(session, "benchmark-pw")
        for base in specs().values():  # the base classes the matters' materials name
            register_class(session, base)
        units = [
            {"code": u.code, "credit_code": u.credit_code} for u in session.scalars(select(Unit))
        ]
        matters.import_matters(session, matters_doc(units), publish_all=True)
        secret = docking.register(session, admin, UNIT, "基准测试系统").secret
    with store.session() as session:
        found = session.execute(select(Matter.id, Matter.impl_code, Matter.unit_code)).all()
        own = [code for _, code, unit in found if unit == UNIT]
        if session.scalar(select(func.count()).select_from(Case)) >= cases:
            return {"secret": secret, "matters": own}
    rng = np.random.default_rng(5)
    people = population(20_000, rng, BENCH_DAY)
    ids = np.array([m[0] for m in found])
    unit_of = np.array([m[2] for m in found])
    today = date.today()
    stages = np.array(["done", "in_progress", "to_accept", "paused"])
    statuses = {
        "done": "granted",
        "in_progress": "accepted",
        "to_accept": "submitted",
        "paused": "supplement_start",
    }
    chunk = 50_000
    for start in range(0, cases, chunk):
        n = min(chunk, cases - start)
        pick = rng.integers(0, len(ids), n)
        stage = stages[rng.choice(4, n, p=[0.7, 0.2, 0.05, 0.05])]
        person = rng.integers(0, len(people), n)
        subjects = people["id_number"].to_numpy()[person]
        opened = today - timedelta(days=400)
        rows = pl.DataFrame(
            {
                "id": np.arange(start + 1, start + n + 1),
                "matter_id": ids[pick],
                "unit_code": unit_of[pick],
                "stage": stage,
                "applicant_name": people["name"].to_numpy()[person],
                "deadline_offset": rng.integers(-60, 60, n),
            }
        )
        subject_rows = {s: (subject_hash(keys, s), keys.encrypt(s)) for s in set(subjects.tolist())}
        records = [
            {
                "id": r["id"],
                "case_no": f"430100{today:%Y%m%d}{r['id']:010d}",
                "matter_id": r["matter_id"],
                "unit_code": r["unit_code"],
                "applicant_kind": "person",
                "applicant_hash": subject_rows[s][0],
                "applicant_subject": subject_rows[s][1],
                "applicant_name": r["applicant_name"],
                "channel": "online",
                "source": "platform",
                "status": statuses[r["stage"]],
                "stage": r["stage"],
                "form": {},
                "prefilled": {},
                "submitted_on": opened,
                "accepted_on": None if r["stage"] == "to_accept" else opened,
                "deadline": None
                if r["stage"] == "to_accept"
                else today + timedelta(days=r["deadline_offset"]),
                "paused_days": 0,
                "visits": 0,
                "result": "granted" if r["stage"] == "done" else "",
            }
            for r, s in zip(rows.iter_rows(named=True), subjects.tolist(), strict=True)
        ]
        with store.session() as session:
            session.execute(insert(Case), records)
            advance_sequences(session, Case)
        print(f"  {start + n:,} cases", file=sys.stderr, flush=True)
    store.engine.dispose()
    return {"secret": secret, "matters": own}


def serve(port: int, url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "CITYDATA_DATABASE_URL": url,
        "CITYDATA_SECRET_KEY": "bench",
        "CITYDATA_WEBHOOK_SECONDS": "0",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services:bench_app",
        "--app-dir",
        str(ROOT / "bench"),
    ]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(command, env=env)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    import urllib.request

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not start")


def run(url: str, args: argparse.Namespace, work: Path) -> dict:
    import numpy as np

    from citydata.demo.people import population

    print(f"building {args.cases:,} cases on {url.split(':')[0]} …", file=sys.stderr)
    started = time.perf_counter()
    setup = build(url, args.cases, work)
    built = time.perf_counter() - started
    auth = {"Authorization": f"Bearer {setup['secret']}"}
    ids = population(5_000, np.random.default_rng(9), BENCH_DAY)["id_number"].to_list()
    total = 200_000  # more than any run can send: every request is a new one
    creates, bares = [], []
    for i in range(total):
        body = {
            "matter": setup["matters"][i % len(setup["matters"])],
            "applicant": {"kind": "person", "number": ids[i % len(ids)], "name": "测试"},
            "channel": "online",
            "form": {},
        }
        raw = json.dumps(body, ensure_ascii=False).encode()
        creates.append(
            _request(
                "POST",
                "/api/services/v1/cases",
                {**auth, "Idempotency-Key": f"bench-{time.time_ns()}-{i}"},
                raw,
            )
        )
        bares.append(_request("POST", "/bench/bare", {}, raw))
    matter = setup["matters"][0]
    queues = [
        "/api/services/v1/cases?stage=to_accept&limit=50",
        "/api/services/v1/cases?stage=in_progress&limit=50",
        "/api/services/v1/cases?stage=in_progress&overdue=true&limit=50",
        f"/api/services/v1/cases?stage=in_progress&matter={matter}&limit=50",
        "/api/services/v1/cases?stage=paused&limit=50",
    ]
    port = _port()
    server = serve(port, url)
    try:
        _wait(port)
        # warm both paths, then measure them alternately (bare, create, bare, create)
        measure(port, bares[-500:], 2, args.connections, work)
        measure(port, creates[-500:], 2, args.connections, work)
        half = total // 4
        bare = [
            measure(port, bares[k * half : (k + 1) * half], args.seconds, args.connections, work)
            for k in (0, 1)
        ]
        create = [
            measure(port, creates[k * half : (k + 1) * half], args.seconds, args.connections, work)
            for k in (0, 1)
        ]
        queue_requests = [_request("GET", q, auth) for q in queues] * 400
        queue = measure(port, queue_requests, args.seconds, 1, work)
        # the next page, by the cursor of the first
        import urllib.request

        first = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}{queues[1]}", headers=auth)
            ).read()
        )
        cursor = first["next_cursor"]
        deep = measure(
            port,
            [_request("GET", f"{queues[1]}&cursor={cursor}", auth)] * 2000,
            args.seconds / 2,
            1,
            work,
        )
    finally:
        server.terminate()
        server.wait()
    best = lambda runs: max(runs, key=lambda r: r["rps"])  # noqa: E731
    b, c = best(bare), best(create)
    return {
        "store": url.split(":")[0],
        "cases": args.cases,
        "build_s": round(built, 1),
        "bare": b,
        "create": c,
        "create_over_bare": round(c["rps"] / b["rps"], 3),
        "queue": queue,
        "queue_next_page": deep,
    }


SCRATCH = "citydata_bench_services"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--postgres", help="also run on this PostgreSQL server (a scratch database)"
    )
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive_main(args)
        return
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        urls = [f"sqlite:///{work / 'bench.db'}"]
        if args.postgres:
            urls.append(scratch_database(args.postgres, SCRATCH, create=True))
        for url in urls:
            try:
                result = run(url, args, work)
            finally:
                if url.startswith("postgresql"):
                    scratch_database(args.postgres, SCRATCH, create=False)
            print(json.dumps(result, ensure_ascii=False))
            ok = result["create_over_bare"] >= 0.5 and result["queue"]["p50_ms"] < 20
            print(
                f"{result['store']}: create {result['create']['rps']}/s vs bare {result['bare']['rps']}/s "
                f"= {result['create_over_bare']}x (goal >= 0.5); queue p50 {result['queue']['p50_ms']} ms "
                f"p99 {result['queue']['p99_ms']} ms at {args.cases:,} cases (goal p50 < 20 ms): "
                f"{'met' if ok else 'NOT met'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
