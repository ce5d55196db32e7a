"""一格通管 end to end in a real browser (Debian's chromium): a citizen's app reports through
Open311 without knowing the category, the classifier proposes it and the dispatcher registers
and dispatches on the event's page; a second report nearby is offered as the same event and
merged; the unit's own system reports 处置 through the docking API; an inspector verifies on
the page, the centre closes it, and the map, the assessment and Open311 show the outcome."""

from __future__ import annotations

import json

from sqlalchemy import select

from citydata.accounts.models import User
from citydata.config import Settings
from citydata.grid import classify, open311
from citydata.grid.models import Event
from citydata.services import docking
from conftest import CHROMIUM, CHROMIUM_FLAGS, make_user, need_chromium
from test_grid import SPOT, cells  # noqa: F401 - the fixture

TRAINING = {
    "E0102": ["路边一堆垃圾没人清理", "垃圾堆在路口好几天", "有人乱扔垃圾", "垃圾没人收"],
    "E0404": ["下水道反水", "污水冒出来了", "井里往外冒水", "排水沟堵了"],
    "E0505": ["汽车乱停", "违停堵路", "车停在人行道上", "乱停车挡门口"],
}


def _sign_in(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.goto(f"{base}/login?next=/grid")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "password123")
    page.click("main button")
    page.wait_for_url(f"{base}/grid")
    return page


def test_an_open311_report_from_classification_to_the_map(cells, live_server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from citydata.app import create_app

    need_chromium()
    make_user(cells)
    make_user(cells, "centre", "consumer", "cscg")  # the 监督指挥中心's dispatcher
    make_user(cells, "inspector", "consumer", "cscg")  # and its 监督员
    with cells.session() as session:
        admin = session.scalar(select(User).where(User.username == "admin"))
        api_key = open311.register(session, admin, "市民随手拍").secret
        system = docking.register(session, admin, "cscg", "城管执法业务系统").secret
        texts = [t for ts in TRAINING.values() for t in ts * 4]
        labels = [c for c, ts in TRAINING.items() for _ in ts * 4]
        classify.save(session, classify.train(texts, labels))
    settings = Settings(
        database_url=cells.url, secret_key="test-secret", data_dir=tmp_path / "data"
    )
    base = live_server(create_app(cells, settings))
    shots = tmp_path / "shots"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        app = browser.new_context(base_url=base).request

        def report(code: str, words: str, east: float):
            form = {"api_key": api_key, "service_code": code, "description": words}
            form |= {"lat": str(SPOT[1]), "long": str(SPOT[0] + east), "phone": "13800000001"}
            made = app.post("/open311/v2/requests.json", form=form)
            assert made.status == 201, made.text()
            return made.json()[0]

        first = report("E0601", "路边一堆垃圾好几天没人清理", 0)["service_request_id"]
        centre = _sign_in(browser, base, "centre")
        centre.goto(f"{base}/grid/events/{first}")
        assert centre.inner_text("#status") == "信息收集"
        assert centre.inner_text("#suggested").split("：")[1].startswith("暴露垃圾")
        centre.click("#act button[value=register]")  # the model's proposal, preselected
        centre.wait_for_url(f"**/grid/events/{first}")
        assert centre.inner_text("h1").split()[0].endswith("·暴露垃圾")
        centre.click("#act button[value=dispatch]")
        centre.wait_for_url(f"**/grid/events/{first}")
        assert centre.inner_text("#status") == "派遣"
        assert centre.get_attribute("#unit", "title") == "cscg"
        assert "类别默认单位" in centre.inner_text("#routing")

        # a neighbour reports the same pile 20 m away: offered as the open event, merged
        second = report("E0102", "垃圾还在，没人管", 20 / (111_000 * 0.88))
        assert "附近已有同类事件" in second["service_notice"]
        centre.goto(f"{base}/grid/events/{second['service_request_id']}")
        assert first in centre.inner_text("#duplicate")
        centre.click("#act button[value=merge]")
        centre.wait_for_url("**/grid/events/*")
        assert centre.inner_text("#status") == "作废"

        # the responsible unit's own system works the event through the docking API
        for key, status in (("h-1", "handling"), ("h-2", "handled")):
            moved = app.post(
                f"/api/grid/v1/events/{first}/steps",
                data=json.dumps({"status": status, "note": "已清运"}),
                headers={
                    "Authorization": f"Bearer {system}",
                    "Idempotency-Key": key,
                    "Content-Type": "application/json",
                },
            )
            assert moved.status == 201, moved.text()

        inspector = _sign_in(browser, base, "inspector")
        inspector.goto(f"{base}/grid/events/{first}")
        assert inspector.inner_text("#status") == "处置反馈"
        inspector.fill("#act input[name=note]", "现场已清理干净")
        inspector.click("#act button[value=verify]")
        inspector.wait_for_url(f"**/grid/events/{first}")
        assert inspector.inner_text("#status") == "核查通过"
        centre.goto(f"{base}/grid/events/{first}")
        centre.click("#act button[value=close]")
        centre.wait_for_url(f"**/grid/events/{first}")
        assert centre.inner_text("#status") == "结案"
        history = centre.inner_text("#history")
        for label in ("信息收集", "立案", "派遣", "处置", "处置反馈", "核查通过", "结案"):
            assert label in history
        centre.screenshot(path=str(shots / "grid-event.png"), full_page=True)

        centre.goto(f"{base}/grid/map?status=closed")
        centre.wait_for_selector("#gridmap[data-state=ready]")
        assert centre.get_attribute("#gridmap", "data-points") == "1"
        assert centre.inner_text("#gridmap-count") == "1 个事件"
        centre.screenshot(path=str(shots / "grid-map.png"), full_page=True)
        # the point is drawn where the event is: clicking it opens the event
        x, y = centre.evaluate(
            "([lon, lat]) => echarts.getInstanceByDom(document.getElementById('gridmap'))"
            ".convertToPixel({geoIndex: 0}, [lon, lat])",
            [SPOT[0], SPOT[1]],
        )
        frame = centre.locator("#gridmap").bounding_box()
        centre.mouse.click(frame["x"] + x, frame["y"] + y)
        centre.wait_for_url(f"**/grid/events/{first}")
        centre.goto(f"{base}/grid/assessment")
        row = centre.locator("#assessment tbody tr", has_text="芙蓉区")
        assert row.locator(".registered").inner_text() == "1"
        assert row.locator(".closed_rate").inner_text() == "100.0%"
        centre.screenshot(path=str(shots / "grid-assessment.png"), full_page=True)

        # both reporters' apps see the outcome
        for number in (first, second["service_request_id"]):
            shown = app.get(f"/open311/v2/requests/{number}.json").json()[0]
            assert shown["status"] == "closed", shown
        browser.close()
    with cells.session() as session:
        statuses = {e.event_no: e.status for e in session.scalars(select(Event))}
    assert statuses == {first: "closed", second["service_request_id"]: "voided"}
