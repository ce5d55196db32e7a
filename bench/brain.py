"""Benchmark: the cockpit (一脑通用) on a loaded demo city.

1. Each tile read from its summary, cold (a new engine: its first connection and read) and warm
   (the median of repeated reads), each against the bare query the summary replaces (the tile's
   summary query run with nothing shared, best of three). Goal at 1 M people: cold < 200 ms,
   warm < 20 ms.
2. The page: the staff cockpit's HTML as the server answers it (cold: a new app; warm), and —
   with Debian's chromium — the page ready in a browser at 1366×768 (every tile drawn), each
   against the sum of the bare queries its tiles would have run. Goal: ready < 1 s.
3. What keeping summaries fresh adds: a batch commits (the population file again, replacing
   the class) and a resolution run ends; the refresh of the tiles they made stale is timed and
   printed with its ratio to the batch or the run, and to the bare queries it re-runs.

    python bench/brain.py [--people 2000] [--reads 20] [--no-browser]
                          [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

The city is generated and loaded by the demo (``citydata demo load``) into a scratch database;
the lead runs it at --people 1000000."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from scratch import scratch_database  # bench/scratch.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
BENCH_DAY = date(2026, 12, 4)  # the demo's as-of: the same city every run
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def load_city(people: int, folder: Path, url: str) -> None:
    from citydata import cli_common
    from citydata.db.engine import Store
    from citydata.demo.cli import load
    from citydata.demo.generate import generate
    from citydata.migrations import upgrade

    started = time.perf_counter()
    generate(folder / "city", people, seed=2020, as_of=BENCH_DAY)
    store = Store(url)
    upgrade(store.engine)
    store.engine.dispose()
    os.environ["CITYDATA_DATABASE_URL"] = url
    os.environ["CITYDATA_KEY_FILE"] = str(folder / "secret.keys")
    cli_common.store.cache_clear()
    load(folder / "city")
    print(
        f"demo city of {people} people loaded in {time.perf_counter() - started:.0f} s", flush=True
    )


def bare(store, tile, now) -> float:
    """The tile's summary query with nothing shared: what a viewer would wait for without it."""
    from citydata.brain.queries import Context
    from citydata.brain.summaries import compute

    best = float("inf")
    for _ in range(3):
        with store.session() as session:
            started = time.perf_counter()
            compute(Context(session, now), tile)
            best = min(best, time.perf_counter() - started)
    return best


def tiles_bench(url: str, now, reads: int) -> tuple[dict, dict]:
    from citydata.brain import service, spec, summaries
    from citydata.db.engine import Store

    store = Store(url)
    service.refresh(store, now, force=True)  # every summary there, as after the server's start
    bares, rows = {}, {}
    for tile in spec.tiles().values():
        bares[tile.name] = bare(store, tile, now)
        cold_store = Store(url)
        started = time.perf_counter()
        with cold_store.session() as session:
            reading = summaries.read(session, tile, now)
        cold = time.perf_counter() - started
        cold_store.engine.dispose()
        assert reading.from_summary, tile.name
        warm = []
        for _ in range(reads):
            started = time.perf_counter()
            with store.session() as session:
                summaries.read(session, tile, now)
            warm.append(time.perf_counter() - started)
        rows[tile.name] = {"cold": cold, "warm": statistics.median(warm)}
    store.engine.dispose()
    print(f"\n{'tile':24} {'bare ms':>9} {'cold ms':>9} {'ratio':>7} {'warm ms':>9} {'ratio':>7}")
    for name, r in rows.items():
        b = bares[name]
        print(
            f"{name:24} {ms(b):9.1f} {ms(r['cold']):9.1f} {r['cold'] / b:7.3f} "
            f"{ms(r['warm']):9.2f} {r['warm'] / b:7.4f}"
        )
    worst_cold = max(r["cold"] for r in rows.values())
    worst_warm = max(r["warm"] for r in rows.values())
    print(
        f"slowest tile from its summary: cold {ms(worst_cold):.1f} ms, warm {ms(worst_warm):.2f} ms"
    )
    return bares, rows


def page_bench(url: str, at: float, bares: dict, browser: bool) -> None:
    from fastapi.testclient import TestClient

    from citydata.accounts.service import create_user
    from citydata.app import create_app
    from citydata.brain import spec
    from citydata.config import Settings
    from citydata.db.engine import Store

    store = Store(url)
    with store.session() as session:
        create_user(session, "bench_chief", "bench-password-1", "admin", None)
    settings = Settings(database_url=url, secret_key="bench", brain_seconds=0)
    staff_bare = sum(bares.values())

    def login(client) -> None:
        import re

        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        client.post(
            "/login",
            data={"username": "bench_chief", "password": "bench-password-1", "csrf": token},
        )

    app = create_app(store, settings, clock=lambda: at)
    with TestClient(app) as client:
        login(client)
        started = time.perf_counter()
        assert client.get("/brain").status_code == 200
        cold = time.perf_counter() - started
        warm = []
        for _ in range(10):
            started = time.perf_counter()
            client.get("/brain")
            warm.append(time.perf_counter() - started)
    print(
        f"\nthe staff cockpit's HTML ({len(spec.tiles())} tiles): cold {ms(cold):.1f} ms, "
        f"warm {ms(statistics.median(warm)):.1f} ms; its tiles' bare queries {ms(staff_bare):.0f} ms "
        f"(ratio {cold / staff_bare:.3f} cold, {statistics.median(warm) / staff_bare:.4f} warm)"
    )
    if not browser or not Path(CHROMIUM).exists():
        print("(no browser measure: --no-browser, or Debian's chromium missing)")
        return
    import uvicorn
    from playwright.sync_api import sync_playwright

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(store, settings, clock=lambda: at),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            context = chromium.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.goto(f"{base}/login?next=/")
            page.fill("input[name=username]", "bench_chief")
            page.fill("input[name=password]", "bench-password-1")
            page.click("main button")
            page.wait_for_url(f"{base}/")
            readies = []
            for _ in range(5):
                started = time.perf_counter()
                page.goto(f"{base}/brain")
                page.wait_for_selector("#cockpit[data-state=ready]")
                readies.append(time.perf_counter() - started)
            chromium.close()
        ready = statistics.median(readies)
        print(
            f"page ready in the browser (1366×768, every tile drawn): {ms(ready):.0f} ms "
            f"(median of 5; ratio to its tiles' bare queries {ready / staff_bare:.3f})"
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    store.engine.dispose()


def freshness_bench(url: str, folder: Path, now) -> None:
    from citydata.bases.service import resolve
    from citydata.brain import service, spec
    from citydata.db.engine import Store
    from citydata.ingest.service import ingest

    store = Store(url)
    manifest = json.loads((folder / "city" / "manifest.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if f["class_code"] == "101001/00001")
    tiles = spec.tiles()

    def stale_bare(names: list[str]) -> float:
        return sum(bare(store, tiles[n], now) for n in names)

    started = time.perf_counter()
    report = ingest(
        store,
        folder / "city" / entry["path"],
        entry["class_code"],
        entry["unit"],
        mode="replace",  # the same rows again: a batch of the population file's size
        encoding=entry["encoding"],
    )
    batch = time.perf_counter() - started
    started = time.perf_counter()
    done = service.refresh(store, now)
    refresh = time.perf_counter() - started
    names = [d.tile for d in done]
    print(
        f"\na batch of {report.rows_read} rows: {ms(batch):.0f} ms; refreshing the {len(names)} "
        f"summaries it made stale: {ms(refresh):.0f} ms (ratio to the batch {refresh / batch:.3f}; "
        f"to their bare queries {refresh / stale_bare(names):.3f})"
    )
    started = time.perf_counter()
    run = resolve(store, "population")
    run_time = time.perf_counter() - started
    started = time.perf_counter()
    done = service.refresh(store, now)
    refresh = time.perf_counter() - started
    names = [d.tile for d in done]
    print(
        f"a resolution run ({run.rows_resolved} rows): {ms(run_time):.0f} ms; refreshing the "
        f"{len(names)} summaries it made stale: {ms(refresh):.0f} ms (ratio to the run "
        f"{refresh / run_time:.3f}; to their bare queries {refresh / stale_bare(names):.3f})"
    )
    store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--postgres", default="")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from citydata.clock import moment

    with tempfile.TemporaryDirectory(prefix="bench-brain-") as tmp:
        folder = Path(tmp)
        if args.postgres:
            url = scratch_database(args.postgres, "bench_brain", create=True)
        else:
            url = f"sqlite:///{folder / 'city.db'}"
        try:
            load_city(args.people, folder, url)
            at = time.time() + 1  # the app's clock: just after the load (its batches are now)
            now = moment(at)
            bares, _ = tiles_bench(url, now, args.reads)
            page_bench(url, at, bares, not args.no_browser)
            freshness_bench(url, folder, now)
        finally:
            if args.postgres:
                scratch_database(args.postgres, "bench_brain", create=False)


if __name__ == "__main__":
    main()
