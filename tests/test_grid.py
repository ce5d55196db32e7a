"""一格通管: deadlines on the working-hours clock, routing rules as data, placing reports in
their cells, duplicates within 50 m, the seven steps as a transition table, SLA versions, the
classifier against the keyword baseline, the docked API (idempotency, webhooks), Open311 through
a real client library, the map's GeoJSON and the assessment."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from citydata.bases.models import Master
from citydata.catalog.service import import_catalog
from citydata.grid import assessment, classify, events, mapping, open311, routing, sla
from citydata.grid import service as grid
from citydata.grid.cells import Grid, PostgisGrid, cell_of, fill_geometry, locator
from citydata.grid.events import GridError, Report
from citydata.grid.models import Cell, Event, Reporter, Routing, Step
from citydata.keys import Keys
from citydata.mechanisms import outbox
from citydata.mechanisms.models import WebhookNotice
from citydata.services import docking
from conftest import DEMO_DAY, make_user

KEYS = Keys(("test-secret",))
BJ = timedelta(hours=8)
# Two cells of 芙蓉区 side by side and one of 岳麓区, 0.01° square.
CELLS = [
    ("43010200001", "芙蓉区第1网格", "430102", 112.98, 28.18),
    ("43010200002", "芙蓉区第2网格", "430102", 112.99, 28.18),
    ("43010400001", "岳麓区第1网格", "430104", 112.90, 28.18),
]
SPOT = (112.985, 28.185)  # inside the first cell
WITHIN = {  # each cell's street and community
    "43010200001": ("定王台街道", "西湖社区"),
    "43010200002": ("定王台街道", "东园社区"),
    "43010400001": ("橘子洲街道", "湘江社区"),
}


def local(*args) -> datetime:
    """A Beijing wall-clock time as UTC."""
    return (datetime(*args) - BJ).replace(tzinfo=UTC)


def _wkt(x: float, y: float) -> str:
    return f"POLYGON(({x} {y},{x + 0.01} {y},{x + 0.01} {y + 0.01},{x} {y + 0.01},{x} {y}))"


@pytest.fixture
def cells(store, demo_catalog):
    with store.session() as session:
        import_catalog(session, demo_catalog)
        for code, name, division, x, y in CELLS:
            box = {"min_x": x, "min_y": y, "max_x": x + 0.01, "max_y": y + 0.01}
            street, community = WITHIN[code]
            place = {"division": division, "street": street, "community": community}
            session.add(Cell(grid_code=code, name=name, boundary=_wkt(x, y), **place, **box))
        session.flush()
        fill_geometry(session)
    return store


def _report(session, category="E0102", at=None, where=SPOT, **more) -> Event:
    given = Report(more.pop("description", "路边一堆垃圾"), where[0], where[1], category, **more)
    return events.report(session, KEYS, given, "测试", at or local(2025, 9, 15, 10, 0))


def _metres_east(metres: float) -> float:
    return metres / (111_000 * np.cos(np.radians(SPOT[1])))


# ---------------------------------------------------------------- the clock and the rules


def test_deadlines_count_working_hours_and_days_with_holidays_and_makeup_days():
    # Friday 17:00 + 2 working hours: one hour on Friday, one on Monday from 08:30
    assert sla.deadline(local(2025, 9, 12, 17, 0), 2, "wh") == local(2025, 9, 15, 9, 30)
    # the lunch break does not count
    assert sla.deadline(local(2025, 9, 15, 11, 0), 2, "wh") == local(2025, 9, 15, 15, 30)
    # Friday 26 September + 1 working day: Sunday the 28th is a make-up working day (调休)
    assert sla.deadline(local(2025, 9, 26, 10, 0), 1, "wd") == local(2025, 9, 28, 18, 0)
    # 30 September + 1 working day: 1–8 October are the National Day holidays
    assert sla.deadline(local(2025, 9, 30, 10, 0), 1, "wd") == local(2025, 10, 9, 18, 0)
    # calendar hours and days run through nights and holidays
    assert sla.deadline(local(2025, 9, 30, 22, 0), 4, "h") == local(2025, 10, 1, 2, 0)
    assert sla.deadline(local(2025, 9, 30, 22, 0), 2, "d") == local(2025, 10, 2, 22, 0)


def test_routing_rules_are_data_and_the_first_match_wins():
    # 施工扰民 goes to the environment bureau by day, to the police at night
    assert routing.route("E0301", "430102", "x", local(2025, 9, 15, 10, 0)) == (
        "cssthj",
        routing.DEFAULT_RULE,
    )
    assert routing.route("E0301", "430102", "x", local(2025, 9, 15, 23, 0))[0] == "csga"
    assert routing.route("E0301", "430102", "x", local(2025, 9, 16, 5, 0))[0] == "csga"
    # 街面秩序 (a 大类 prefix) in 浏阳市 at the weekend
    assert routing.route("E0502", "430181", "x", local(2025, 9, 13, 10, 0))[0] == "csyj"
    assert routing.route("E0502", "430181", "x", local(2025, 9, 15, 10, 0))[0] == "cscg"
    assert routing.route("E0502", "430102", "x", local(2025, 9, 13, 10, 0))[0] == "cscg"
    with pytest.raises(ValueError, match="hours"):
        routing.parse('[[rule]]\nname = "x"\nunit = "cscg"\nhours = "night"\n')


# ---------------------------------------------------------------- reports


def test_postgis_and_the_tree_place_points_alike_and_a_border_goes_to_the_smaller_code(cells):
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(112.89, 113.01, 500), [112.99, 112.99, 113.0, 112.90]])
    lat = np.concatenate([rng.uniform(28.175, 28.195, 500), [28.185, 28.18, 28.185, 28.185]])
    with cells.session() as session:
        tree = Grid.load(session).locate(lon, lat)
        # on the shared border of 芙蓉区's two cells: the first; on the city's edge: inside
        assert tree["grid_code"].to_list()[-4:] == [
            "43010200001",
            "43010200001",
            "43010200002",
            "43010400001",
        ]
        assert tree["grid_code"].null_count() > 0 and tree["grid_code"].n_unique() == 4
        used = locator(session)
        if store_is_postgres(cells):
            assert isinstance(used, PostgisGrid)
            assert used.locate(lon, lat).equals(tree)
        else:
            assert isinstance(used, Grid)


def test_the_cells_tree_is_kept_until_the_cells_change(cells):
    if store_is_postgres(cells):
        pytest.skip("PostgreSQL places points with PostGIS, no tree in memory")
    outside_first = (112.975, 28.185)  # west of 芙蓉区's first cell, in no cell yet
    with cells.session() as session:
        first = locator(session)
        assert locator(session) is first  # not rebuilt for the next report
        assert cell_of(first, *outside_first) is None
    with cells.session() as session:  # another process widens the first cell westwards
        cell = session.get(Cell, "43010200001")
        cell.boundary = cell.boundary.replace("112.98 ", "112.97 ")
        cell.min_x = 112.97
    with cells.session() as session:
        moved = locator(session)
        assert moved is not first
        assert cell_of(moved, *outside_first) == ("43010200001", "430102")


def test_a_report_naming_a_component_takes_its_category_and_a_wrong_one_changes_nothing(cells):
    lamp = "430102" + "0201" + "000007"  # 芙蓉区, 道路交通类 路灯, serial 7
    with cells.session() as session:
        session.add(Master(base="city_component", key=lamp, record={"component_id": lamp}))
    with cells.session() as session:  # the sensor on the lamp says which lamp, not what it is
        event = _report(session, None, description="", component_id=lamp, source="sensor")
        assert (event.category, event.component_id) == ("B0201", lamp)
    refused = {
        "component_mismatch": {"category": "B0101", "component_id": lamp},  # a cover?
        "unknown_component": {"category": "B0201", "component_id": lamp[:-1] + "8"},
        "bad_component": {"category": None, "component_id": "430102" + "0199" + "000001"},
    }
    for code, given in refused.items():
        with cells.session() as session, pytest.raises(GridError) as caught:
            _report(session, **given)
        assert caught.value.code == code, given
    with cells.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def store_is_postgres(store) -> bool:
    return store.engine.dialect.name == "postgresql"


def test_a_report_is_placed_in_its_cell_and_a_point_outside_the_city_is_refused(cells):
    with cells.session() as session:
        grid_ = Grid.load(session)
        found = grid_.locate(np.array([SPOT[0], 112.995, 112.905, 120.0]), np.array([SPOT[1]] * 4))
        assert found["grid_code"].to_list() == ["43010200001", "43010200002", "43010400001", None]
        event = _report(session)
        assert (event.grid_code, event.division, event.status) == (
            "43010200001",
            "430102",
            "reported",
        )
        assert event.event_no.startswith("43010020250915")
    with cells.session() as session, pytest.raises(GridError, match="不在本市任何单元网格内"):
        _report(session, where=(120.0, 30.0))
    for bad in ({"category": "E9999"}, {"component_id": "123"}):
        with cells.session() as session, pytest.raises(GridError):
            _report(session, **bad)
    with cells.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        assert session.scalar(select(func.count()).select_from(Step)) == 1


def test_a_report_within_50_m_is_offered_as_the_open_event_and_merging_keeps_its_reporter(cells):
    with cells.session() as session:
        first = _report(session, reporter_contact="13800000001")
        near_ = _report(
            session, where=(SPOT[0] + _metres_east(30), SPOT[1]), reporter_contact="13800000002"
        )
        far = _report(session, where=(SPOT[0] + _metres_east(80), SPOT[1]))
        other = _report(session, category="E0505")
        assert near_.duplicate_of == first.id
        assert far.duplicate_of is None and other.duplicate_of is None
        with pytest.raises(GridError, match="疑似重复"):
            events.register(session, near_, "调度员")
        into = events.merge(session, near_, "调度员")
        assert into.id == first.id and near_.status == "voided"
        reporters = session.scalars(select(Reporter).where(Reporter.event_id == first.id)).all()
        assert sorted(KEYS.decrypt(r.contact) for r in reporters) == ["13800000001", "13800000002"]
        # the outcome reaches both reporters when the event ends
        events.register(session, first, "调度员")
        events.step(session, first, "voided", "调度员", note="已由业主自行清理")
        told = session.scalars(select(Reporter.told_at).where(Reporter.event_id == first.id)).all()
        assert all(t is not None for t in told)
        # a closed event is not offered any more
        again = _report(session)
        assert again.duplicate_of is None


def test_the_seven_steps_follow_the_table_and_each_step_moves_the_clock(cells):
    with cells.session() as session:
        event = _report(session, category="E0102", at=local(2025, 9, 15, 9, 0))  # handle: 12 h
        with pytest.raises(GridError, match="不能转为「结案」"):
            events.step(session, event, "closed", "调度员")
        assert session.scalar(select(func.count()).select_from(Step)) == 1  # nothing written
        events.register(session, event, "调度员", local(2025, 9, 15, 9, 10))
        assert event.stage == "dispatch"
        assert events.overdue_flags(event, local(2025, 9, 15, 11, 0)) == (False, False)
        events.dispatch(session, event, "调度员", local(2025, 9, 15, 10, 0))
        assert event.unit_code == "cscg" and event.due_at == local(2025, 9, 15, 22, 0)
        assert events.overdue_flags(event, local(2025, 9, 15, 23, 0)) == (True, False)
        assert events.overdue_flags(event, local(2025, 9, 17, 11, 0)) == (True, True)  # 3 × 12 h
        events.step(session, event, "handled", "城管", local(2025, 9, 16, 8, 0))
        assert event.handled_late is True
        with pytest.raises(GridError, match="理由"):
            events.step(session, event, "rework", "监督员")
        events.step(session, event, "rework", "监督员", local(2025, 9, 16, 9, 0), note="未清理干净")
        assert event.reworks == 1 and event.due_at == local(2025, 9, 16, 21, 0)
        events.step(session, event, "handled", "城管", local(2025, 9, 16, 12, 0))
        assert event.handled_late is False
        events.step(session, event, "verified", "监督员", local(2025, 9, 16, 13, 0))
        events.step(session, event, "closed", "调度员", local(2025, 9, 16, 13, 10))
        assert event.status == "closed" and event.due_at is None
        statuses = [s.status for s in events.history(session, event)]
        assert statuses == ["reported", "registered", "dispatched", "handled", "rework"] + [
            "handled",
            "verified",
            "closed",
        ]
        assert session.scalar(select(Routing.rule).where(Routing.event_id == event.id)) == (
            routing.DEFAULT_RULE
        )


def test_an_event_keeps_the_sla_version_it_was_opened_under(cells):
    with cells.session() as session:
        old = _report(session, category="E0102", at=local(2025, 9, 15, 9, 0))
        sla.revise(session, "E0102", local(2025, 9, 15, 9, 30), handle=[48, "h"])
        new = _report(
            session, category="E0102", at=local(2025, 9, 15, 10, 0), where=(112.905, 28.185)
        )
        assert old.sla_id != new.sla_id
        for event in (old, new):
            events.register(session, event, "调度员", local(2025, 9, 15, 10, 5))
            events.dispatch(session, event, "调度员", local(2025, 9, 15, 11, 0))
        assert old.due_at == local(2025, 9, 15, 23, 0)  # 12 hours, as when it was opened
        assert new.due_at == local(2025, 9, 17, 11, 0)  # 48 hours


def test_a_dispatcher_overrides_routing_with_a_reason_and_roles_are_checked(cells):
    make_user(cells, "centre", "consumer", "cscg")
    make_user(cells, "police", "consumer", "csga")
    with cells.session() as session:
        from citydata.accounts.models import User

        centre = session.scalar(select(User).where(User.username == "centre"))
        police = session.scalar(select(User).where(User.username == "police"))
        event = _report(session)
        with pytest.raises(GridError, match="监督指挥中心"):
            grid.act(session, police, event, "register")
        grid.act(session, centre, event, "register", category="E0103")
        assert event.category == "E0103"
        with pytest.raises(GridError, match="理由"):
            grid.act(session, centre, event, "redispatch", unit_code="csga")
        grid.act(session, centre, event, "redispatch", note="涉及交通管制", unit_code="csga")
        assert event.unit_code == "csga"
        decision = session.scalars(select(Routing).where(Routing.event_id == event.id)).one()
        assert (decision.rule, decision.reason, decision.by) == (
            "人工派遣",
            "涉及交通管制",
            "centre",
        )
        with pytest.raises(GridError, match="承办单位"):
            grid.act(session, centre, event, "handled")
        grid.act(session, police, event, "handled")
        assert event.status == "handled"


# ---------------------------------------------------------------- classification


def test_the_classifier_beats_the_keyword_baseline_and_says_other_when_unsure(tmp_path):
    from citydata.demo.grid import generate

    (tmp_path / "truth").mkdir()
    generate(tmp_path, 3000, seed=5, as_of=DEMO_DAY)
    import polars as pl

    truth = pl.read_parquet(tmp_path / "truth/grid_events.parquet")
    reported = pl.read_parquet(tmp_path / "grid/events.parquet").filter(
        pl.col("source") == "citizen"
    )
    labelled = truth.join(reported.select("id"), on="id")
    trained = classify.train(labelled["description"].to_list(), labelled["category"].to_list())
    assert trained.accuracy >= 0.9
    assert trained.accuracy > trained.baseline_accuracy + 0.1
    restored = classify.Model.from_bytes(trained.model.to_bytes())
    texts = ["小区门口的下水道反水臭死了", "马路中间陷下去一个大坑"]
    assert restored.propose(texts) == trained.model.propose(texts)
    assert [p[0][0] for p in restored.propose(texts)] == ["E0404", "E0401"]
    assert restored.decide(["qwertyuiop asdf"]) == [classify.OTHER]


def test_a_citizen_report_without_a_category_gets_the_models_proposals(cells, tmp_path):
    texts = [
        w
        for c, words in {
            "E0404": ["下水道反水", "污水冒出来了"],
            "E0505": ["汽车乱停", "违停堵路"],
        }.items()
        for w in words * 6
    ]
    labels = [c for c in ["E0404"] * 12 + ["E0505"] * 12]
    with cells.session() as session:
        classify.save(session, classify.train(texts, labels))
        event = events.report(session, KEYS, Report("楼下下水道反水", *SPOT, None), "市民")
        assert event.category == "E0404"
        assert event.suggested[0][0] == "E0404" and event.suggested[0][1] > 0.5


# ---------------------------------------------------------------- docked systems


def test_a_docked_system_works_its_units_events_with_idempotency_and_webhooks(cells, client):
    with cells.session() as session:
        from citydata.accounts.models import User

        make_user(cells)
        admin = session.scalar(select(User).where(User.username == "admin"))
        secret = docking.register(session, admin, "cscg", "城管执法系统").secret
        other = docking.register(session, admin, "csga", "公安系统").secret
        event = _report(session, at=datetime.now(UTC) - timedelta(hours=2))
        events.register(session, event, "调度员")
        events.dispatch(session, event, "调度员")
        number = event.event_no
    auth = {"Authorization": f"Bearer {secret}"}
    sub = client.post(
        "/api/grid/v1/subscriptions",
        json={"url": "https://cg.example.gov.cn/hook"},
        headers=auth | {"Idempotency-Key": "s1"},
    )
    # example.gov.cn does not resolve here: the address check refuses it before anything is kept
    assert sub.status_code in (201, 400), sub.text
    with cells.session() as session:
        outbox.subscribe(
            session, events.owner("cscg"), "http://127.0.0.1:9/h", "t", KEYS, ("127.0.0.1",)
        )
    listed = client.get("/api/grid/v1/events", headers=auth)
    assert [e["event_no"] for e in listed.json()["events"]] == [number]
    step = {"status": "handled", "note": "已清运", "longitude": SPOT[0], "latitude": SPOT[1]}
    first = client.post(
        f"/api/grid/v1/events/{number}/steps", json=step, headers=auth | {"Idempotency-Key": "k1"}
    )
    assert first.status_code == 201 and first.json()["status"] == "handled"
    again = client.post(
        f"/api/grid/v1/events/{number}/steps", json=step, headers=auth | {"Idempotency-Key": "k1"}
    )
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    changed = client.post(
        f"/api/grid/v1/events/{number}/steps",
        json=step | {"note": "另一个"},
        headers=auth | {"Idempotency-Key": "k1"},
    )
    assert changed.status_code == 422
    closing = client.post(
        f"/api/grid/v1/events/{number}/steps",
        json={"status": "closed"},
        headers=auth | {"Idempotency-Key": "k2"},
    )
    assert closing.status_code == 422  # the centre closes, not a department's system
    foreign = client.get(
        f"/api/grid/v1/events/{number}", headers={"Authorization": f"Bearer {other}"}
    )
    assert foreign.status_code == 404
    with cells.session() as session:
        handled = session.scalar(
            select(func.count()).select_from(Step).where(Step.status == "handled")
        )
        assert handled == 1
        full = client.get(f"/api/grid/v1/events/{number}", headers=auth).json()
        assert [h["status"] for h in full["history"]][-1] == "handled"
        bodies = session.scalars(select(WebhookNotice.body)).all()
        assert sum(number in b and "handled" in b for b in bodies) == 1  # the retry told nothing
        assert not any("垃圾" in b for b in bodies)  # no description, no reporter


# ---------------------------------------------------------------- Open311


def test_open311_speaks_georeport_v2_to_a_real_client(cells, app, live_server, tmp_path):
    import httpx
    from georeport import GeoReport

    with cells.session() as session:
        from citydata.accounts.models import User

        make_user(cells)
        admin = session.scalar(select(User).where(User.username == "admin"))
        key = open311.register(session, admin, "市民随手拍").secret
    app.state.settings = dataclasses.replace(app.state.settings, data_dir=tmp_path)
    base = live_server(app)
    root = f"{base}/open311/v2"
    client = GeoReport(root, jurisdiction=open311.JURISDICTION)
    services = client.get_service_list()
    assert {"service_code": "E0102", "service_name": "暴露垃圾"}.items() <= next(
        s for s in services if s["service_code"] == "E0102"
    ).items()
    xml = GeoReport(root, output_format="xml").get_service_list()
    assert {s["service_code"] for s in xml} == {s["service_code"] for s in services}
    definition = client.get_service_definition("B0102")
    assert definition["attributes"][0]["code"] == open311.COMPONENT_ATTRIBUTE

    def post(**form):
        data = {"api_key": key, "service_code": "E0102", "lat": SPOT[1], "long": SPOT[0]} | form
        return httpx.post(f"{root}/requests.json", data=data, files=form.pop("files", None))

    made = post(description="路边一堆垃圾没人清理", phone="13800000001")
    assert made.status_code == 201, made.text
    number = made.json()[0]["service_request_id"]
    repeat = post(description="垃圾还在", long=SPOT[0] + _metres_east(20))
    assert "合并" in repeat.json()[0]["service_notice"]
    found = client.get_service_request(number)
    assert (found["status"], found["status_notes"], found["service_code"]) == (
        "open",
        "信息收集",
        "E0102",
    )
    assert "phone" not in found and "13800000001" not in str(found)
    many = GeoReport(root, output_format="xml").get_service_requests(service_request_id=number)
    assert many["service_request_id"] == number  # one request: xmltodict gives the element
    with cells.session() as session:
        token = session.scalar(select(Event.token).where(Event.event_no == number))
    assert httpx.get(f"{root}/tokens/{token}.json").json() == [
        {"service_request_id": number, "token": token}
    ]
    # errors in the spec's format, and nothing written
    for form, status in (
        ({"service_code": "X9999"}, 404),
        ({"api_key": "o311_nope_nope"}, 403),
        ({"lat": 30.0, "long": 120.0}, 422),
        ({"lat": "north"}, 400),
    ):
        refused = post(**form)
        assert refused.status_code == status, (form, refused.text)
        assert refused.json()[0]["code"] == status and refused.json()[0]["description"]
    broken = httpx.post(
        f"{root}/requests.json",
        data={"api_key": key, "service_code": "E0102", "lat": SPOT[1], "long": SPOT[0] + 0.004},
        files={"media": ("photo.jpg", io.BytesIO(b"\xff\xd8\xff\xe0" + b"0" * 100), "image/jpeg")},
    )
    assert broken.status_code == 415 and broken.json()[0]["code"] == 415
    assert list(p for p in (tmp_path / "grid_photos").rglob("*") if p.is_file()) == []
    xml_error = httpx.get(f"{root}/services/X9999.xml")
    assert xml_error.status_code == 404 and b"<errors><error><code>404</code>" in xml_error.content
    wrong_place = httpx.get(f"{root}/services.json", params={"jurisdiction_id": "beijing"})
    assert wrong_place.status_code == 404
    with cells.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2
        # the dispatcher merges the repeat: its reporter follows the original's outcome
        repeat_event = session.scalar(
            select(Event).where(Event.event_no == repeat.json()[0]["service_request_id"])
        )
        events.merge(session, repeat_event, "调度员")
        original = events.by_no(session, number)
        events.register(session, original, "调度员")
        events.step(session, original, "voided", "调度员", note="已清理")
    merged = client.get_service_request(repeat.json()[0]["service_request_id"])
    assert merged["status"] == "closed" and number in merged["status_notes"]
    closed = client.get_service_requests(status="closed")
    assert {r["service_request_id"] for r in closed} >= {number}


# ---------------------------------------------------------------- map and assessment


def test_the_map_filters_in_sql_and_the_assessment_counts_from_events(cells):
    with cells.session() as session:
        a = _report(session, at=local(2025, 9, 15, 9, 0))
        b = _report(session, category="E0505", at=local(2025, 9, 15, 9, 0), where=(112.905, 28.185))
        for event in (a, b):
            events.register(session, event, "调度员", local(2025, 9, 15, 9, 5))
            events.dispatch(session, event, "调度员", local(2025, 9, 15, 9, 10))
        events.step(session, a, "handled", "城管", local(2025, 9, 15, 10, 0))
        events.step(session, a, "verified", "监督员", local(2025, 9, 15, 11, 0))
        events.step(session, a, "closed", "调度员", local(2025, 9, 15, 11, 5))
        events.step(session, b, "handled", "公安", local(2025, 9, 16, 10, 0))  # 2 h limit: late
        events.step(session, b, "rework", "监督员", local(2025, 9, 16, 11, 0), note="车还在")
        now = local(2025, 9, 20, 0, 0)
        whole = mapping.Box(112.8, 28.1, 113.1, 28.3)
        every = mapping.events_geojson(session, whole, mapping.MapFilter(), now)
        assert len(every["features"]) == 2
        open_ = mapping.events_geojson(session, whole, mapping.MapFilter(statuses=("open",)), now)
        assert [f["properties"]["event_no"] for f in open_["features"]] == [b.event_no]
        assert open_["features"][0]["properties"]["overdue"] is True
        east = mapping.events_geojson(
            session, mapping.Box(112.95, 28.1, 113.1, 28.3), mapping.MapFilter(), now
        )
        assert [f["properties"]["event_no"] for f in east["features"]] == [a.event_no]
        with pytest.raises(GridError):
            mapping.Box.parse("1,2,3")
        table = assessment.assess(assessment.frame(session), ["division"]).to_dicts()
        by = {r["division"]: r for r in table}
        assert by["430102"]["registered"] == 1 and by["430102"]["on_time_rate"] == 1.0
        assert by["430102"]["closed_rate"] == 1.0 and by["430102"]["rework_rate"] == 0.0
        assert by["430104"]["on_time_rate"] == 0.0 and by["430104"]["rework_rate"] == 1.0
        assert by["430104"]["closed_rate"] == 0.0
        # a street is named within its district, a community within its street
        streets = assessment.assess(assessment.frame(session), ["street"]).to_dicts()
        names = {"430102": "芙蓉区", "430104": "岳麓区"}
        assert [(assessment.label(r, "street", names), r["registered"]) for r in streets] == [
            ("芙蓉区 定王台街道", 1),
            ("岳麓区 橘子洲街道", 1),
        ]
        communities = assessment.assess(assessment.frame(session), ["community"]).to_dicts()
        assert [assessment.label(r, "community", names) for r in communities] == [
            "芙蓉区 定王台街道 西湖社区",
            "岳麓区 橘子洲街道 湘江社区",
        ]


def test_the_pages_show_queue_event_map_and_assessment_to_staff_only(cells, client):
    make_user(cells, "centre", "consumer", "cscg")
    with cells.session() as session:
        event = _report(session, at=datetime.now(UTC) - timedelta(hours=1))
        number = event.event_no
    anonymous = client.get("/grid", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    for data in (
        "/grid/cells.geojson",
        "/grid/districts.geojson",
        "/grid/map.geojson?bbox=1,2,3,4",
    ):
        refused = client.get(data, follow_redirects=False)  # staff only, like the map
        assert refused.status_code == 303 and "/login" in refused.headers["location"], data
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "centre", "password": "password123", "csrf": csrf})
    queue = client.get("/grid")
    assert queue.status_code == 200 and number in queue.text and "暴露垃圾" in queue.text
    page = client.get(f"/grid/events/{number}")
    assert page.status_code == 200 and "信息收集" in page.text and "<svg" in page.text
    assert "定王台街道西湖社区" in page.text
    drawn = client.get("/grid/map", params={"category": "E0102", "overdue": "true"})
    assert drawn.status_code == 200 and 'id="gridmap"' in drawn.text
    assert "category=E0102&amp;status=open&amp;overdue=true" in drawn.text  # for its script
    assert client.get("/static/vendor/echarts/echarts.min.js").status_code == 200
    assert "registerMap" in client.get("/static/grid/gridmap.js").text
    assert client.get("/grid/map", params={"bbox": "1,2"}).status_code == 400
    cells_ = client.get("/grid/cells.geojson").json()["features"]
    assert [c["properties"]["street"] for c in cells_] == [w[0] for w in WITHIN.values()]
    districts = client.get("/grid/districts.geojson").json()["features"]
    assert [(d["properties"]["name"], d["geometry"]["type"]) for d in districts] == [
        ("芙蓉区", "Polygon"),  # its two cells as one outline
        ("岳麓区", "Polygon"),
    ]
    geo = client.get("/grid/map.geojson", params={"bbox": "112.8,28.1,113.1,28.3"})
    assert geo.json()["features"][0]["properties"]["event_no"] == number
    assert client.get("/grid/map.geojson", params={"bbox": "x"}).status_code == 400
    assert client.get("/grid/assessment").status_code == 200


def test_the_map_draws_the_spatial_bases_districts_and_syncs_only_its_cells(
    cells, client, tmp_path
):
    """Districts, streets and cells share the spatial base, told apart by their level: the map's
    outline of a district is the base's (a district the base lacks is the union of its cells),
    and only the cells become the grid's cells. Without a 审图号 the map says it is no approved
    map; with one it shows it."""
    from citydata.app import create_app
    from citydata.bases import service as bases
    from citydata.config import Settings
    from citydata.grid import cells as grid_cells
    from citydata.ingest.service import ingest

    triangle = "POLYGON((112.97 28.17, 113.02 28.17, 112.995 28.21, 112.97 28.17))"
    street = "POLYGON((112.97 28.17, 113.0 28.17, 113.0 28.2, 112.97 28.17))"
    outlines = tmp_path / "districts.csv"
    outlines.write_text(f'行政区划代码,层级,名称,边界（WKT）\n430102,区县,芙蓉区,"{triangle}"\n')
    streets = tmp_path / "streets.csv"
    streets.write_text(
        f'乡镇街道代码,层级,名称,所属区县,边界（WKT）\n430102013,乡镇街道,定王台街道,430102,"{street}"\n'
    )
    for path, code in ((outlines, "101003/00001"), (streets, "101003/00003")):
        assert ingest(cells, path, code).rows_accepted == 1
    bases.resolve(cells, "spatial")
    with cells.session() as session:
        assert [a["code"] for a in bases.spatial_areas(session, "street")] == ["430102013"]
        # the base holds a district and a street, and no cell: the grid keeps no cell from it
        assert grid_cells.sync(session) == 0
        session.rollback()
    make_user(cells, "centre", "consumer", "cscg")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "centre", "password": "password123", "csrf": csrf})
    districts = client.get("/grid/districts.geojson").json()["features"]
    by_name = {d["properties"]["name"]: d["geometry"] for d in districts}
    assert by_name["芙蓉区"]["coordinates"][0][:3] == [
        [112.97, 28.17],
        [113.02, 28.17],
        [112.995, 28.21],
    ]
    assert len(by_name["岳麓区"]["coordinates"][0]) == 5  # its one cell's square
    assert "未经地图审核" in client.get("/grid/map").text
    settings = Settings(
        database_url=cells.url, secret_key="test-secret", map_approval="湘S〔2025〕001号"
    )
    from fastapi.testclient import TestClient

    with TestClient(create_app(cells, settings)) as approved:
        csrf = re.search(r'name="csrf" value="([^"]+)"', approved.get("/login").text).group(1)
        approved.post(
            "/login", data={"username": "centre", "password": "password123", "csrf": csrf}
        )
        page = approved.get("/grid/map").text
    assert "审图号：湘S〔2025〕001号" in page and "未经地图审核" not in page


def test_every_grid_page_text_has_its_english(cells, client):
    """Chinese first, English a setting: each text the grid's pages (and the top bar around
    them) translate has an entry."""
    from pathlib import Path

    from citydata.web.i18n import EN

    folder = Path(events.__file__).parent / "templates"
    top_bar = Path(events.__file__).parents[1] / "web" / "templates" / "base.html"
    pages = [*folder.glob("*.html"), top_bar]
    said = {m for f in pages for m in re.findall(r't\("([^"]+)"\)', f.read_text())}
    labels = [*events.TRANSITIONS.labels.values(), *sla.STAGE_NAMES.values()]
    labels += [
        *events.SOURCES.values(),
        *assessment.DIMENSIONS.values(),
        *assessment.RATES.values(),
    ]
    assert len(said) > 50 and sorted((said | set(labels)) - set(EN)) == []
    make_user(cells, "centre", "consumer", "cscg")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "centre", "password": "password123", "csrf": csrf})
    client.get("/lang/en")
    page = client.get("/grid/assessment", params={"by": "street"}).text
    assert "Assessment" in page and "On-time rate" in page and "综合评价" not in page
