"""新生儿出生一件事 end to end in a real browser (Debian's chromium): a resident registers with a
verified identity, applies for the bundle with a prefilled form and nothing to upload, three
units' staff take their cases to 办结 on their pages while the fourth unit's own system does it
through the docking API, the figures show the result, and the reads behind the prefill are in
``citydata audit search`` for that person."""

from __future__ import annotations

import json
import re
from datetime import date

from sqlalchemy import select
from typer.testing import CliRunner

from citydata.accounts.models import User
from citydata.config import Settings
from citydata.services import docking
from citydata.services.models import Case
from conftest import CHROMIUM, CHROMIUM_FLAGS, NOON, fixed_clock, make_user, need_chromium
from sharing import PEOPLE
from test_services import ZHANG, app, platform  # noqa: F401 - the fixtures

TODAY = date.fromtimestamp(NOON).isoformat()


def test_newborn_bundle_from_browser_to_metrics(platform, live_server, tmp_path, env):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from citydata.app import create_app
    from citydata.cli import app as cli

    need_chromium()
    for name, unit in (("ga", "csga"), ("wj", "cswj"), ("yb", "csyb"), ("rs", "csrs")):
        make_user(platform, name, "steward", unit)
    with platform.session() as session:
        steward = session.scalar(select(User).where(User.username == "rs"))
        system = {
            "Authorization": f"Bearer {docking.register(session, steward, 'csrs', '社保经办系统').secret}"
        }
    settings = Settings(
        database_url=platform.url, secret_key="test-secret", data_dir=tmp_path / "data"
    )
    server = create_app(platform, settings, clock=fixed_clock)
    base = live_server(server)
    shots = tmp_path / "shots"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        resident = browser.new_page()
        resident.goto(f"{base}/services/register")
        resident.fill("input[name=username]", "zhangsan")
        resident.fill("input[name=password]", "a-good-password-1")
        resident.fill("input[name=name]", ZHANG[1])
        resident.fill("input[name=id_number]", ZHANG[0])
        resident.fill("input[name=phone]", ZHANG[6])
        resident.click("text=注册并认证")
        resident.wait_for_url(f"{base}/services")
        resident.click("text=新生儿出生一件事")
        assert "所有材料均由共享数据替代" in resident.content()
        resident.click("#apply")
        resident.wait_for_url("**/edit")
        assert resident.input_value("#f-name") == "张三"
        assert resident.get_attribute("#f-name", "readonly") is not None
        assert resident.input_value("#f-address").endswith("五一大道1号")
        assert resident.locator("#nothing-to-upload").count() == 1
        assert resident.locator("input[type=file]").count() == 0
        resident.fill("#f-baby_name", "张小宝")
        resident.fill("#f-baby_birth_date", "2026-11-28")
        resident.screenshot(path=str(shots / "newborn-form.png"), full_page=True)
        resident.click("#submit")
        resident.wait_for_url(re.compile(r".*/services/cases/\d+$"))
        assert resident.inner_text("#status") == "申请"

        with platform.session() as session:
            numbers = {c.unit_code: c.case_no for c in session.scalars(select(Case))}
        assert sorted(numbers) == ["csga", "csrs", "cswj", "csyb"]

        for name, unit in (("ga", "csga"), ("wj", "cswj"), ("yb", "csyb")):
            staff = browser.new_context().new_page()
            staff.goto(f"{base}/login?next=/services/staff")
            staff.fill("input[name=username]", name)
            staff.fill("input[name=password]", "password123")
            staff.click("main button")
            staff.wait_for_url(f"{base}/services/staff")
            staff.click(f"text={numbers[unit]}")
            assert staff.locator("#bundle tbody tr").count() == 4  # the bundle view
            staff.click("#act button[value=accepted]")
            staff.wait_for_url(f"**/services/staff/cases/{numbers[unit]}")
            staff.fill("#act input[name=note]", "材料齐全，准予")
            staff.click("#act button[value=granted]")
            staff.wait_for_url(f"**/services/staff/cases/{numbers[unit]}")
            assert staff.inner_text("#status") == "办结（准予）"
            staff.context.close()

        api = browser.new_context(base_url=base).request
        for key, status in (("rs-1", "accepted"), ("rs-2", "granted")):
            moved = api.post(
                f"/api/services/v1/cases/{numbers['csrs']}/status",
                data=json.dumps({"status": status, "on": TODAY}),
                headers={**system, "Idempotency-Key": key, "Content-Type": "application/json"},
            )
            assert moved.status == 201, moved.text()

        resident.goto(f"{base}/services/cases/{numbers['csrs']}")
        assert resident.inner_text("#status") == "办结（准予）"
        resident.select_option("select[name=score]", "5")
        resident.click("text=提交评价")

        resident.goto(f"{base}/services/metrics?by=unit")
        assert resident.inner_text("#finished") == "4"
        assert (
            resident.locator("#overall svg line.target").count() == 6
        )  # the 97 % target on every rate
        resident.screenshot(path=str(shots / "metrics.png"), full_page=True)
        browser.close()

    with platform.session() as session:
        assert {c.status for c in session.scalars(select(Case))} == {"granted"}
    found = CliRunner().invoke(cli, ["audit", "search", "--id-number", PEOPLE[0][0], "--json"])
    assert found.exit_code == 0, found.output
    entries = json.loads(found.output)
    prefill = [e for e in entries if e["action"] == "prefill"]
    assert len(prefill) == 1 and prefill[0]["case_id"] == numbers["cswj"]  # the bundle's first
    assert prefill[0]["consumer_code"] == "cszw" and prefill[0]["end_user"] == "zhangsan"
    assert any(e["action"] == "verify" and e["case_id"] == "实名认证" for e in entries)
