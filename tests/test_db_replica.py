"""Reads on a replica (CITYDATA_READ_DATABASE_URL): the rows sharing and open-data calls deliver
come from a PostgreSQL streaming replica started on this machine, while writes, audit entries,
callers' credentials and a consumer's reading of its own new application stay on the primary;
the replica's lag is measured. The store's read sessions refuse writes on any database."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from citydata.app import create_app
from citydata.audit.models import AuditEntry
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.db.replica import replica_lag
from conftest import PG_URL, fixed_clock, make_user
from sharing import FIELDS, PEOPLE, POPULATION, add_person, call, granted

LEGAL = "101002/00001"  # 普遍开放
NEWCOMER = ("430103200001010018", "王五", "男", "2000-01-01", "430103", "天心区书院路9号", None)


@pytest.fixture(scope="session")
def replica_server():
    """The replica cluster, once per run; skipped with the reason when it cannot be made."""
    if not PG_URL:
        pytest.skip("a streaming replica needs PostgreSQL (CITYDATA_TEST_DATABASE_URL)")
    import replica

    try:
        server = replica.start(PG_URL)
    except replica.Unavailable as exc:
        pytest.skip(f"no streaming replica here: {exc}")
    yield server
    server.stop()


def _caught_up(store: Store, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        lag = replica_lag(store)
        if lag.get("lag_bytes") == 0 or time.monotonic() > deadline:
            return lag
        time.sleep(0.1)


def _replay(server, paused: bool) -> None:
    admin = server.admin()
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()"))
    admin.dispose()


def test_lookups_come_from_the_replica_while_the_primary_takes_a_batch(
    replica_server, city, people, tmp_path
):
    import replica

    database = city.engine.url.database
    replica.wait_for_database(replica_server, database)
    store = Store(city.url, replica_server.url(database))
    assert _caught_up(store)["lag_bytes"] == 0
    app = create_app(
        store,
        Settings(database_url=store.url, read_database_url=store.read_url, secret_key="t"),
        clock=fixed_clock,
    )
    _replay(replica_server, paused=True)
    try:
        # Issued while the replica stands still: the credential exists on the primary only,
        # and the call is let in, so callers are checked there.
        headers = granted(city, fields=FIELDS, unmasked=["name"])
        body = {"class_code": POPULATION, "keys": [NEWCOMER[0], PEOPLE[0][0]], "fields": ["name"]}
        answers, errors = [], []

        def batch() -> None:
            try:
                add_person(city, tmp_path, NEWCOMER)  # ingest + resolve, on the primary
            except Exception as exc:  # pragma: no cover - shown by the assertion below
                errors.append(exc)

        with TestClient(app) as api:
            writer = threading.Thread(target=batch)
            writer.start()
            while writer.is_alive() or len(answers) < 5:
                answers.append(call(api, headers, "lookup", body))
            writer.join()
            assert not errors, errors
            assert all(a.status_code == 200 for a in answers), answers[-1].text
            # The newcomer is on the primary now, but every answer came from the replica.
            assert {tuple(r["name"] for r in a.json()["records"]) for a in answers} == {("张三",)}
            with city.session() as session:
                assert session.scalar(
                    text("SELECT count(*) FROM base_population WHERE id_number = :n"),
                    {"n": NEWCOMER[0]},
                )
                audited = session.scalar(select(func.count()).where(AuditEntry.action == "lookup"))
            assert audited == len(answers)  # every entry on the primary
            with store.read_session() as reading:  # and none has reached the replica yet
                assert reading.scalar(select(func.count()).select_from(AuditEntry)) == 0

            lag = replica_lag(store)
            assert lag["paused"] and lag["streaming"] and lag["lag_bytes"] > 0, lag
            assert lag["lag_seconds"] > 0, lag  # received, not replayed: reads there are old
            shown = api.get("/healthz/replica").json()
            assert shown["configured"] and shown["lag_bytes"] >= lag["lag_bytes"]
            assert "5434" not in str(shown) and "postgresql" not in str(shown)

            # A consumer reads the application it has just made: from the primary.
            clerk = {"Authorization": f"Bearer {make_user(city, 'clerk2', 'consumer', 'csmz')}"}
            made = api.post(
                "/api/v1/share/applications",
                json={
                    "class_code": POPULATION,
                    "fields": ["name"],
                    "purpose": "低保资格核查",
                    "legal_basis": "《社会救助暂行办法》第十一条",
                    "system_name": "低保审批系统",
                    "valid_until": "2027-12-31",
                },
                headers=clerk,
            )
            assert made.status_code == 201, made.text
            again = api.get(f"/api/v1/share/applications/{made.json()['id']}", headers=clerk)
            assert again.status_code == 200 and again.json()["fields"] == ["name"]

            _replay(replica_server, paused=False)
            caught_up = _caught_up(store)
            assert caught_up["lag_bytes"] == 0 and caught_up["lag_seconds"] == 0.0, caught_up
            now = call(api, headers, "lookup", body).json()["records"]
            assert sorted(r["name"] for r in now) == ["张三", "王五"]
    finally:
        _replay(replica_server, paused=False)
        store.dispose()


def test_open_data_rows_come_from_the_replica(replica_server, city, demo_catalog, tmp_path):
    """datastore_search reads the rows on the replica: a batch the primary has committed is
    not in the answer until the replica has replayed it (the catalogue itself, kept in memory,
    is read on the primary)."""
    import json

    import replica
    from citydata.ingest.service import ingest

    manifest = json.loads((demo_catalog.parent / "manifest.json").read_text(encoding="utf-8"))
    entry = next(
        f for f in manifest["files"] if f["class_code"] == LEGAL and f["expect"] == "accept"
    )
    ingest(city, demo_catalog.parent / entry["path"], LEGAL)
    database = city.engine.url.database
    replica.wait_for_database(replica_server, database)
    store = Store(city.url, replica_server.url(database))
    app = create_app(store, Settings(database_url=store.url, secret_key="t"), clock=fixed_clock)

    def rows(api) -> list[str]:
        got = api.get(
            "/api/3/action/datastore_search",
            params={"resource_id": "101002-00001-csv", "limit": 32000, "fields": "credit_code"},
        )
        assert got.status_code == 200, got.text
        return [r["credit_code"] for r in got.json()["result"]["records"]]

    try:
        with TestClient(app) as api:
            assert _caught_up(store)["lag_bytes"] == 0
            before = rows(api)
            assert len(before) > 10
            _replay(replica_server, paused=True)
            path = tmp_path / "gone.csv"
            path.write_text("统一社会信用代码\n" + "\n".join(before[:2]) + "\n", encoding="utf-8")
            assert ingest(city, path, LEGAL, mode="delete").rows_removed == 2
            assert rows(api) == before  # committed on the primary, not yet replayed
            _replay(replica_server, paused=False)
            assert _caught_up(store)["lag_bytes"] == 0
            assert rows(api) == before[2:]
    finally:
        _replay(replica_server, paused=False)
        store.dispose()


def test_read_sessions_refuse_writes_even_on_the_primary(store):
    """A read URL that names the primary by mistake still cannot take a write."""
    mistaken = Store(store.url, read_url=store.url)
    try:
        with (
            pytest.raises(Exception, match="read-only|readonly"),  # noqa: B017
            mistaken.read_session() as session,
        ):
            session.execute(text("CREATE TABLE replica_probe (x integer)"))
        with mistaken.session() as session:  # the primary's sessions still write
            session.execute(text("CREATE TABLE replica_probe (x integer)"))
    finally:
        mistaken.dispose()
    plain = Store(store.url)
    try:
        with plain.session() as session, plain.read_session(alongside=session) as reading:
            assert reading is session  # no replica: one connection per call, not two
        assert replica_lag(plain) == {"configured": False}
    finally:
        plain.dispose()


def test_the_replica_lag_figure_without_a_replica(client):
    assert client.get("/healthz/replica").json() == {"configured": False}
