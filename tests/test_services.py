"""一网通办: matters, real-name registration, prefill through the sharing service (audited,
masked, no back door), locked fields and discrepancy reports, bundles, the case clock on the
working-day calendar, transitions as data, visits and 一次办, 好差评, uploads that lose
nothing, the docking API with idempotency and webhooks, and the figures."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta

import polars as pl
import pytest
from sqlalchemy import func, select

from citydata.accounts.models import User
from citydata.audit.models import AuditEntry
from citydata.bases import service as bases
from citydata.catalog.models import Unit
from citydata.config import Settings
from citydata.demo.services import grant_platform, matters_doc
from citydata.ingest.service import ingest
from citydata.keys import Keys
from citydata.mechanisms.models import IdempotencyKey, WebhookNotice
from citydata.mechanisms.outbox import dispatch
from citydata.mechanisms.workdays import add_workdays
from citydata.services import cases, docking, identity, matters, metrics, uploads
from citydata.services import service as services
from citydata.services.models import (
    Case,
    CaseEvent,
    Discrepancy,
    FollowUp,
    Identity,
    Matter,
    Upload,
    Visit,
)
from citydata.services.shared import ServiceError
from citydata.share.models import ShareApplication
from conftest import TODAY, fixed_clock, make_user
from sharing import PEOPLE

KEYS = Keys(("test-secret",))
ZHANG = PEOPLE[0]  # 张三, 430102199001011238, phone 13812345678
OUYANG = PEOPLE[1]
COMPANY = "91430100MA4L0000X9"  # a valid credit code, 张三 its legal representative
LEGAL_FIELDS = [
    "credit_code",
    "name",
    "legal_rep",
    "legal_rep_id",
    "address",
    "industry",
    "capital",
    "status",
    "established",
]
DAY = date(2025, 9, 30)  # before the National Day holidays of 2025 (1–8 October)


def _code(name: str, level: str = "city") -> str:
    return next(m["impl_code"] for m in DOC["matters"] if m["name"] == name and m["level"] == level)


DOC: dict = {}


@pytest.fixture
def platform(city, tmp_path):
    """The catalog, three residents and one company in the bases, the service centre's grants
    approved, the demo's matters published."""
    from citydata.standards import is_valid_credit_code

    assert is_valid_credit_code(COMPANY)
    path = tmp_path / "company.csv"
    row = [
        COMPANY,
        "长沙星辰科技有限公司",
        ZHANG[1],
        ZHANG[0],
        "长沙市芙蓉区五一大道9号",
        "软件",
        "100",
        "存续",
        "2020-01-01",
    ]
    pl.DataFrame([row], schema=LEGAL_FIELDS, orient="row").write_csv(path)
    ingest(city, path, "101002/00001")
    bases.resolve(city, "legal_person")
    assert grant_platform(city, TODAY) == 3
    with city.session() as session:
        units = [
            {"code": u.code, "credit_code": u.credit_code} for u in session.scalars(select(Unit))
        ]
        DOC.clear()
        DOC.update(matters_doc(units))
        matters.import_matters(
            session, {"matters": DOC["matters"], "bundles": DOC["bundles"]}, publish_all=True
        )
    return city


@pytest.fixture
def app(platform, tmp_path):
    from citydata.app import create_app

    settings = Settings(
        database_url=platform.url, secret_key="test-secret", data_dir=tmp_path / "data"
    )
    return create_app(platform, settings, clock=fixed_clock)


@pytest.fixture
def web(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def register(web, person=ZHANG, username="zhangsan", phone=None):
    token = csrf(web.get("/services/register").text)
    return web.post(
        "/services/register",
        data={
            "username": username,
            "password": "a-good-password-1",
            "name": person[1],
            "id_number": person[0],
            "phone": phone if phone is not None else (person[6] or ""),
            "csrf": token,
        },
        follow_redirects=False,
    )


def citizen(store, person=ZHANG, username="zhangsan") -> User:
    with store.session() as session:
        return identity.register_person(
            session,
            KEYS,
            username=username,
            password="a-good-password-1",
            name=person[1],
            id_number=person[0],
            phone=person[6],
            client_ip="10.0.0.9",
        )


def start(store, user: User, name: str, person=ZHANG):
    with store.session() as session:
        applicant = identity.applicant(session, KEYS, user, "person")
        case = cases.start(session, KEYS, user, applicant, _code(name), DAY)
        return case.case_no


def audit_entries(store, **where) -> list[AuditEntry]:
    with store.session() as session:
        query = select(AuditEntry)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(session.scalars(query))


# ---------------------------------------------------------------- matters


def test_demo_matters_cover_four_levels_every_kind_and_the_newborn_bundle(platform):
    with platform.session() as session:
        published = matters.counts(session)
        assert sum(published.values()) >= 100
        assert set(published) == {"city", "district", "street", "community"}
        kinds = set(session.scalars(select(Matter.kind).distinct()))
        assert kinds == set(matters.KINDS)
        bundle = services.bundles(session)[0]
        names = [m.name for m in services.bundle_matters(session, bundle)]
    assert names == ["出生医学证明办理", "新生儿入户登记", "城乡居民医保参保登记", "社会保障卡申领"]


def test_a_bad_matter_file_is_refused_whole_naming_every_problem(platform):
    good = json.loads(json.dumps(DOC["matters"][0]))
    bad = json.loads(json.dumps(DOC["matters"][1]))
    bad |= {"impl_code": "X-1", "unit": "nosuch", "promised_days": 40, "legal_days": 20}
    bad["materials"].append({"name": "假材料", "replaced_by": "999999/00000"})
    bad["form"].append({"name": "x", "label": "X", "locked": True})
    bad["form"].append({"name": "y", "label": "Y", "prefill": "101001/00000.nosuch"})
    with platform.session() as session:
        before = session.scalar(select(func.count()).select_from(Matter))
        with pytest.raises(matters.MatterProblems) as caught:
            matters.import_matters(session, {"matters": [good | {"name": "改名"}, bad]})
        session.rollback()
        after = session.scalar(select(func.count()).select_from(Matter))
    text = " / ".join(caught.value.problems)
    for expected in (
        "不是目录中的单位",
        "承诺时限不能长于法定时限",
        "999999/00000 不是目录中的信息资源",
        "只有预填的信息项可以锁定",
        "101001/00000.nosuch",
    ):
        assert expected in text, expected
    assert "事项 2（X-1）" in text and before == after


def test_matters_round_trip_through_the_units_workbook(platform, tmp_path):
    with platform.session() as session:
        doc = matters.export_doc(session)
    path = tmp_path / "matters.xlsx"
    path.write_bytes(matters.export_workbook(doc))
    back = matters.read_workbook(path)
    for got, sent in zip(back["matters"], doc["matters"], strict=True):
        assert {k: v for k, v in got.items() if got[k] != sent.get(k)} == {}, sent["impl_code"]
        assert got == sent


def test_a_published_version_is_frozen_and_cases_keep_theirs(platform):
    user = citizen(platform)
    code = _code("户籍证明开具")
    number = start(platform, user, "户籍证明开具")
    changed = next(m for m in DOC["matters"] if m["impl_code"] == code) | {
        "promised_days": 0,
        "name": "户籍证明开具（新版）",
    }
    with platform.session() as session:
        report = matters.import_matters(session, {"matters": [changed]})
        assert report.new_versions == 1
        versions = session.execute(
            select(Matter.version, Matter.status)
            .where(Matter.impl_code == code)
            .order_by(Matter.version)
        ).all()
        assert versions == [(1, "published"), (2, "draft")]
        matters.publish(session, code)
    with platform.session() as session:
        case = cases.by_number(session, number)
        assert cases.matter_of(session, case).version == 1
        assert matters.published(session, code).name == "户籍证明开具（新版）"
        assert (
            session.scalar(
                select(Matter.status).where(Matter.impl_code == code, Matter.version == 1)
            )
            == "retired"
        )


# ---------------------------------------------------------------- 实名认证


def test_registration_verifies_against_the_population_base_and_tells_nothing(web, platform):
    wrong_phone = register(web, phone="13800000000", username="guess1")
    wrong_name = register(web, person=(ZHANG[0], "张四", *ZHANG[2:]), username="guess2")
    assert wrong_phone.status_code == wrong_name.status_code == 400
    message = re.search(r'id="error">([^<]+)<', wrong_phone.text).group(1)
    assert message == re.search(r'id="error">([^<]+)<', wrong_name.text).group(1)
    assert ZHANG[6] not in wrong_phone.text and "一致" not in message
    ok = register(web)
    assert ok.status_code == 303
    with platform.session() as session:
        found = session.scalar(select(Identity))
        assert found.kind == "person" and found.name == "张三" and ZHANG[0] not in found.subject
        assert KEYS.decrypt(found.subject) == ZHANG[0]
        assert (
            session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.username.in_(["guess1", "guess2"]))
            )
            == 0
        )
    checks = audit_entries(platform, action="verify", consumer_code="cszw")
    assert len(checks) == 3 and {e.case_id for e in checks} == {"实名认证"}
    assert registered_twice_is_refused(web)


def registered_twice_is_refused(web) -> bool:
    again = register(web, username="zhangsan2")
    return again.status_code == 409


def test_failed_identity_checks_are_throttled_even_for_the_right_answer(web, platform):
    for i in range(identity.BY_SUBJECT.limit):
        assert register(web, phone=f"1390000000{i}", username=f"g{i}").status_code == 400
    assert register(web).status_code == 429
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Identity)) == 0


def test_a_company_is_verified_by_its_legal_representative_only(platform):
    zhang, ouyang = citizen(platform), citizen(platform, OUYANG, "ouyang")
    with platform.session() as session:
        with pytest.raises(ServiceError) as refused:
            identity.add_company(
                session,
                KEYS,
                session.get(User, ouyang.id),
                credit_code=COMPANY,
                company_name="长沙星辰科技有限公司",
                client_ip="1.1.1.1",
            )
        assert refused.value.code == "not_verified"
    with platform.session() as session:
        company = identity.add_company(
            session,
            KEYS,
            session.get(User, zhang.id),
            credit_code=COMPANY,
            company_name="长沙星辰科技有限公司",
            client_ip="1.1.1.1",
        )
        assert company.kind == "company" and KEYS.decrypt(company.subject) == COMPANY


# ---------------------------------------------------------------- prefill, locks, discrepancies


def test_prefill_reads_through_the_grant_masked_and_audited_with_the_case_number(platform):
    user = citizen(platform)
    number = start(platform, user, "户籍证明开具")
    with platform.session() as session:
        case = cases.by_number(session, number)
        form = dict(case.form)
    assert (
        form["name"] == "张三"
        and form["address"].endswith("芙蓉区五一大道1号")
        and form["phone"] == ZHANG[6]
    )
    assert (
        form["id_number"] != ZHANG[0] and form["id_number"][:3] == ZHANG[0][:3]
    )  # masked by the grant
    reads = audit_entries(platform, action="prefill")
    assert len(reads) == 1
    assert (
        reads[0].case_id == number
        and reads[0].end_user == "zhangsan"
        and reads[0].consumer_code == "cszw"
    )
    assert reads[0].subjects and set(reads[0].fields) == {"name", "id_number", "address", "phone"}
    # Reloading the page opens no second draft and reads nothing again.
    assert start(platform, user, "户籍证明开具") == number
    assert len(audit_entries(platform, action="prefill")) == 1


def test_without_an_approved_application_the_platform_reads_nothing(platform):
    user = citizen(platform)
    with platform.session() as session:
        for app in session.scalars(
            select(ShareApplication).where(ShareApplication.consumer_code == "cszw")
        ):
            app.status = "revoked"
    with platform.session() as session, pytest.raises(ServiceError) as refused:
        applicant = identity.applicant(session, KEYS, session.get(User, user.id), "person")
        cases.start(
            session, KEYS, session.get(User, user.id), applicant, _code("户籍证明开具"), DAY
        )
    assert refused.value.code == "not_granted"
    assert audit_entries(platform, action="prefill") == []


def test_a_locked_field_cannot_change_and_a_correction_reports_to_the_owner(platform):
    user = citizen(platform)
    number = start(platform, user, "户籍证明开具")
    with platform.session() as session:
        case = cases.by_number(session, number)
        with pytest.raises(ServiceError) as locked:
            cases.save(session, [case], {"name": "王五"})
        assert locked.value.code == "locked_field"
    with platform.session() as session:
        case = cases.by_number(session, number)
        assert case.form["name"] == "张三"
        cases.save(session, [case], {"address": "长沙市天心区书院路8号", "purpose": "入学"})
    with platform.session() as session:
        report = session.scalar(select(Discrepancy))
        assert (report.field, report.class_code, report.provider_code) == (
            "address",
            "101001/00000",
            "csga",
        )
        assert (
            report.master_id
            and "书院路8号" not in report.claimed
            and report.claimed.startswith("长沙市天心区")
        )
    assert services.discrepancies(platform.session().__enter__(), "csga")[0]["case_no"] == number
    with platform.session() as session:
        case = cases.by_number(session, number)
        cases.save(session, [case], {"address": case.prefilled["address"]["value"]})
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Discrepancy)) == 0


def test_locked_fields_are_checked_on_the_server_whatever_the_page_sends(web, platform):
    assert register(web).status_code == 303
    page = web.get(f"/services/matters/{_code('户籍证明开具')}")
    web.post(f"/services/matters/{_code('户籍证明开具')}/apply", data={"csrf": csrf(page.text)})
    with platform.session() as session:
        number = session.scalar(select(Case.case_no))
    edit = web.get(f"/services/cases/{number}/edit")
    assert 'readonly class="locked"' in edit.text
    forged = web.post(
        f"/services/cases/{number}/edit",
        data={"csrf": csrf(edit.text), "f:name": "王五", "action": "submit"},
    )
    assert forged.status_code == 422 and "锁定" in forged.text
    with platform.session() as session:
        case = session.scalar(select(Case))
        assert case.status == "draft" and case.form["name"] == "张三"


# ---------------------------------------------------------------- the newborn bundle


def test_a_bundle_is_one_form_one_submission_four_linked_cases_read_once(platform):
    user = citizen(platform)
    with platform.session() as session:
        applicant = identity.applicant(session, KEYS, user, "person")
        found = cases.start_bundle(
            session, KEYS, session.get(User, user.id), applicant, "cs-newborn", DAY
        )
        numbers = [c.case_no for c in found]
    assert len(numbers) == 4
    assert len(audit_entries(platform, action="prefill")) == 1  # one read of the population base
    with platform.session() as session:
        found = cases.linked(session, numbers[0])
        with pytest.raises(ServiceError) as incomplete:
            cases.submit(session, found, "zhangsan", DAY)
        assert incomplete.value.code == "incomplete"
    with platform.session() as session:
        assert {c.status for c in cases.linked(session, numbers[0])} == {"draft"}
        found = cases.linked(session, numbers[0])
        cases.save(session, found, {"baby_name": "张小宝", "baby_birth_date": "2025-09-20"})
        assert all(not cases.missing_materials(session, c) for c in found)
        cases.submit(session, found, "zhangsan", DAY)
    with platform.session() as session:
        linked = cases.linked(session, numbers[0])
        assert [c.status for c in linked] == ["submitted"] * 4
        assert {c.bundle_case for c in linked} == {numbers[0]}
        assert sorted(c.unit_code for c in linked) == ["csga", "csrs", "cswj", "csyb"]
        baby = [c.form.get("baby_name") for c in linked]
    assert baby == ["张小宝", "张小宝", None, None]  # only the matters whose form asks for it


# ---------------------------------------------------------------- steps and the clock


def _submitted(platform, name="新生儿入户登记", person=ZHANG, username="zhangsan") -> str:
    user = citizen(platform, person, username)
    number = start(platform, user, name)
    with platform.session() as session:
        case = cases.by_number(session, number)
        extra = {
            f["name"]: "x"
            for f in cases.matter_of(session, case).form
            if f["name"] not in case.form
        }
        cases.save(session, [case], extra)
        cases.submit(session, [case], username, DAY)
    return number


def test_the_clock_counts_working_days_and_stops_during_supplement(platform):
    number = _submitted(platform)
    staff = make_user(platform, "ga", "steward", "csga")
    assert staff
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "ga"))
        case = services.act(session, clerk, number, "accepted", DAY, TODAY)
        # 5 working days from 30 September 2025: 1–8 October are holidays, 11 October a Saturday
        # worked in exchange.
        assert case.deadline == date(2025, 10, 14) == add_workdays(DAY, 5)[0]
        services.act(session, clerk, number, "supplement_start", date(2025, 10, 9), TODAY)
        assert case.stage == "paused" and not cases.overdue(case, date(2025, 12, 1))
        services.act(session, clerk, number, "supplement_end", date(2025, 10, 13), TODAY)
        # paused from the 9th to the 13th: the 10th, 11th (worked Saturday) and 13th — 3 days
        assert case.paused_days == 3 and case.deadline == add_workdays(DAY, 8)[0] == date(
            2025, 10, 17
        )
        assert cases.overdue(case, date(2025, 10, 20)) and not cases.overdue(
            case, date(2025, 10, 17)
        )
        services.act(session, clerk, number, "granted", date(2025, 10, 16), TODAY, "准予")
        assert (
            case.finished_on == date(2025, 10, 16)
            and case.stage == "done"
            and not cases.overdue(case, date(2026, 1, 1))
        )


def test_a_step_not_in_the_table_is_refused_naming_both_and_changes_nothing(platform):
    number = _submitted(platform)
    make_user(platform, "ga", "steward", "csga")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "ga"))
        events = session.scalar(select(func.count()).select_from(CaseEvent))
        with pytest.raises(ServiceError) as refused:
            services.act(session, clerk, number, "granted", DAY, TODAY)
        assert (
            refused.value.status == 409
            and "「申请」" in str(refused.value)
            and "「办结（准予）」" in str(refused.value)
        )
        with pytest.raises(ServiceError) as unknown:
            services.act(session, clerk, number, "approved-by-magic", DAY, TODAY)
        assert "未知的状态" in str(unknown.value)
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(CaseEvent)) == events
        assert cases.by_number(session, number).status == "submitted"


def test_only_the_units_staff_move_its_cases(platform):
    number = _submitted(platform)
    make_user(platform, "mz", "steward", "csmz")
    with platform.session() as session:
        other = session.scalar(select(User).where(User.username == "mz"))
        with pytest.raises(ServiceError) as refused:
            services.act(session, other, number, "accepted", DAY, TODAY)
        assert refused.value.status == 403


def test_the_window_takes_any_matter_routes_it_and_counts_the_visit(platform):
    make_user(platform, "hall", "consumer", "cszw")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "hall"))
        with pytest.raises(ServiceError) as wrong:
            services.take_at_window(
                session, KEYS, clerk, _code("户籍证明开具"), ZHANG[0], "张四", {}, DAY
            )
        assert wrong.value.code == "not_verified" and services.keeps_writes(wrong.value)
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "hall"))
        case = services.take_at_window(
            session, KEYS, clerk, _code("户籍证明开具"), ZHANG[0], "张三", {"purpose": "入学"}, DAY
        )
        assert (case.unit_code, case.channel, case.status, case.visits) == (
            "csga",
            "window",
            "submitted",
            1,
        )
        assert session.scalar(select(func.count()).select_from(Visit)) == 1
    assert {e.case_id for e in audit_entries(platform, action="verify")} == {"一窗受理"}


def test_bad_ratings_open_a_follow_up_due_in_fifteen_working_days(platform):
    number = _submitted(platform)
    make_user(platform, "ga", "steward", "csga")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "ga"))
        case = cases.by_number(session, number)
        with pytest.raises(ServiceError):
            cases.rate(session, case, 5, "", DAY)
        services.act(session, clerk, number, "accepted", DAY, TODAY)
        services.act(session, clerk, number, "granted", date(2025, 10, 9), TODAY)
        with pytest.raises(ServiceError) as no_reason:
            cases.rate(session, case, 1, " ", date(2025, 10, 9))
        assert no_reason.value.code == "bad_rating"
        follow = cases.rate(session, case, 1, "等太久", date(2025, 10, 9))
        assert follow.due == add_workdays(date(2025, 10, 9), 15)[0] == date(2025, 10, 29)
        with pytest.raises(ServiceError):
            cases.rate(session, case, 5, "", date(2025, 10, 9))
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(FollowUp)) == 1


# ---------------------------------------------------------------- uploads


class Boom(RuntimeError):
    pass


def _draft(platform, name="户口迁入"):
    user = citizen(platform)
    return start(platform, user, name)


def test_uploads_keep_the_sha256_and_refuse_big_or_foreign_files_leaving_nothing(
    platform, tmp_path
):
    number = _draft(platform)
    store = uploads.DiskStorage(tmp_path / "up")
    pdf = b"%PDF-1.7\n" + b"x" * 5000
    with platform.session() as session:
        case = cases.by_number(session, number)
        assert cases.missing_materials(session, case) == ["迁入地住所证明"]
        with pytest.raises(ServiceError) as big:
            uploads.attach(session, store, case, "迁入地住所证明", "a.pdf", [pdf] * 3, limit=10_000)
        assert big.value.status == 413
        with pytest.raises(ServiceError) as foreign:
            uploads.attach(
                session, store, case, "迁入地住所证明", "a.pdf", [b"MZ\x90\x00 not a pdf"]
            )
        assert foreign.value.status == 415

        def dying():
            yield pdf
            raise Boom  # the connection dies half-way

        with pytest.raises(Boom):
            uploads.attach(session, store, case, "迁入地住所证明", "a.pdf", dying())
        assert list((tmp_path / "up").rglob("*")) == [] or all(
            p.is_dir() for p in (tmp_path / "up").rglob("*")
        )
        found = uploads.attach(
            session, store, case, "迁入地住所证明", "../../证明.pdf", [pdf[:100], pdf[100:]]
        )
        assert found.sha256 == hashlib.sha256(pdf).hexdigest() and found.size == len(pdf)
        assert found.file_name == "证明.pdf" and found.media_type == "application/pdf"
        with store.open(found.storage_key) as f:
            assert f.read() == pdf
        assert cases.missing_materials(session, case) == []
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 1
        assert uploads.orphans(session, store) == []


def test_an_oversized_upload_through_the_page_is_413_and_stores_nothing(web, platform, app):
    assert register(web).status_code == 303
    page = web.get(f"/services/matters/{_code('户口迁入')}")
    web.post(f"/services/matters/{_code('户口迁入')}/apply", data={"csrf": csrf(page.text)})
    with platform.session() as session:
        number = session.scalar(select(Case.case_no))
    token = csrf(web.get(f"/services/cases/{number}/edit").text)
    big = b"%PDF-" + b"0" * (uploads.MAX_BYTES + 1)
    answer = web.post(
        f"/services/cases/{number}/upload",
        data={"csrf": token, "material": "迁入地住所证明"},
        files={"file": ("big.pdf", big, "application/pdf")},
    )
    assert answer.status_code == 413
    folder = app.state.settings.data_dir / "uploads"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0


# ---------------------------------------------------------------- docking


@pytest.fixture
def system(platform):
    make_user(platform, "ga", "steward", "csga")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "ga"))
        issued = docking.register(session, clerk, "csga", "长沙市公安人口管理系统")
        return {"Authorization": f"Bearer {issued.secret}"}


def _open(web, system, key="k-1", **changes):
    body = {
        "matter": _code("户籍证明开具"),
        "applicant": {"kind": "person", "number": OUYANG[0], "name": OUYANG[1]},
        "channel": "online",
        "form": {"purpose": "入学"},
    } | changes
    return web.post("/api/services/v1/cases", json=body, headers={**system, "Idempotency-Key": key})


def test_a_docked_system_opens_a_case_once_however_often_it_retries(web, platform, system):
    first = _open(web, system)
    again = _open(web, system)
    assert first.status_code == again.status_code == 201
    assert (
        first.json()["case_no"] == again.json()["case_no"]
        and again.headers["Idempotent-Replayed"] == "true"
    )
    other = _open(web, system, form={"purpose": "出国"})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    missing = web.post("/api/services/v1/cases", json={}, headers=system)
    assert missing.status_code == 422  # the body is checked first; then the key
    no_key = web.post(
        "/api/services/v1/cases", json=json.loads(first.request.content), headers=system
    )
    assert no_key.status_code == 400
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        case = session.scalar(select(Case))
        assert (case.source, case.unit_code, case.status) == ("docked", "csga", "submitted")


def test_a_docked_system_moves_its_cases_by_the_table_only(web, platform, system):
    number = _open(web, system).json()["case_no"]
    bad = web.post(
        f"/api/services/v1/cases/{number}/status",
        json={"status": "granted", "on": "2025-09-30"},
        headers={**system, "Idempotency-Key": "s-1"},
    )
    assert bad.status_code == 409 and "不能转为" in bad.json()["detail"]
    ok = web.post(
        f"/api/services/v1/cases/{number}/status",
        json={"status": "accepted", "on": TODAY.isoformat()},
        headers={**system, "Idempotency-Key": "s-2"},
    )
    assert ok.status_code == 201 and ok.json()["status"] == "accepted"
    retry = web.post(
        f"/api/services/v1/cases/{number}/status",
        json={"status": "accepted", "on": TODAY.isoformat()},
        headers={**system, "Idempotency-Key": "s-2"},
    )
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    future = web.post(
        f"/api/services/v1/cases/{number}/status",
        json={"status": "granted", "on": (TODAY + timedelta(days=3)).isoformat()},
        headers={**system, "Idempotency-Key": "s-3"},
    )
    assert future.status_code == 422
    with platform.session() as session:
        statuses = list(session.scalars(select(CaseEvent.status).order_by(CaseEvent.id)))
    assert statuses == ["submitted", "accepted"]
    listed = web.get("/api/services/v1/cases?stage=in_progress", headers=system).json()
    assert [c["case_no"] for c in listed["cases"]] == [number]
    detail = web.get(f"/api/services/v1/cases/{number}", headers=system).json()
    assert detail["applicant"]["number"] == OUYANG[0] and [
        h["status"] for h in detail["history"]
    ] == ["submitted", "accepted"]


def test_a_docked_system_sees_its_own_unit_only_and_bad_credentials_get_401(web, platform, system):
    number = _open(web, system).json()["case_no"]
    make_user(platform, "mz", "steward", "csmz")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "mz"))
        other = {
            "Authorization": f"Bearer {docking.register(session, clerk, 'csmz', '民政系统').secret}"
        }
    assert web.get(f"/api/services/v1/cases/{number}", headers=other).status_code == 404
    assert web.get("/api/services/v1/cases?stage=to_accept", headers=other).json()["cases"] == []
    opened = _open(web, other, key="x")
    assert opened.status_code == 403
    forged = {"Authorization": system["Authorization"][:-2] + "zz"}
    assert web.get("/api/services/v1/cases", headers=forged).status_code == 401
    assert (
        web.get(
            "/api/services/v1/cases", headers={"Authorization": "Bearer cdk_nosuch_x"}
        ).status_code
        == 401
    )


def test_webhooks_tell_the_step_without_personal_data_after_commit(web, platform, system):
    sub = web.post(
        "/api/services/v1/subscriptions",
        json={"url": "https://hooks.example.org/cases"},
        headers={**system, "Idempotency-Key": "w-1"},
    )
    # example.org does not resolve here: the address check refuses it before anything is kept
    assert sub.status_code in (201, 400)
    with platform.session() as session:
        from citydata.mechanisms import outbox

        subscription, secret = outbox.subscribe(
            session, cases.owner("csga"), "http://127.0.0.1:9/h", "test", KEYS, ("127.0.0.1",)
        )
        stored = session.scalar(select(IdempotencyKey.response).where(IdempotencyKey.key == "w-1"))
        assert stored is None or "signing_secret" not in stored  # kept encrypted
    failed = _open(web, system, key="bad", matter="nosuch")
    assert failed.status_code == 404
    with platform.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(WebhookNotice)) == 0
        )  # nothing happened
    number = _open(web, system).json()["case_no"]
    with platform.session() as session:
        notice = session.scalar(select(WebhookNotice))
        body = json.loads(notice.body)
    assert body == {
        "event": "case.status",
        "case_no": number,
        "matter": _code("户籍证明开具"),
        "status": "submitted",
        "on": TODAY.isoformat(),
    }
    assert OUYANG[0] not in notice.body and OUYANG[1] not in notice.body
    got = []

    def send(url, raw, headers):
        got.append((url, raw, headers))
        return len(got) > 1, "503" if len(got) == 1 else "200"

    first = dispatch(platform, KEYS, ("127.0.0.1",), send=send)
    assert (first.delivered, first.failed) == (0, 1)
    assert dispatch(platform, KEYS, ("127.0.0.1",), send=send).delivered == 0  # backing off
    later = dispatch(
        platform,
        KEYS,
        ("127.0.0.1",),
        now=__import__("datetime").datetime.now(__import__("datetime").UTC) + timedelta(minutes=5),
        send=send,
    )
    assert later.delivered == 1
    url, raw, headers = got[-1]
    stamp = headers["X-Citydata-Timestamp"]
    expected = (
        __import__("hmac")
        .new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256)
        .hexdigest()
    )
    assert headers["X-Citydata-Signature"] == "sha256=" + expected and url == subscription.url


# ---------------------------------------------------------------- figures


def test_figures_come_from_the_cases(platform):
    numbers = [
        _submitted(platform, person=p, username=u)
        for p, u in ((ZHANG, "zhang"), (OUYANG, "ouyang"))
    ]
    make_user(platform, "ga", "steward", "csga")
    with platform.session() as session:
        clerk = session.scalar(select(User).where(User.username == "ga"))
        for number in numbers:
            services.act(session, clerk, number, "accepted", DAY, TODAY)
        services.act(session, clerk, numbers[0], "granted", DAY, TODAY)  # decided on the spot
        services.record_visit(session, clerk, numbers[1], date(2025, 10, 9), "窗口")
        services.record_visit(session, clerk, numbers[1], date(2025, 10, 9), "窗口")
        services.act(
            session, clerk, numbers[1], "granted", date(2025, 10, 20), TODAY
        )  # after 14 Oct
        cases.rate(session, cases.by_number(session, numbers[0]), 5, "", DAY)
        cases.rate(session, cases.by_number(session, numbers[1]), 2, "跑了两次", DAY)
    with platform.session() as session:
        row = metrics.report(session, "all")[0]
        by_unit = {r["key"]: r for r in metrics.report(session, "unit")}
    assert (row["applied"], row["finished"]) == (2, 2)
    assert (
        row["online_application"] == 1.0 and row["fully_online"] == 0.5 and row["one_visit"] == 0.5
    )
    assert row["instant"] == 0.5 and row["on_time"] == 0.5 and row["satisfaction"] == 0.5
    assert row["average_workdays"] == (0 + 9) / 2  # 9, 10, 11 (worked Saturday), 13–17, 20 Oct
    assert by_unit["csga"]["finished"] == 2 and by_unit["csga"]["name"] == "市公安局"


def test_the_cases_are_in_the_catalog_and_the_monthly_counts_open(platform):
    from citydata.bases.themes import refresh
    from citydata.services.publishing import CASES_CLASS, publish

    _submitted(platform)
    report = publish(platform)
    assert report.rows_accepted == 1 and report.status == "committed"
    themes = {t["name"]: t for t in refresh(platform, "service_monthly")}
    assert themes["service_monthly"]["rows"] == 1
    with platform.session() as session:
        from citydata.catalog.service import get_class

        rc = get_class(session, CASES_CLASS)
        assert rc.provider_code == "cszw" and "applicant" not in {f.name for f in rc.fields}
        assert get_class(session, "201004/00001").open_type == "open"


# ---------------------------------------------------------------- attacks on the citizen's side


def test_a_citizen_cannot_see_or_touch_anothers_case(web, platform, app):
    from fastapi.testclient import TestClient

    user = citizen(platform)
    number = start(platform, user, "户籍证明开具")
    with TestClient(app) as other:
        assert register(other, person=OUYANG, username="ouyang").status_code == 303
        for path in (f"/services/cases/{number}", f"/services/cases/{number}/edit"):
            seen = other.get(path)
            assert seen.status_code == 404 and "张三" not in seen.text, path
        token = csrf(other.get("/services").text)
        forged = other.post(
            f"/services/cases/{number}/edit",
            data={"csrf": token, "f:address": "别处", "action": "submit"},
        )
        assert forged.status_code == 404
        assert other.get("/services/staff").status_code == 403  # a citizen is no clerk
        assert other.get("/services/staff/cases/" + number).status_code == 403
    with platform.session() as session:
        case = cases.by_number(session, number)
        assert case.status == "draft" and case.form["address"] != "别处"


def test_the_applicant_comes_from_the_account_never_from_the_form(web, platform):
    assert register(web).status_code == 303
    code = _code("户籍证明开具")
    page = web.get(f"/services/matters/{code}")
    web.post(f"/services/matters/{code}/apply", data={"csrf": csrf(page.text)})
    with platform.session() as session:
        number = session.scalar(select(Case.case_no))
    edit = web.get(f"/services/cases/{number}/edit")
    # fields that are not on the form are refused, whoever the page claims to be
    sneaky = web.post(
        f"/services/cases/{number}/edit",
        data={"csrf": csrf(edit.text), "f:applicant_hash": "x", "f:purpose": "入学"},
    )
    assert sneaky.status_code == 422
    with platform.session() as session:
        case = session.scalar(select(Case))
        assert KEYS.decrypt(case.applicant_subject) == ZHANG[0] and case.applicant_name == "张三"


def test_rotating_the_keys_keeps_identities_and_cases_found(platform):
    user = citizen(platform)
    start(platform, user, "户籍证明开具")
    after = Keys(("new-key", "test-secret"))
    with platform.session() as session:
        assert identity.rekey(session, KEYS, after) == 2
    with platform.session() as session:
        found = session.scalar(select(Identity))
        assert (
            found.subject_hash
            == identity.subject_hash(after, ZHANG[0])
            != identity.subject_hash(KEYS, ZHANG[0])
        )
        assert after.decrypt(found.subject) == ZHANG[0]
        mine = cases.of_applicant(session, after, session.get(User, user.id))
        assert len(mine) == 1 and after.decrypt(mine[0].applicant_subject) == ZHANG[0]
