"""一脑通用, the cockpit: tiles declared as data and refused when malformed; the domains mark their
data changed in the change's own transaction (a batch commits, a run ends, a case or an event
moves) and only the tiles computed from it go stale; a viewer reads summaries and waits for no
query; who sees which tile; every tile's figures against plain SQL over a small demo city; the
home page's figures defined; the base, unit, class and batch pictures."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import func, select, text

from brain_expected import EXPECTED, agrees, batches_daily, shown
from citydata.accounts.models import User
from citydata.audit.models import AuditEntry
from citydata.brain import service, spec, summaries
from citydata.brain.models import Summary
from citydata.brain.queries import Context, find
from citydata.clock import CITY_ZONE, moment
from citydata.config import Settings
from citydata.mechanisms import changes
from citydata.mechanisms.models import DataChange
from conftest import fixed_clock, make_user
from sharing import FIELDS, HOUSEHOLD
from test_grid import cells  # noqa: F401 - the fixture
from test_services import platform  # noqa: F401 - the fixture

NOON = moment(fixed_clock())


def _app(store, at: float | None = None):
    from citydata.app import create_app

    settings = Settings(database_url=store.url, secret_key="test-secret", brain_seconds=0)
    return create_app(store, settings, clock=(lambda: at) if at else fixed_clock)


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def _sign_in(client, username: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    answer = client.post(
        "/login",
        data={"username": username, "password": "password123", "csrf": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def _person(store, username: str, role: str, unit: str | None) -> None:
    """A user of the shared demo city (once; users are in no tile's figures)."""
    with store.session() as session:
        if session.scalar(select(User).where(User.username == username)):
            return
    make_user(store, username, role, unit)


def _held(store) -> dict[str, Summary]:
    with store.session() as session:
        return {s.tile: s for s in session.scalars(select(Summary))}


# ---------------------------------------------------------------- declarations


def test_every_tile_is_declared_whole_with_its_query_and_its_english():
    from citydata.web.i18n import EN

    tiles = spec.tiles()
    assert len(tiles) >= 25
    sections = {t.section for t in tiles.values()}
    assert {"aggregation", "bases", "sharing", "opendata", "services", "grid"} <= sections
    for tile in tiles.values():
        assert callable(find(tile.query)), tile.name
        assert tile.definition.endswith("。"), tile.name  # one sentence, said
        for words in (tile.title, tile.definition, *tile.figures.values()):
            assert words in EN, (tile.name, words)
    for section in spec.sections():
        assert section.title in EN
    # the big screen has each of its three columns filled, from the declarations alone
    assert {t.screen for t in tiles.values()} >= {"left", "center", "right"}
    assert "ops_replica_lag" not in tiles  # a declared slot, not enabled


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"chart": "radar"}, "chart「radar」"),
        ({"definition": ""}, "缺少 definition"),
        ({"topics": ["weather"]}, "未知的数据主题"),
        ({"topics": []}, "须写明 topics"),
        ({"refresh": "often"}, "refresh「often」"),
        ({"drill": "https://example.org/{key}"}, "本站地址"),
        ({"permission": "everyone"}, "permission"),
        ({"colour": "red"}, "未知 colour"),
        ({"name": "Bad-Name"}, "小写字母"),
        ({"screen": "top"}, "screen"),
    ],
)
def test_a_malformed_tile_is_refused_naming_file_tile_and_key(change, complaint):
    good = {
        "name": "sample",
        "title": "样例",
        "definition": "一句话。",
        "chart": "bar",
        "query": "aggregation.targets",
        "permission": "public",
        "topics": ["ingest"],
    }
    assert spec.parse_tile("x", good, "brain/tiles/x.toml").name == "sample"
    with pytest.raises(spec.TileError) as refused:
        spec.parse_tile("x", good | change, "brain/tiles/x.toml")
    message = str(refused.value)
    assert "brain/tiles/x.toml" in message and complaint in message, message
    assert spec.parse_tile("x", good | {"enabled": False}, "brain/tiles/x.toml") is None


def test_a_section_needs_its_head_and_a_query_must_give_its_declared_shape(store):
    with pytest.raises(spec.TileError, match="须有 \\[section\\]"):
        spec.parse_section("x", '[[tile]]\nname = "a"\n')
    wrong = spec.Tile(
        "wrong", "x", "错", "错。", "map", "aggregation.targets", "public", ("ingest",)
    )
    with store.session() as session, pytest.raises(spec.TileError, match="给出的是 progress"):
        summaries.compute(Context(session, NOON), wrong)


# ---------------------------------------------------------------- the change marks


def test_a_mark_rides_its_transaction_and_is_heard_after_commit(store):
    heard: list[set[str]] = []
    forget = changes.listen(heard.append)
    try:
        with store.session() as session:
            changes.mark(session, "grid", "services")
            assert heard == []  # not before the commit
        with store.session() as session:
            assert changes.versions(session)["grid"] == 1
        assert heard == [{"grid", "services"}]
        with pytest.raises(RuntimeError), store.session() as session:
            changes.mark(session, "grid")
            raise RuntimeError("the change fails")
        with store.session() as session:
            assert changes.versions(session)["grid"] == 1  # rolled back with it
        assert len(heard) == 1
    finally:
        forget()
    with pytest.raises(ValueError, match="未知的数据主题"), store.session() as session:
        changes.mark(session, "weather")


def _versions(store) -> dict[str, int]:
    with store.session() as session:
        return summaries.current_versions(session)


def _stale(store, now) -> set[str]:
    with store.session() as session:
        versions = summaries.current_versions(session)
        held = {s.tile: s for s in session.scalars(select(Summary))}
        return {
            t.name
            for t in spec.tiles().values()
            if summaries.stale(t, held.get(t.name), versions, now)
        }


def test_a_batch_and_a_run_make_stale_only_the_tiles_of_their_data(city, tmp_path):
    from citydata.bases import service as bases
    from citydata.ingest.service import ingest

    done = service.refresh(city, NOON)
    assert {d.tile for d in done} == {*spec.tiles(), "geo_districts"} and not any(
        d.error for d in done
    )
    assert _stale(city, NOON) == set()
    assert service.refresh(city, NOON) == []  # nothing moved: nothing recomputed

    path = tmp_path / "more.csv"
    row = ("430103199202020014", "王五", "男", "1992-02-02", "430103", "长沙市天心区1号", None)
    pl.DataFrame([row], schema=FIELDS, orient="row").write_csv(path)
    before = _versions(city)["ingest"]
    ingest(city, path, HOUSEHOLD)  # a batch commits (on its own connection, in its transaction)
    assert _versions(city)["ingest"] == before + 1
    made_stale = _stale(city, NOON)
    ingest_tiles = {t.name for t in spec.tiles().values() if "ingest" in t.topics}
    assert made_stale == ingest_tiles and "agg_batches_daily" in made_stale
    assert not made_stale & {"bases_masters", "svc_rates", "grid_districts"}
    redone = service.refresh(city, NOON)
    assert {d.tile for d in redone} == ingest_tiles
    held = _held(city)
    assert held["agg_batches_daily"].versions["ingest"] == before + 1

    bases.resolve(city, "population")  # a resolution run ends
    assert _stale(city, NOON) == {t.name for t in spec.tiles().values() if "bases" in t.topics}
    service.refresh(city, NOON)
    masters = next(
        s for s in _held(city)["bases_masters"].payload["series"] if s["name"] == "主记录"
    )
    assert masters["data"][0] == 4  # the three people and 王五


def test_a_failed_batch_marks_too_and_a_rolled_back_one_leaves_no_trace(city, tmp_path):
    from citydata.ingest.service import ingest

    bad = tmp_path / "bad.csv"
    bad.write_bytes("身份证号码,姓名\n".encode("gbk") + "壹".encode("gbk") + b"\xff\n")
    before = _versions(city)["ingest"]
    report = ingest(city, bad, HOUSEHOLD, encoding="utf-8")
    assert report.status == "failed"
    assert _versions(city)["ingest"] == before + 1  # the failed-batches figure moved


def test_an_event_step_marks_the_grid(cells):  # noqa: F811
    from citydata.grid import events
    from citydata.grid.events import Report
    from citydata.keys import Keys

    before = _versions(cells)
    with cells.session() as session:
        given = Report("路边一堆垃圾", 112.985, 28.185, "E0102")
        events.report(session, Keys(("test-secret",)), given, "测试", NOON)
    assert _versions(cells)["grid"] == before["grid"] + 1


def test_a_case_step_marks_the_services(platform):  # noqa: F811
    from citydata.services import cases
    from test_services import DAY, DOC, ZHANG, citizen, start

    user = citizen(platform)
    name = next(m["name"] for m in DOC["matters"] if m["level"] == "city")
    number = start(platform, user, name, ZHANG)
    before = _versions(platform)["services"]
    with platform.session() as session:
        case = cases.by_number(session, number)
        cases.step(session, case, "submitted", "张三", DAY, DAY)
    assert _versions(platform)["services"] == before + 1


# ---------------------------------------------------------------- reading summaries


def test_a_viewer_reads_the_summary_and_computes_only_when_none_exists(city):
    tile = spec.tile("bases_masters")
    with city.session() as session:
        first = summaries.read(session, tile, NOON)
    assert first.from_summary is False and first.query_ms > 0
    with city.session() as session:
        again = summaries.read(session, tile, NOON)
    assert again.from_summary is True and again.stale == ""
    assert again.payload == first.payload and again.query_ms == first.query_ms
    assert again.as_of == NOON  # the app's moment, not the machine's
    # its schedule: a tile with a refresh period is stale once it is due
    daily = spec.tile("agg_batches_daily")
    service.refresh(city, NOON, [daily.name], force=True)
    with city.session() as session:
        versions = summaries.current_versions(session)
        held = session.get(Summary, daily.name)
        assert summaries.stale(daily, held, versions, NOON + timedelta(minutes=59)) == ""
        assert summaries.stale(daily, held, versions, NOON + timedelta(hours=1)) == "schedule"


def test_a_failing_query_keeps_the_last_summary_and_says_why(city, monkeypatch):
    from citydata.brain import queries

    service.refresh(city, NOON, ["bases_masters"], force=True)
    kept = _held(city)["bases_masters"].payload

    def broken(ctx):
        raise RuntimeError("the base is unreadable")

    monkeypatch.setitem(queries._registry, "bases.masters", broken)
    done = service.refresh(city, NOON, ["bases_masters", "bases_reviews"], force=True)
    assert [d.tile for d in done if d.error] == ["bases_masters"]
    assert "the base is unreadable" in done[0].error
    assert _held(city)["bases_masters"].payload == kept
    assert not [d for d in done if d.tile == "bases_reviews"][0].error


# ---------------------------------------------------------------- pages and JSON


def test_the_public_cockpit_shows_open_figures_and_the_staff_one_more(city):
    make_user(city, "civil", "consumer", "csmz")
    make_user(city, "audit", "auditor", None)
    app = _app(city)
    service.refresh(city, NOON)
    public = {t.name for t in spec.tiles().values() if t.public}
    with _client(app) as web:
        page = web.get("/brain/public").text
        assert set(re.findall(r'id="tile-(\w+)"', page)) == public
        assert "style=" not in page and not re.search(r"<script>(?!</script>)", page)
        assert web.get("/brain", follow_redirects=False).status_code == 303  # to the login
        assert web.get("/brain/tiles/agg_worst_rules.json").status_code == 401
        refused = web.get("/brain/tiles/agg_worst_rules.json", params={"view": "public"})
        assert refused.status_code == 403
        _sign_in(web, "civil")
        staff = set(re.findall(r'id="tile-(\w+)"', web.get("/brain").text))
        assert public < staff and "agg_worst_rules" in staff
        assert not staff & {"share_flow", "share_audit_chain"}  # who reads whom: auditors
        assert web.get("/brain/tiles/share_flow.json").status_code == 403
        assert web.get("/brain/tiles/no_such_tile.json").status_code == 404
    with _client(app) as web:
        _sign_in(web, "audit")
        staff = set(re.findall(r'id="tile-(\w+)"', web.get("/brain").text))
        assert {"share_flow", "share_audit_chain"} <= staff


def test_a_tiles_json_carries_its_timing_source_and_as_of(city):
    service.refresh(city, NOON, ["agg_targets"], force=True)
    with _client(_app(city)) as web:
        body = web.get("/brain/tiles/agg_targets.json", params={"view": "public"}).json()
        versions = web.get("/brain/versions.json", params={"view": "public"}).json()
    timing = body["timing"]
    assert timing["from_summary"] is True and timing["stale"] == ""
    assert timing["query_ms"] > 0 and timing["read_ms"] >= 0 and timing["serve_ms"] >= 0
    assert datetime.fromisoformat(timing["as_of"]) == NOON
    assert versions["agg_targets"] == body["version"]
    assert body["figure_definitions"]["departments"].startswith("目录中层级为市级")
    figures = {f["key"]: f for f in body["payload"]["figures"]}
    assert figures["departments"]["target"] == 35 and figures["classes"]["target"] == 289
    assert figures["shared"]["target"] == 700


def test_the_kiosk_hides_the_chrome_and_the_big_screen_holds_its_columns(city):
    make_user(city, "civil", "consumer", "csmz")
    service.refresh(city, NOON)
    with _client(_app(city)) as web:
        assert '<header class="top">' in web.get("/brain/public").text
        kiosk = web.get("/brain/public/screen", params={"kiosk": "1"}).text
        assert '<header class="top">' not in kiosk and 'id="stage"' in kiosk
        shown_tiles = set(re.findall(r'id="tile-(\w+)"', kiosk))
        assert shown_tiles == {t.name for t in spec.tiles().values() if t.public and t.screen}
        web.get("/lang/en")
        english = web.get("/brain/public").text
        assert "City cockpit" in english and "Data as of" in english
        body = web.get("/brain/tiles/svc_rates.json", params={"view": "public"}).json()
        assert body["title"] == "Online and one-visit rates"
        assert {f["label"] for f in body["payload"]["figures"]} >= {"Fully online", "One visit"}


def test_the_home_page_counts_municipal_departments_and_defines_each_figure(client, sample_catalog):
    html = client.get("/").text
    assert re.search(r'id="n-departments">0<small> / 35', html)  # nothing aggregated yet
    assert re.search(r'id="n-shared">8<small> / 700', html)
    assert "目录中层级为市级" in html and "不计平台自身产生的办件和事件数据" in html
    assert "有条件共享" in html


# ---------------------------------------------------------------- figures against SQL


@pytest.fixture(scope="module")
def demo_refreshed(demo_city):
    now = moment(demo_city.loaded_at)
    done = service.refresh(demo_city, now, force=True)
    assert not [d for d in done if d.error], [d for d in done if d.error]
    return demo_city, now


def test_every_tile_agrees_with_plain_sql_over_the_demo_city(demo_refreshed):
    store, now = demo_refreshed
    held = _held(store)
    with store.session() as session:
        for name, expected in EXPECTED.items():
            wanted = expected(session, now)
            problems = agrees(wanted, shown(held[name].payload))
            assert problems == [], (name, problems)
    # the demo city has something in every tile that the checks above read
    assert shown(held["agg_targets"].payload)["figures"]["classes"] >= 289
    assert shown(held["share_calls_daily"].payload)["total"] > 0


def test_metadata_quality_is_scored_on_the_mqa_points(demo_refreshed):
    from citydata.opendata import mqa
    from citydata.opendata.service import build_datasets

    store, now = demo_refreshed
    with store.session() as session:
        datasets = build_datasets(session, now.date())
    assessed = {slug: mqa.assess(ds) for slug, ds in datasets.items()}
    assert sum(w for (_, w) in mqa.DIMENSIONS.values()) == mqa.MAXIMUM == 405
    for slug, a in assessed.items():
        ds = datasets[slug]
        assert a["total"] == sum(a["points"].values()) <= 405
        # accessibility: the landing page always (50), a download URL only when open (20),
        # answering only when there is data behind it (30)
        expected = (
            50 + (20 if ds.downloadable else 0) + (30 if ds.downloadable and ds.stored else 0)
        )
        assert a["points"]["accessibility"] == expected, slug
        assert a["points"]["findability"] == 60  # keywords and themes; no spatial, no temporal
    payload = _held(store)["open_mqa"].payload
    bands = dict(zip(payload["keys"], payload["series"][0]["data"], strict=True))
    assert sum(bands.values()) == len(datasets)
    for code, _label, _lowest in mqa.BANDS:
        assert bands[code] == sum(1 for a in assessed.values() if a["band"] == code)


def test_a_units_staff_see_their_own_calls_and_no_city_totals(demo_refreshed):
    store, now = demo_refreshed
    _person(store, "civil_b", "consumer", "csmz")
    with _client(_app(store, now.timestamp())) as web:
        _sign_in(web, "civil_b")
        body = web.get("/brain/tiles/share_calls_daily.json").json()
        denied = web.get("/brain/tiles/share_denied.json").json()
    keys = {s["key"] for s in body["payload"]["series"]}
    assert keys == {"csmz"} and body["payload"]["scope"] == "csmz"
    assert "figures" not in denied["payload"]
    with store.session() as session:
        mine = session.scalar(
            select(func.count()).where(
                AuditEntry.consumer_code == "csmz", AuditEntry.action != "export_end"
            )
        )
    assert sum(body["payload"]["series"][0]["data"]) == mine


# ---------------------------------------------------------------- everywhere else


def test_a_base_opens_on_its_overview_and_a_unit_a_class_a_batch_on_their_picture(demo_refreshed):
    store, now = demo_refreshed
    with store.session() as session:
        (masters,) = session.execute(
            text(
                "SELECT count(*) FROM masters WHERE base = 'population' AND merged_into IS NULL "
                "AND version > 0"
            )
        ).one()
        committed = session.execute(
            text(
                "SELECT id, class_code FROM batches WHERE unit_code = 'csga' "
                "AND status = 'committed' ORDER BY id"
            )
        ).all()
        failed = session.execute(text("SELECT count(*) FROM batches WHERE status = 'failed'")).one()
        daily = batches_daily(session, now)["series"]
        on_the_day = daily["入库批次"][-1] + daily["失败批次"][-1]
        assert on_the_day > 0
    _person(store, "chief_b", "admin", None)
    with _client(_app(store, now.timestamp())) as web:
        _sign_in(web, "chief_b")
        base = web.get("/base/population").text
        assert re.search(rf'id="o-masters">{masters}<', base)
        assert base.index('id="overview"') < base.index('name="key"')  # before the search
        chart = json.loads(
            html.unescape(re.search(r'id="completeness" data-chart="([^"]+)"', base).group(1))
        )
        filled = dict(zip(chart["keys"], chart["x"], strict=True))
        assert filled["id_number"] != "id_number"  # the field's name for the eye, not its code
        assert all(0 <= v <= 1 for v in chart["series"][0]["data"])
        assert "户籍人口信息" in base  # its sources, by name
        unit = web.get("/units/csga")
        assert unit.status_code == 200 and 'data-chart-src="/quality/units/csga.json"' in unit.text
        months = web.get("/quality/units/csga.json").json()
        assert sum(months["batches"]) == len(committed)
        code = committed[0][1]
        history = web.get(f"/quality/classes/{code}.json").json()
        assert history["keys"] == [str(i) for i, c in committed if c == code][-20:]
        batch = web.get(f"/batches/{committed[0][0]}").text
        assert 'id="rejects-by-rule" data-chart=' in batch
        listed = web.get("/batches", params={"status": "failed"}).text
        assert re.search(rf'id="total">{failed[0]}<', listed)
        day = now.astimezone(CITY_ZONE).date().isoformat()
        today = web.get("/batches", params={"day": day})
        assert re.search(rf'id="total">{on_the_day}<', today.text)  # the cockpit's day bar


def test_open_api_calls_are_counted_in_memory_and_added_up(city):
    app = _app(city)
    with _client(app) as web:
        for _ in range(3):
            assert web.get("/api/3/action/package_list").status_code == 200
        assert app.state.open_calls.pending() == 3
        before = _versions(city)["opendata"]
        assert app.state.open_calls.flush(city) == 3
        assert app.state.open_calls.pending() == 0
    with city.session() as session:
        assert changes.versions(session)["opendata"] == before + 1
        from citydata.opendata.models import OpenApiCall

        rows = session.scalars(select(OpenApiCall)).all()
    assert [(r.day, r.action, r.calls) for r in rows] == [(NOON.date(), "package_list", 3)]
    assert DataChange.__tablename__ == "data_changes"
    assert datetime.now(UTC) > NOON  # the day counted is the app's, a fixed one
