"""Every test gets its own empty, migrated database: a copied SQLite file by default, or a
scratch PostgreSQL database (cloned from a migrated template) when CITYDATA_TEST_DATABASE_URL is
set. Scratch databases are dropped afterwards."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import hypothesis
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citydata.config import Settings
from citydata.db.engine import Store
from citydata.migrations import upgrade

# In CI every property test runs the same examples each time (a fixed seed): a failure there
# is reproducible, and no run passes by luck. Locally they vary, to find new cases.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

SAMPLE = Path(__file__).parents[1] / "src/citydata/catalog/sample/catalog.json"
PG_URL = os.environ.get("CITYDATA_TEST_DATABASE_URL")
POPULATION_CLASSES = ("101001/00001", "101001/00002", "101001/00003", "101001/00004")
SEVEN_BASES = {
    "population",
    "legal_person",
    "spatial",
    "city_component",
    "housing",
    "economy",
    "event",
}


def _pg_admin():
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _pg_create(name: str, template: str | None = None) -> str:
    with _pg_admin().connect() as conn:
        suffix = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _pg_drop(name: str) -> None:
    with _pg_admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """A database migrated once; each test starts from a copy of it."""
    if PG_URL:
        name = f"citydata_tmpl_{uuid.uuid4().hex[:10]}"
        url = _pg_create(name)
        store = Store(url)
        upgrade(store.engine)
        store.engine.dispose()
        yield name
        _pg_drop(name)
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        store = Store(f"sqlite:///{path}")
        upgrade(store.engine)
        store.engine.dispose()
        yield path


@pytest.fixture
def db_url(template_db, tmp_path):
    if PG_URL:
        name = f"citydata_test_{uuid.uuid4().hex[:12]}"
        url = _pg_create(name, template=template_db)
        yield url
        _pg_drop(name)
    else:
        path = tmp_path / "citydata.db"
        shutil.copy(template_db, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def empty_url(tmp_path):
    """A database with nothing in it, not even the schema: where a backup is restored, or an
    old schema is made to be upgraded."""
    if PG_URL:
        name = f"citydata_empty_{uuid.uuid4().hex[:12]}"
        yield _pg_create(name)
        _pg_drop(name)
    else:
        (tmp_path / "empty").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'empty' / 'citydata.db'}"


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory) -> Path:
    """The demo city's catalog (37 units, 700 classes), generated once for the whole run."""
    from citydata.demo.generate import generate

    city = tmp_path_factory.mktemp("catalog-city")
    generate(city, 200, seed=3, as_of=DEMO_DAY)
    return city / "catalog.json"


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.engine.dispose()


@pytest.fixture
def env(db_url, monkeypatch, tmp_path):
    """CLI runs see the test database; the working folder is the test's own."""
    monkeypatch.setenv("CITYDATA_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    from citydata import cli_common

    cli_common.store.cache_clear()
    yield db_url
    cli_common.store.cache_clear()


@pytest.fixture
def sample_catalog(store):
    from citydata.catalog.service import import_catalog

    with store.session() as session:
        import_catalog(session, SAMPLE)
    return SAMPLE


# Rate windows and quotas run on the app's clock: tests fix it, so no minute or day can turn
# over between two calls that a test expects to share one.
NOON = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC).timestamp()


def fixed_clock() -> float:
    return NOON


TODAY = date.fromtimestamp(NOON)  # the app's day under the fixed clock, not the machine's
# The demo city generated for tests lives up to the fixed clock's day in Changsha.
DEMO_DAY = date(2026, 12, 4)


@pytest.fixture
def app(store):
    from citydata.app import create_app

    return create_app(
        store, Settings(database_url=store.url, secret_key="test-secret"), clock=fixed_clock
    )


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def make_user(store, username="admin", role="admin", unit=None, password="password123"):
    from citydata.accounts.service import create_user, issue_token

    with store.session() as session:
        user = create_user(session, username, password, role, unit)
        return issue_token(session, user, "test").plaintext


@pytest.fixture
def admin_token(store):
    return make_user(store)


@pytest.fixture
def live_server():
    """Serve an app on 127.0.0.1 from a thread; yields a function app -> base URL."""
    import socket
    import threading
    import time

    import uvicorn

    servers = []

    def start(app) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                proxy_headers=False,
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


# ---------------------------------------------------------------- a small population


@pytest.fixture
def city(store, demo_catalog, tmp_path):
    """The catalog, three people registered by the police and resolved into the population base."""
    import polars as pl

    from citydata.bases import service as bases
    from citydata.catalog.service import import_catalog
    from citydata.ingest.service import ingest
    from sharing import FIELDS, HOUSEHOLD, PEOPLE

    with store.session() as session:
        import_catalog(session, demo_catalog)
    path = tmp_path / "household.csv"
    pl.DataFrame(PEOPLE, schema=FIELDS, orient="row").write_csv(path)
    ingest(store, path, HOUSEHOLD)
    bases.resolve(store, "population")
    return store


@pytest.fixture
def people(city):
    """admin; the data bureau's steward (owner of the base classes); a civil-affairs clerk."""
    tokens = {
        "admin": make_user(city),
        "bureau": make_user(city, "bureau", "steward", "cssj"),
        "police": make_user(city, "police", "steward", "csga"),
        "civil": make_user(city, "civil", "consumer", "csmz"),
    }
    return {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_chromium() -> None:
    """Browser tests run on Debian's chromium. Missing, a local run skips them; CI fails, so a
    broken install can never pass for a green run."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (scripts/test)")
    pytest.skip("Debian's chromium is not installed")


# ---------------------------------------------------------------- a small demo city, loaded


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory):
    """A small demo city (600 people) generated and loaded once — catalog, every file through
    aggregation, resolution, a day of sharing, a year of cases and of events — into a database of
    its own. Tests read it; one that changes it must put back what it changed."""
    from citydata import cli_common
    from citydata.demo.cli import load
    from citydata.demo.generate import generate

    folder = tmp_path_factory.mktemp("demo-city")
    generate(folder / "city", 600, seed=5, as_of=DEMO_DAY)
    if PG_URL:
        name = f"citydata_city_{uuid.uuid4().hex[:10]}"
        url = _pg_create(name)
    else:
        url = f"sqlite:///{folder / 'city.db'}"
    store = Store(url)
    upgrade(store.engine)
    saved = {k: os.environ.get(k) for k in ("CITYDATA_DATABASE_URL", "CITYDATA_KEY_FILE")}
    os.environ["CITYDATA_DATABASE_URL"] = url
    os.environ["CITYDATA_KEY_FILE"] = str(folder / "secret.keys")
    cli_common.store.cache_clear()
    try:
        load(folder / "city")
        # The demo's batches and calls are stamped with the machine's time as they load: the
        # tests' app clock stands just after that (a fixed day would leave them in the future).
        store.loaded_at = time.time() + 1  # type: ignore[attr-defined]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        cli_common.store.cache_clear()
    yield store
    store.engine.dispose()
    if PG_URL:
        _pg_drop(name)


# ---------------------------------------------------------------- matching


@pytest.fixture(scope="module")
def population_files(tmp_path_factory):
    """The demo city's four population registers, with Chinese headers renamed to field names."""
    import json

    import polars as pl

    from citydata.demo.generate import generate
    from citydata.match.service import read_table

    city = tmp_path_factory.mktemp("city")
    manifest = generate(city, 1500, seed=11, as_of=DEMO_DAY)
    catalog = json.loads((city / "catalog.json").read_text())
    labels = {c["code"]: {f["label"]: f["name"] for f in c["fields"]} for c in catalog["classes"]}
    folder = tmp_path_factory.mktemp("inputs")
    paths = []
    for entry in manifest["files"]:
        if entry["class_code"] not in POPULATION_CLASSES:
            continue
        frame = read_table(city / entry["path"])
        frame = frame.rename(
            {k: v for k, v in labels[entry["class_code"]].items() if k in frame.columns}
        )
        frame = frame.with_row_index("rec", offset=1).with_columns(pl.col("rec").cast(pl.String))
        frame = frame.with_columns(
            pl.lit(None, pl.String).alias(c)
            for c in ("id_number", "name", "birth_date", "phone", "address")
            if c not in frame.columns
        )
        path = folder / f"{entry['class_code'].replace('/', '_')}.csv"
        frame.write_csv(path)
        paths.append((path, entry["path"]))
    truth = pl.read_parquet(city / "truth/rows.parquet")
    errors = pl.read_parquet(city / "truth/errors.parquet")
    return paths, truth, errors
