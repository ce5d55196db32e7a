"""Several server processes behave as one: `citydata serve --workers 4` on PostgreSQL (one
process on SQLite, which refuses more) hit by 300 concurrent calls answers a daily quota of 100,
a rate of 100 a minute and the open-data limit of 100 a minute exactly, lets exactly 5 wrong
passwords of one user be tried, sends each change notice once, and leaves one audit chain that
verifies, holding every call."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from citydata import cli_common
from citydata.audit import service as audit
from citydata.cli import app as cli
from citydata.clock import city_day, moment
from conftest import PG_URL
from sharing import PEOPLE, WHO, apply, approve, credential
from test_metrics import figure

WORKERS = 4 if PG_URL else 1
LOOKUP = b'{"keys": ["%s"], "fields": ["name"]}' % PEOPLE[0][0].encode()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(city, people, tmp_path):
    """`citydata serve --workers N` on the test database, as an operator starts it."""
    port = _port()
    env = {
        **os.environ,
        "CITYDATA_DATABASE_URL": city.url,
        "CITYDATA_DATA_DIR": str(tmp_path / "data"),
        "CITYDATA_OPEN_RATE": "100",
        # four pools within the test server's 100 connections (docs/deploy.md)
        "CITYDATA_DB_POOL": "12",
        "CITYDATA_WEBHOOK_SECONDS": "0.2",
        "CITYDATA_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    env.pop("CITYDATA_SECRET_KEY", None)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "citydata", "serve", "--port", str(port),
         "--workers", str(WORKERS)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # a busy 2-core machine starts four workers slowly
    try:
        # every worker is up, not just the first to answer
        while (tmp_path / "server.log").read_text().count("Application startup complete") < WORKERS:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text())
            time.sleep(0.2)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def burst(
    requests: list[tuple[str, str, dict, bytes]], concurrency: int = 60, source: str = "127.0.0.1"
) -> list[int | str]:
    """Send every request at once (``concurrency`` connections, from the loopback address
    ``source``); their status codes, or what went wrong. A connection per request: a kept-alive
    one the server closes as idle just as the next request goes out would lose that request."""

    async def go() -> list[int | str]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
        transport = httpx.AsyncHTTPTransport(local_address=source, limits=limits)
        async with httpx.AsyncClient(transport=transport, timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(method, url, headers, body):
                async with gate:
                    try:
                        answer = await client.request(method, url, headers=headers, content=body)
                    except httpx.HTTPError as exc:
                        return repr(exc)
                    return answer.status_code

            return await asyncio.gather(*(one(*r) for r in requests))

    return asyncio.run(go())


def lookups(base: str, secret_headers: dict[str, str], n: int) -> list[tuple]:
    headers = {"Authorization": secret_headers["Authorization"], **WHO}
    return [("POST", f"{base}/api/share/v1/lookup", headers, LOOKUP)] * n


def within_one(window: int, action) -> list[int]:
    """``action(attempt)``'s codes, run again with a fresh key if it straddled two of
    ``window``'s windows (then the limit was rightly given twice)."""
    for attempt in range(3):
        started = time.time()
        codes = action(attempt)
        if int(started // window) == int(time.time() // window):
            return codes
    pytest.skip("the burst kept straddling a window's edge")


def test_workers_count_a_daily_quota_a_rate_and_the_open_data_limit_exactly(server, city):
    quota = apply(city, daily_volume=100)
    approve(city, quota)
    daily = credential(city, quota)
    today = city_day(moment(time.time()))
    codes = burst(lookups(server, daily, 300))
    if city_day(moment(time.time())) != today:
        pytest.skip("the city's day turned over during the burst")
    assert (codes.count(200), codes.count(429)) == (100, 200), set(codes)

    rated = apply(city, daily_volume=10_000)
    approve(city, rated)
    fast = [credential(city, rated, rate_per_minute=100) for _ in range(3)]
    codes = within_one(60, lambda attempt: burst(lookups(server, fast[attempt], 300)))
    assert (codes.count(200), codes.count(429)) == (100, 200), set(codes)

    ckan = [("GET", f"{server}/api/3/action/package_list", {}, b"")] * 300
    codes = within_one(60, lambda attempt: burst(ckan, source=f"127.0.0.{2 + attempt}"))
    assert (codes.count(200), codes.count(429)) == (100, 200), set(codes)

    # one chain, no fork: every call above is in it, whatever its answer
    with city.session() as session:
        report = audit.verify(session)
        calls = dict(
            session.execute(
                select(audit.AuditEntry.key_id, func.count())
                .where(audit.AuditEntry.key_id.in_([daily["key_id"], fast[0]["key_id"]]))
                .group_by(audit.AuditEntry.key_id)
            ).all()
        )
        lookups_audited = session.scalar(
            select(func.count()).where(audit.AuditEntry.action == "lookup")
        )
    assert report.ok, report.problems[:5]
    assert calls[daily["key_id"]] == 300
    # every worker's requests are in the figures, whichever worker answers the scrape
    text = httpx.get(f"{server}/metrics").text
    lookup = {"method": "POST", "route": "/api/share/v1/lookup"}
    assert figure(text, "citydata_http_requests_total", **lookup) == lookups_audited
    assert calls[fast[0]["key_id"]] == 300


def test_workers_let_exactly_five_wrong_passwords_of_one_user_be_tried(server, city):
    with httpx.Client(base_url=server) as browser:
        page = browser.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    body = f"username=civil&password=wrong-guess&csrf={csrf}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies}
    codes = burst([("POST", f"{server}/login", headers, body)] * 300)
    assert (codes.count(401), codes.count(429)) == (5, 295), set(codes)


def test_the_workers_send_each_change_notice_once_and_the_chain_verifies(
    server, city, tmp_path, env
):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from sharing import add_person, granted

    wangwu = ("430102200001011233", "王五", "男", "2000-01-01", "430102", "芙蓉区", None)

    got: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    receiver = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        headers = granted(city)
        auth = {"Authorization": headers["Authorization"], **WHO}
        url = f"http://127.0.0.1:{receiver.server_port}/hook"
        made = httpx.post(f"{server}/api/share/v1/subscriptions", json={"url": url}, headers=auth)
        assert made.status_code == 200, made.text
        add_person(city, tmp_path, wangwu)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # ten rounds more: no worker sends it again
    finally:
        receiver.shutdown()
    assert len(got) == 1
    result = CliRunner().invoke(cli, ["audit", "verify"])
    cli_common.store.cache_clear()
    assert result.exit_code == 0, result.output


def test_sqlite_refuses_more_than_one_server_process(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    monkeypatch.setenv("CITYDATA_DATABASE_URL", url)
    cli_common.store.cache_clear()
    refused = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert refused.exit_code == 1 and "PostgreSQL" in refused.output
    from citydata.ops.service import ServingRefused, serving

    with serving(url, 1), pytest.raises(ServingRefused, match="另一个"):
        serving(url, 1)
    with serving(url, 1):  # let go with the first server: the next may start
        pass
    assert Path(f"{tmp_path / 'one.db'}.serving").exists()
