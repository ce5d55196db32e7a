import io
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from citydata.catalog import service
from citydata.catalog.models import Field, ResourceClass, Unit
from citydata.catalog.schema import CatalogProblems
from citydata.cli import app
from conftest import SAMPLE, SEVEN_BASES, make_user


def counts(store):
    with store.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(t))
            for t in (Unit, ResourceClass, Field)
        )


def test_sample_catalog_imports_with_one_class_per_base_database(store, sample_catalog):
    with store.session() as session:
        bases = set(session.scalars(select(ResourceClass.base_db)))
    assert bases >= SEVEN_BASES
    doc = json.loads(SAMPLE.read_text())
    assert counts(store) == (
        len(doc["units"]),
        len(doc["classes"]),
        sum(len(c["fields"]) for c in doc["classes"]),
    )


def test_json_and_excel_round_trips_are_lossless(store, sample_catalog, tmp_path):
    with store.session() as session:
        first = service.export_json(session)
        workbook = service.export_xlsx(session)
    path = tmp_path / "catalog.xlsx"
    path.write_bytes(workbook)
    with store.session() as session:
        service.import_catalog(session, path)
    with store.session() as session:
        assert service.export_json(session) == first
        assert service.export_xlsx(session) == workbook or _sheets(
            service.export_xlsx(session)
        ) == _sheets(workbook)
    doc = json.loads(SAMPLE.read_text())
    by_code = {c["code"]: c for c in doc["classes"]}
    assert [c == by_code[c["code"]] for c in first["classes"]] == [True] * len(by_code)


def _sheets(data: bytes):
    book = load_workbook(io.BytesIO(data))
    return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in book}


def test_excel_uses_chinese_headers_and_terms(store, sample_catalog):
    with store.session() as session:
        sheets = _sheets(service.export_xlsx(session))
    assert list(sheets) == ["单位", "信息资源", "信息项"]
    header = sheets["信息资源"][0]
    assert header[:3] == ("信息资源代码", "信息资源名称", "资源属性") or header[:3] == [
        "信息资源代码",
        "信息资源名称",
        "资源属性",
    ]
    row = dict(zip(header, sheets["信息资源"][1], strict=True))
    assert row["共享类型"] in {"无条件共享", "有条件共享", "不予共享"}


def broken_workbook(store, tmp_path):
    """The sample as a workbook, with six problems planted in known cells."""
    with store.session() as session:
        book = load_workbook(io.BytesIO(service.export_xlsx(session)))
    units, classes, fields = book["单位"], book["信息资源"], book["信息项"]
    col = {ws.title: {c.value: c.column for c in ws[1]} for ws in book}
    units.cell(2, col["单位"]["统一社会信用代码"]).value = "91430100MA4L16JD2X"
    classes.cell(2, col["信息资源"]["共享条件"]).value = None  # row 2 is conditional
    classes.cell(3, col["信息资源"]["提供方代码"]).value = "nosuchunit"
    classes.cell(4, col["信息资源"]["涉密属性"]).value = "涉密"
    classes.cell(5, col["信息资源"]["共享类型"]).value = "随便共享"
    fields.cell(3, col["信息项"]["信息项名称"]).value = fields.cell(
        2, col["信息项"]["信息项名称"]
    ).value
    path = tmp_path / "broken.xlsx"
    book.save(path)
    return path


EXPECTED_PROBLEMS = {
    ("单位", 2, "统一社会信用代码", "credit_code"),
    ("信息资源", 2, "共享条件", "share_condition"),
    ("信息资源", 3, "提供方代码", "unknown_unit"),
    ("信息资源", 4, "涉密属性", "classified"),
    ("信息资源", 5, "共享类型", "vocabulary"),
    ("信息项", 2, "信息项名称", "duplicate"),
    ("信息项", 3, "信息项名称", "duplicate"),
}


def test_workbook_with_errors_reports_every_problem_and_writes_nothing(store, tmp_path):
    # Build the workbook from the sample in one database, import it into an empty one.
    with store.session() as session:
        service.import_catalog(session, SAMPLE)
    path = broken_workbook(store, tmp_path)
    with store.session() as session:
        session.execute(Field.__table__.delete())
        session.execute(ResourceClass.__table__.delete())
        session.execute(Unit.__table__.delete())
    with pytest.raises(CatalogProblems) as caught, store.session() as session:
        service.import_catalog(session, path)
    found = {(p.sheet, p.row, p.column, p.rule) for p in caught.value.problems}
    assert found == EXPECTED_PROBLEMS
    assert counts(store) == (0, 0, 0)


def test_cli_import_refusal_lists_problems(env, store, tmp_path):
    with store.session() as session:
        service.import_catalog(session, SAMPLE)
    path = broken_workbook(store, tmp_path)
    before = counts(store)
    result = CliRunner().invoke(app, ["catalog", "import", str(path)])
    assert result.exit_code == 1
    assert f"发现 {len(EXPECTED_PROBLEMS)} 个问题" in result.output
    assert "信息资源 第 4 行 「涉密属性」" in result.output
    assert counts(store) == before


def test_json_problems_name_the_class_and_field(store):
    doc = json.loads(SAMPLE.read_text())
    doc["classes"][0]["fields"][1]["data_type"] = "Q"
    doc["classes"][0]["code"] = "101001/1"
    with pytest.raises(CatalogProblems) as caught, store.session() as session:
        units, classes, fields = service.rows_from_json(doc)
        service.check(session, units, classes, fields)
    found = {(p.sheet, p.row, p.column, p.rule) for p in caught.value.problems}
    assert ("classes[1].fields", 2, "数据类型", "vocabulary") in found
    assert ("classes", 1, "信息资源代码", "resource_code") in found


def test_cli_list_show_export(env, store, sample_catalog, tmp_path):
    runner = CliRunner()
    listed = json.loads(
        runner.invoke(app, ["catalog", "list", "--sharing", "conditional", "--json"]).output
    )
    assert {c["code"] for c in listed["results"]} == {"101001/00001", "101005/00001"}
    shown = json.loads(runner.invoke(app, ["catalog", "show", "101001/00001", "--json"]).output)
    assert shown["fields"][0]["name"] == "id_number" and shown["fields"][0]["is_key"] is True
    units = json.loads(runner.invoke(app, ["unit", "list", "--json"]).output)
    assert {u["code"]: u["classes"] for u in units}["cscg"] == 2
    out = tmp_path / "out.xlsx"
    assert (
        runner.invoke(app, ["catalog", "export", "--format", "xlsx", "-o", str(out)]).exit_code == 0
    )
    assert out.stat().st_size > 0
    missing = runner.invoke(app, ["catalog", "show", "999999/00001"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_api_lists_and_filters(client, sample_catalog):
    r = client.get("/api/v1/catalog/classes", params={"base": "housing"}).json()
    assert [c["code"] for c in r["results"]] == ["101005/00001"]
    r = client.get("/api/v1/catalog/classes", params={"sharing": "不予共享"}).json()
    assert r["count"] == 1 and r["results"][0]["share_type"] == "none"
    r = client.get("/api/v1/catalog/classes", params={"q": "人口", "limit": 1}).json()
    assert r["count"] == 1 and r["results"][0]["name"] == "户籍人口信息"
    r = client.get("/api/v1/catalog/classes", params={"limit": 3, "offset": 3}).json()
    assert r["count"] == 9 and len(r["results"]) == 3
    assert (
        client.get("/api/v1/catalog/classes/101002/00001").json()["fields"][0]["name"]
        == "credit_code"
    )
    assert client.get("/api/v1/catalog/classes/999/1").status_code == 404
    units = client.get("/api/v1/units").json()
    assert len(units) == 8


def new_class(provider="csjy"):
    return {
        "code": "301003/00001",
        "name": "幼儿园名录",
        "category": "department",
        "classification": "301003",
        "provider_code": provider,
        "summary": "全市幼儿园",
        "format_class": "spreadsheet",
        "share_type": "unconditional",
        "share_methods": ["download"],
        "open_type": "open",
        "update_cycle": "yearly",
        "fields": [
            {
                "name": "kg_code",
                "label": "幼儿园代码",
                "data_type": "C",
                "required": True,
                "is_key": True,
            }
        ],
    }


def test_api_writes_need_admin_or_the_owning_steward(client, store, sample_catalog, admin_token):
    own = make_user(store, "jy", "steward", "csjy")
    other = make_user(store, "ga", "steward", "csga")
    assert client.post("/api/v1/catalog/classes", json=new_class()).status_code == 401
    bad = client.post(
        "/api/v1/catalog/classes",
        json=new_class(),
        headers={"Authorization": "Bearer cdt_nope_nope"},
    )
    assert bad.status_code == 401
    r = client.post(
        "/api/v1/catalog/classes", json=new_class(), headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/catalog/classes", json=new_class(), headers={"Authorization": f"Bearer {own}"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    again = client.post(
        "/api/v1/catalog/classes", json=new_class(), headers={"Authorization": f"Bearer {own}"}
    )
    assert again.status_code == 422
    changed = {**new_class(), "summary": "全市幼儿园名称和地址"}
    r = client.put(
        "/api/v1/catalog/classes/301003/00001",
        json=changed,
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert (
        r.status_code == 200
        and r.json()["version"] == 2
        and r.json()["summary"] == changed["summary"]
    )
    invalid = {**changed, "share_type": "conditional"}
    r = client.put(
        "/api/v1/catalog/classes/301003/00001",
        json=invalid,
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 422
    assert r.json()["detail"]["problems"][0]["rule"] == "share_condition"
    r = client.delete(
        "/api/v1/catalog/classes/301003/00001", headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 403
    r = client.delete(
        "/api/v1/catalog/classes/301003/00001", headers={"Authorization": f"Bearer {own}"}
    )
    assert r.json()["status"] == "retired" and r.json()["version"] == 3
