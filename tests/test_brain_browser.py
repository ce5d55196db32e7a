"""The cockpit in a real browser (Debian's chromium) on a small demo city: at 1366×768 and on the
1920×1080 big screen, every tile is drawn, and what each chart holds — read back from ECharts'
own option, or from the figures' data attributes — is what plain SQL over the same database
says; each tile's timing and as-of time is on hover; a day's bar opens that day's batches; the
screenshots the README shows are taken here."""

from __future__ import annotations

import json
import re
from pathlib import Path

from brain_expected import EXPECTED, agrees, shown
from citydata.brain import service, spec
from citydata.clock import CITY_ZONE, moment
from citydata.config import Settings
from citydata.opendata.service import build_datasets
from conftest import CHROMIUM, CHROMIUM_FLAGS, make_user, need_chromium

SHOTS = Path(__file__).parents[1] / "docs" / "screenshots"

# Read back what each tile drew: the chart's series from ECharts itself, the figures from the
# attributes the page set on them.
DRAWN = """
() => Array.from(document.querySelectorAll('.tile[data-tile]')).map((box) => {
  const tile = JSON.parse(box.dataset.payload);
  const out = {tile: box.dataset.tile, state: box.dataset.state, title: box.title,
               payload: tile.payload, figures: {}, series: [], items: [], regions: {}, links: 0};
  box.querySelectorAll('.fig[data-key]').forEach((f) => {
    out.figures[f.dataset.key] = f.dataset.value === '' ? null : Number(f.dataset.value);
  });
  const holder = box.querySelector('.chart');
  const chart = holder && window.echarts && echarts.getInstanceByDom(holder);
  out.empty = holder ? holder.dataset.empty === 'true' : true;
  if (chart) {
    const option = chart.getOption();
    option.series.forEach((s) => {
      if (s.type === 'map') s.data.forEach((d) => { out.regions[d.name] = d.value; });
      else if (s.type === 'pie') out.items = s.data.map((d) => ({name: d.name, key: d.key, value: d.value}));
      else if (s.type === 'sankey') out.links = s.links.reduce((n, l) => n + l.value, 0);
      else out.series.push({name: s.name, data: s.data});
    });
  }
  return out;
})
"""


def _as_payload(drawn: dict) -> dict:
    """What was drawn, in a payload's shape (keys from the page's payload: the chart holds names)."""
    payload = drawn["payload"]
    return {
        "figures": [{"key": k, "value": v} for k, v in drawn["figures"].items()],
        "keys": payload.get("keys", []),
        "series": drawn["series"],
        "items": drawn["items"],
        "regions": [{"key": k, "value": v} for k, v in drawn["regions"].items()],
        "links": [{"value": drawn["links"]}] if drawn["links"] else [],
    }


def _check(drawn: list[dict], session, now) -> set[str]:
    """Every tile drawn, and drawn with the figures SQL gives; returns the tiles checked."""
    checked = set()
    for d in drawn:
        name = d["tile"]
        assert d["state"] == "ready", (name, d["title"])
        assert re.search(r"查询 [\d.]+ ms（来自摘要）", d["title"]), (name, d["title"])
        assert "渲染" in d["title"] and "数据截至" in d["title"], d["title"]
        payload = d["payload"]
        rendered = _as_payload(d)
        # the chart holds what the tile's JSON holds …
        if payload.get("series") and not d["empty"]:
            assert [s["data"] for s in rendered["series"]] == [
                s["data"] for s in payload["series"]
            ], name
        if payload.get("kind") in {"progress", "figures"}:
            assert rendered["figures"] == [
                {"key": f["key"], "value": f["value"]} for f in payload["figures"]
            ], name
        # … and what the database says
        if name in EXPECTED:
            wanted = EXPECTED[name](session, now)
            if d["empty"] and set(wanted) - {"figures"}:
                continue  # nothing drawn: the tile says so, and the JSON tests check it
            problems = agrees(wanted, shown(rendered))
            assert problems == [], (name, problems)
            checked.add(name)
    return checked


def _sign_in(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/login?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "password123")
    page.click("main button")
    page.wait_for_url(f"{base}/")
    return page


def test_the_cockpit_draws_every_tile_with_the_databases_figures(demo_city, live_server):
    from playwright.sync_api import sync_playwright

    from citydata.app import create_app

    need_chromium()
    store = demo_city
    at = store.loaded_at
    now = moment(at)
    make_user(store, "chief_browser", "admin", None)
    # the pages ask every 10 s (the floor); the test server runs no refresher of its own
    settings = Settings(database_url=store.url, secret_key="test-secret", brain_seconds=10)
    app = create_app(store, settings, clock=lambda: at)
    base = live_server(app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # the portal is used: a download and a few API calls, counted and added up
        api = browser.new_context(base_url=base).request
        with store.session() as session:
            slug = next(
                d.slug
                for d in build_datasets(session, now.date()).values()
                if d.downloadable and d.stored
            )
        assert api.get(f"/open/dataset/{slug}/download.csv").status == 200
        for _ in range(3):
            assert api.get("/api/3/action/package_list").status == 200
        app.state.open_calls.flush(store)
        service.refresh(store, now, force=True)  # pre-warmed, as the server does at start

        laptop = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        page = _sign_in(laptop, base, "chief_browser")
        page.goto(f"{base}/brain")
        page.wait_for_selector("#cockpit[data-state=ready]")
        page.wait_for_timeout(800)  # ECharts' first animation
        drawn = page.evaluate(DRAWN)
        assert {d["tile"] for d in drawn} == set(spec.tiles())
        with store.session() as session:
            checked = _check(drawn, session, now)
        assert checked == set(EXPECTED), set(EXPECTED) - checked
        usage = next(d for d in drawn if d["tile"] == "open_usage_daily")
        assert usage["figures"] == {"downloads": 1, "calls": 3}
        ready_ms = float(page.get_attribute("#cockpit", "data-ready-ms"))
        assert ready_ms > 0
        page.screenshot(path=str(SHOTS / "brain-laptop.png"))
        page.screenshot(path=str(SHOTS / "brain-laptop-full.png"), full_page=True)

        # the portal is used again: the server's next round refreshes that tile's summary, and
        # the page, asking which summaries moved, fetches that one tile and draws it again
        assert api.get("/api/3/action/package_list").status == 200
        app.state.open_calls.flush(store)
        assert [d.tile for d in service.refresh(store, now)] == ["open_usage_daily"]
        page.wait_for_function(
            "() => document.getElementById('cockpit').dataset.refreshed === '1'", timeout=30000
        )
        assert (
            page.get_attribute("#tile-open_usage_daily .fig[data-key=calls]", "data-value") == "4"
        )

        # hover: the tile's timing and as-of time
        page.hover("#tile-svc_rates h3")
        assert "ms" in page.get_attribute("#tile-svc_rates", "title")

        # a day's bar, down to that day's batches
        daily = next(d for d in drawn if d["tile"] == "agg_batches_daily")
        today = now.astimezone(CITY_ZONE).date().isoformat()
        index = daily["payload"]["keys"].index(today)
        batches = daily["payload"]["series"][0]["data"][index]
        failed = daily["payload"]["series"][1]["data"][index]
        assert batches > 0
        page.locator("#tile-agg_batches_daily").scroll_into_view_if_needed()
        x, y = page.evaluate(
            "([i, v]) => echarts.getInstanceByDom(document.querySelector("
            "'#tile-agg_batches_daily .chart')).convertToPixel({seriesIndex: 0}, [i, v])",
            [index, batches / 2],
        )
        frame = page.locator("#tile-agg_batches_daily .chart").bounding_box()
        page.mouse.click(frame["x"] + x, frame["y"] + y)
        page.wait_for_url(f"**/batches?day={today}")
        assert page.inner_text("#total") == str(batches + failed)
        page.screenshot(path=str(SHOTS / "brain-drill-batches.png"))

        # a base opens on its overview; a unit on its picture
        page.goto(f"{base}/base/population")
        page.wait_for_selector("#completeness[data-state=ready]")
        page.screenshot(path=str(SHOTS / "brain-base-overview.png"), full_page=True)
        page.goto(f"{base}/units/csga")
        page.wait_for_selector("#unit-history[data-state=ready]")
        page.screenshot(path=str(SHOTS / "brain-unit.png"), full_page=True)

        # the command hall: 1920×1080, dark, the chrome hidden, the stage at full scale
        hall = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
        screen = _sign_in(hall, base, "chief_browser")
        screen.goto(f"{base}/brain/screen?kiosk=1")
        screen.wait_for_selector("#cockpit[data-state=ready]", state="attached")
        screen.wait_for_timeout(800)
        assert screen.locator("header.top").count() == 0
        assert screen.get_attribute("#stage", "data-scale") == "1.0000"
        drawn = screen.evaluate(DRAWN)
        on_screen = {t.name for t in spec.tiles().values() if t.screen}
        assert {d["tile"] for d in drawn} == on_screen
        with store.session() as session:
            assert _check(drawn, session, now) == on_screen & set(EXPECTED)
        screen.screenshot(path=str(SHOTS / "brain-screen.png"))

        # the public edition on the big screen, scaled down to a smaller display
        small = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        public = small.new_page()
        public.goto(f"{base}/brain/public/screen?kiosk=1")
        public.wait_for_selector("#cockpit[data-state=ready]", state="attached")
        public.wait_for_timeout(800)
        assert float(public.get_attribute("#stage", "data-scale")) == round(768 / 1080, 4)
        tiles = {d["tile"] for d in public.evaluate(DRAWN)}
        assert tiles == {t.name for t in spec.tiles().values() if t.public and t.screen}
        public.screenshot(path=str(SHOTS / "brain-public-screen.png"))
        public.goto(f"{base}/brain/public")
        public.wait_for_selector("#cockpit[data-state=ready]")
        public.wait_for_timeout(800)
        public.screenshot(path=str(SHOTS / "brain-public.png"))
        assert (
            json.loads(public.get_attribute("#tile-svc_rates", "data-payload"))["permission"]
            == "public"
        )
        browser.close()
