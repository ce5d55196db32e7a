"""Open data: what is published (and what never is), CKAN's Action API with its envelope and
limits, datastore search (ledger totals, keyset paging), the read-only SQL endpoint, streamed
downloads, the 有条件开放 application flow, DCAT-AP validated with SHACL, the ckanapi client
against a live server, and the per-IP limit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from rdflib import Graph, URIRef
from rdflib.namespace import DCTERMS
from sqlalchemy import func, select, table, text

from citydata.app import create_app
from citydata.catalog.models import ResourceClass
from citydata.catalog.service import import_catalog
from citydata.config import Settings
from citydata.ingest.service import ingest
from citydata.opendata import sql as open_sql
from citydata.opendata.service import Catalogue, OpenDataError
from citydata.share import service as share
from conftest import CHROMIUM, CHROMIUM_FLAGS, fixed_clock, make_user, need_chromium

LEGAL = "101002/00001"  # 普遍开放; legal_rep and legal_rep_id are personal
EVENTS = "101007/00001"  # 有条件开放
HOUSEHOLD = "101001/00001"  # 不予开放
SHAPES = Path(__file__).parent / "data" / "dcat-ap-3.0.1"


def _file(city: Path, code: str) -> Path:
    manifest = json.loads((city / "manifest.json").read_text(encoding="utf-8"))
    entry = next(
        f for f in manifest["files"] if f["class_code"] == code and f["expect"] == "accept"
    )
    return city / entry["path"]


@pytest.fixture
def portal(store, demo_catalog):
    city = demo_catalog.parent
    with store.session() as session:
        import_catalog(session, demo_catalog)
    for code in (LEGAL, EVENTS, HOUSEHOLD):
        report = ingest(store, _file(city, code), code)
        assert report.status == "committed", report.message
    return store


@pytest.fixture
def api(portal):
    app = create_app(portal, Settings(database_url=portal.url, secret_key="test-secret"))
    with TestClient(app) as c:
        yield c


def action(api, name: str, **params):
    response = api.post(f"/api/3/action/{name}", content=orjson.dumps(params))
    return response.status_code, response.json()


def _staged(store, code: str, column_name: str) -> list[str]:
    name = "stg_" + code.replace("/", "_")
    with store.session() as session:
        return [
            v for v in session.execute(text(f'SELECT "{column_name}" FROM {name}')).scalars() if v
        ]


# ---------------------------------------------------------------- what is published


def test_open_and_conditional_classes_are_published_closed_ones_never(api, portal):
    status, body = action(api, "package_list")
    assert status == 200 and body["success"] is True
    assert body["help"].endswith("help_show?name=package_list")
    with portal.session() as session:
        expected = set(
            session.scalars(
                select(ResourceClass.code).where(
                    ResourceClass.open_type.in_(["open", "conditional"])
                )
            )
        )
        closed = set(
            session.scalars(select(ResourceClass.code).where(ResourceClass.open_type == "closed"))
        )
    names = set(body["result"])
    assert names == {c.replace("/", "-") for c in expected}
    assert not names & {c.replace("/", "-") for c in closed}
    assert action(api, "package_show", id="101001-00001")[0] == 404


def test_personal_fields_are_not_in_open_data_at_all(api, portal):
    _, package = action(api, "package_show", id="101002-00001")
    extras = {e["key"]: e["value"] for e in package["result"]["extras"]}
    assert extras["withheld_fields"] == "2"
    _, found = action(api, "datastore_search", resource_id="101002-00001-csv", limit=5000)
    names = {f["id"] for f in found["result"]["fields"]}
    assert "legal_rep_id" not in names and "legal_rep" not in names and "credit_code" in names
    assert all("legal_rep_id" not in r for r in found["result"]["records"])
    secret_ids = _staged(portal, LEGAL, "legal_rep_id")
    assert len(secret_ids) > 10
    for fmt in ("csv", "json"):
        body = api.get(f"/open/dataset/101002-00001/download.{fmt}").content.decode("utf-8-sig")
        assert not [i for i in secret_ids if i in body]
    refused, answer = action(
        api, "datastore_search_sql", sql='SELECT legal_rep_id FROM "101002-00001-csv"'
    )
    assert refused == 409 and answer["success"] is False
    assert (
        action(api, "datastore_search", resource_id="101002-00001-csv", fields=["legal_rep"])[0]
        == 409
    )


# ---------------------------------------------------------------- package_search


def test_package_search_finds_chinese_substrings_filters_facets_and_pages(api):
    _, body = action(api, "package_search", q="市场主体")
    assert "101002-00001" in [p["name"] for p in body["result"]["results"]]
    _, body = action(
        api, "package_search", q="许可", rows=1000, **{"facet.field": ["organization"]}
    )
    result = body["result"]
    assert result["count"] == len(result["results"]) > 5
    assert all(
        "许可" in p["title"] + p["notes"] + " ".join(t["name"] for t in p["tags"])
        for p in result["results"]
    )
    orgs = result["facets"]["organization"]
    assert sum(orgs.values()) == result["count"]
    police = next(iter(orgs))
    _, narrowed = action(api, "package_search", q="许可", fq=f"organization:{police}")
    assert narrowed["result"]["count"] == orgs[police]
    assert {p["owner_org"] for p in narrowed["result"]["results"]} == {police}
    _, everything = action(api, "package_search", rows=5000)
    assert len(everything["result"]["results"]) == min(everything["result"]["count"], 1000)
    _, first = action(api, "package_search", rows=10, start=0, sort="name asc")
    _, second = action(api, "package_search", rows=10, start=10, sort="name asc")
    a = [p["name"] for p in first["result"]["results"]]
    b = [p["name"] for p in second["result"]["results"]]
    assert a == sorted(a) and not set(a) & set(b) and a[-1] < b[0]
    status, error = action(api, "package_search", fq="secret:1")
    assert status == 409 and error["error"]["__type"] == "Validation Error"
    via_get = api.get('/api/3/action/package_search?q=许可&facet.field=["groups"]&rows=2').json()
    assert via_get["result"]["count"] == result["count"] and len(via_get["result"]["results"]) == 2
    assert "groups" in via_get["result"]["search_facets"]


def test_ckan_errors_have_ckans_envelope_and_codes(api):
    status, body = action(api, "package_show", id="nothing-here")
    assert status == 404 and body["success"] is False
    assert body["error"]["__type"] == "Not Found Error"
    status, body = action(api, "no_such_action")
    assert status == 400 and "Action name not known" in body["error"]["message"]
    response = api.post("/api/3/action/package_search", content=b"{not json")
    assert response.status_code == 400 and response.json()["success"] is False


# ---------------------------------------------------------------- datastore


def test_datastore_total_comes_from_the_batch_ledger_and_stays_right(api, portal, tmp_path):
    def total():
        return action(api, "datastore_search", resource_id="101002-00001-csv", limit=0)[1][
            "result"
        ]["total"]

    def counted():
        with portal.session() as session:
            return session.scalar(select(func.count()).select_from(table("stg_101002_00001")))

    assert total() == counted() > 10
    first = action(api, "datastore_search", resource_id="101002-00001-csv", limit=3)[1]["result"]
    gone = [r["credit_code"] for r in first["records"][:2]]
    path = tmp_path / "gone.csv"
    path.write_text("统一社会信用代码\n" + "\n".join(gone) + "\n", encoding="utf-8")
    report = ingest(portal, path, LEGAL, mode="delete")
    assert report.status == "committed" and report.rows_removed >= 2
    assert total() == counted() == first["total"] - report.rows_removed


def test_keyset_paging_walks_the_table_like_offsets(api):
    seen, cursor = [], None
    while True:
        params = {"resource_id": "101002-00001-csv", "limit": 70}
        if cursor:
            params["next_page"] = cursor
        result = action(api, "datastore_search", **params)[1]["result"]
        seen += [r["_id"] for r in result["records"]]
        cursor = result["next_page"]
        if not cursor:
            break
    total = result["total"]
    by_offset = []
    for offset in range(0, total, 500):
        page = action(
            api, "datastore_search", resource_id="101002-00001-csv", limit=500, offset=offset
        )[1]["result"]
        by_offset += [r["_id"] for r in page["records"]]
    assert seen == by_offset and len(seen) == total == len(set(seen))
    one = action(api, "datastore_search", resource_id="101002-00001-csv", filters={"_id": seen[5]})
    assert [r["_id"] for r in one[1]["result"]["records"]] == [seen[5]]


def test_datastore_filters_q_sort_and_bad_input(api):
    _, all_rows = action(api, "datastore_search", resource_id="101002-00001-csv", limit=5000)
    records = all_rows["result"]["records"]
    status_value = records[0]["status"]
    _, filtered = action(
        api,
        "datastore_search",
        resource_id="101002-00001-json",
        filters={"status": status_value},
        fields=["credit_code", "status"],
        sort="credit_code desc",
        limit=5000,
    )
    result = filtered["result"]
    assert result["total"] == sum(1 for r in records if r["status"] == status_value)
    assert all(set(r) == {"credit_code", "status"} for r in result["records"])
    codes = [r["credit_code"] for r in result["records"]]
    assert codes == sorted(codes, reverse=True)
    word = records[0]["name"][2:5]
    _, searched = action(api, "datastore_search", resource_id="101002-00001-csv", q=word)
    assert searched["result"]["total"] == sum(
        1 for r in records if any(word in str(v) for k, v in r.items() if k != "_id")
    )
    assert action(api, "datastore_search", resource_id="nope-csv")[0] == 404
    assert (
        action(api, "datastore_search", resource_id="101002-00001-csv", filters={"x": 1})[0] == 409
    )
    assert action(api, "datastore_search", resource_id="101002-00001-csv", limit=-1)[0] == 409


# ---------------------------------------------------------------- SQL


def test_sql_reads_published_tables_only_and_never_writes(api, portal):
    before = _staged(portal, LEGAL, "credit_code")
    status, ok = action(
        api,
        "datastore_search_sql",
        sql='SELECT status, count(*) AS n FROM "101002-00001-csv" GROUP BY status ORDER BY n DESC',
    )
    assert status == 200
    assert sum(r["n"] for r in ok["result"]["records"]) == len(before)
    attempts = [
        'DELETE FROM "101002-00001-csv"',
        'UPDATE "101002-00001-csv" SET status = 1',
        'DROP TABLE "101002-00001-csv"',
        'SELECT 1; DELETE FROM "101002-00001-csv"',
        "SELECT * FROM users",
        "SELECT * FROM stg_101001_00001",
        'SELECT * FROM "101001-00001-csv"',  # not open
        "SELECT name FROM sqlite_master",
        "SELECT * FROM pg_catalog.pg_user",
        "SELECT load_extension('/tmp/x')",
        "SELECT pg_sleep(10)",
        'SELECT * INTO copy FROM "101002-00001-csv"',
        "SELECT * FROM \"101002-00001-csv\" WHERE name = '' OR 1=1; --",
        "",
    ]
    for attempt in attempts:
        status, body = action(api, "datastore_search_sql", sql=attempt)
        assert status == 409 and body["success"] is False, attempt
        assert "result" not in body
    assert _staged(portal, LEGAL, "credit_code") == before


def test_sql_is_stopped_after_its_time_limit(portal):
    catalogue = Catalogue(portal)
    with portal.session() as session:
        datasets = catalogue.datasets(session)
        endless = (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
        )
        with pytest.raises(OpenDataError, match="已停止"):
            open_sql.run(session, datasets, endless, time_limit=0.3)
        found = open_sql.run(session, datasets, 'SELECT count(*) AS n FROM "101002-00001"')
    assert found.records[0]["n"] == datasets["101002-00001"].rows


# ---------------------------------------------------------------- downloads


def test_downloads_stream_every_row_and_are_counted(api, portal):
    rows = len(_staged(portal, LEGAL, "credit_code"))
    raw = api.get("/open/dataset/101002-00001/download.csv")
    assert raw.status_code == 200 and raw.content.startswith(b"\xef\xbb\xbf")
    table_ = list(csv.reader(io.StringIO(raw.content.decode("utf-8-sig"))))
    assert table_[0][0] == "credit_code" and len(table_) == rows + 1
    as_json = api.get("/open/dataset/101002-00001/download.json").json()
    assert len(as_json) == rows and set(as_json[0]) == set(table_[0])
    book = load_workbook(io.BytesIO(api.get("/open/dataset/101002-00001/download.xlsx").content))
    assert book.active.max_row == rows + 1
    assert book.active.cell(1, 1).value == "统一社会信用代码"
    page = api.get("/open/dataset/101002-00001")
    assert page.status_code == 200
    assert "CSV 1" in page.text and "XLSX 1" in page.text and "JSON 1" in page.text


# ---------------------------------------------------------------- 有条件开放


def test_conditional_data_needs_an_approved_application(api, portal):
    assert action(api, "package_show", id="101007-00001")[1]["result"]["open_type"] == "conditional"
    status, body = action(api, "datastore_search", resource_id="101007-00001-csv")
    assert status == 403 and body["error"]["__type"] == "Authorization Error"
    assert api.get("/open/dataset/101007-00001/download.csv").status_code == 403
    page = api.get("/open/register")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    registered = api.post(
        "/open/register",
        data={
            "username": "reader",
            "display_name": "王研究",
            "password": "password123",
            "csrf": csrf,
        },
        follow_redirects=False,
    )
    assert registered.status_code == 303
    page = api.get("/open/dataset/101007-00001")  # signed in now: the form to apply
    assert "申请使用" in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    applied = api.post(
        "/open/dataset/101007-00001/apply",
        data={"purpose": "城市治理研究", "csrf": csrf},
        follow_redirects=False,
    )
    assert applied.status_code == 303
    assert api.get("/open/dataset/101007-00001/download.csv").status_code == 403  # pending
    make_user(portal, "grid", "steward", "cscg")
    with portal.session() as session:
        from citydata.accounts.models import User

        app_ = session.scalars(
            select(share.ShareApplication).where(share.ShareApplication.channel == "open")
        ).one()
        assert app_.consumer_code is None and app_.due_date is not None
        assert "reporter_phone" not in app_.fields  # personal data is never asked for
        user = session.scalars(select(User).where(User.username == "grid")).one()
        share.decide(session, user, app_.id, "approve", "同意")
    approved = api.get("/open/dataset/101007-00001/download.csv")
    assert approved.status_code == 200 and b"reporter_phone" not in approved.content
    anonymous = TestClient(api.app)
    assert anonymous.get("/open/dataset/101007-00001/download.csv").status_code == 403


# ---------------------------------------------------------------- DCAT


def _shapes() -> Graph:
    shapes = Graph()
    for name in ("shapes.ttl", "range.ttl"):
        shapes.parse(SHAPES / name)
    return shapes


def test_dcat_validates_against_the_dcat_ap_3_shapes(api):
    from pyshacl import validate

    shapes = _shapes()
    for ext, fmt in (("ttl", "turtle"), ("jsonld", "json-ld"), ("rdf", "xml")):
        graph = Graph().parse(data=api.get(f"/catalog.{ext}").text, format=fmt)
        conforms, _, report = validate(graph, shacl_graph=shapes, inference="none")
        assert conforms, report[:2000]
        datasets = set(
            graph.subjects(predicate=None, object=URIRef("http://www.w3.org/ns/dcat#Dataset"))
        )
        assert len(datasets) == min(100, len(action(api, "package_list")[1]["result"]))
    one = Graph().parse(data=api.get("/dataset/101002-00001.ttl").text, format="turtle")
    assert validate(one, shacl_graph=shapes, inference="none")[0]
    subject = URIRef("http://testserver/dataset/101002-00001")
    assert str(one.value(subject, DCTERMS.title)) == "市场主体登记信息"
    one.remove((subject, DCTERMS.title, None))  # the shapes must catch a missing title
    assert not validate(one, shacl_graph=shapes, inference="none")[0]


def test_dcat_catalogue_is_paged(api):
    total = len(action(api, "package_list")[1]["result"])
    dcat = "http://www.w3.org/ns/dcat#"
    seen = set()
    for page in (1, 2):
        graph = Graph().parse(data=api.get(f"/catalog.ttl?page={page}").text, format="turtle")
        seen |= set(graph.objects(URIRef("http://testserver/catalog"), URIRef(dcat + "dataset")))
    assert len(seen) == total


# ---------------------------------------------------------------- limits


def test_anonymous_calls_are_limited_per_ip(portal):
    app = create_app(
        portal,
        Settings(database_url=portal.url, secret_key="s", open_rate_per_minute=3),
        clock=fixed_clock,
    )
    with TestClient(app) as c:
        codes = [c.get("/api/3/action/site_read").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = c.get("/api/3/action/site_read")
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["success"] is False


# ---------------------------------------------------------------- a real CKAN client


def test_the_ckanapi_client_works_unchanged(portal, live_server):
    import ckanapi

    app = create_app(portal, Settings(database_url=portal.url, secret_key="test-secret"))
    portal_url = live_server(app)
    client = ckanapi.RemoteCKAN(portal_url, user_agent="citydata-test")
    assert client.action.site_read() is True
    found = client.action.package_search(q="市场主体", rows=5)
    assert "101002-00001" in [p["name"] for p in found["results"]]
    package = client.action.package_show(id="101002-00001")
    assert package["organization"]["name"] == package["owner_org"]
    resource = package["resources"][0]
    rows = client.action.datastore_search(resource_id=resource["id"], limit=3)
    assert len(rows["records"]) == 3 and rows["total"] > 3
    assert "legal_rep_id" not in rows["records"][0]
    orgs = client.action.organization_list(all_fields=True)
    assert package["owner_org"] in [o["name"] for o in orgs]
    with pytest.raises(ckanapi.NotFound):
        client.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.NotAuthorized):
        client.action.datastore_search(resource_id="101007-00001-csv")
    with pytest.raises(ckanapi.ValidationError):
        client.action.datastore_search_sql(sql='DELETE FROM "101002-00001-csv"')
    get_only = ckanapi.RemoteCKAN(portal_url, get_only=True)
    assert get_only.action.package_list() == client.action.package_list()


# ---------------------------------------------------------------- in a real browser


def test_portal_in_a_browser_search_facet_open_download(portal, live_server, tmp_path):
    from playwright.sync_api import sync_playwright

    need_chromium()

    app = create_app(portal, Settings(database_url=portal.url, secret_key="test-secret"))
    base = live_server(app)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{base}/open")
        everything = int(page.locator("#count").inner_text())
        page.fill("#search input[name=q]", "许可")
        page.press("#search input[name=q]", "Enter")
        page.wait_for_url("**q=*")
        found = int(page.locator("#count").inner_text())
        assert 0 < found < everything
        facet = page.locator("[data-facet=organization] li a").first
        expected = int(page.locator("[data-facet=organization] li span").first.inner_text())
        facet.click()
        page.wait_for_url("**organization=*")
        assert int(page.locator("#count").inner_text()) == expected
        page.goto(f"{base}/open?q=市场主体")
        page.locator(".dataset h2 a", has_text="市场主体登记信息").click()
        page.wait_for_url("**/open/dataset/101002-00001")
        assert page.locator("#title").inner_text() == "市场主体登记信息"
        assert page.locator("#preview tbody tr").count() > 0
        assert "legal_rep_id" not in page.locator("#fields").inner_text()
        with page.expect_download() as event:
            page.locator("a.button", has_text="CSV").click()
        saved = tmp_path / "download.csv"
        event.value.save_as(saved)
        browser.close()
    content = saved.read_bytes()
    assert content.startswith(b"\xef\xbb\xbfcredit_code,")
    assert content.count(b"\n") == len(_staged(portal, LEGAL, "credit_code")) + 1


def test_portal_speaks_chinese_by_default_and_english_as_a_setting(api):
    chinese = api.get("/open")
    assert "<h1>公共数据开放</h1>" in chinese.text and "元数据质量" in chinese.text
    api.cookies.set("lang", "en")
    english = api.get("/open")
    assert "<h1>Open data portal</h1>" in english.text and "Metadata quality" in english.text
