"""Sharing: each sharing attribute's path, working-day deadlines, credentials (rotation, revocation,
IP allow-list), the sharing API (lookup, verify, query, export, change feed) with masking and
data minimisation, quotas, and the audit chain (every call, tamper evidence, a failed write)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, timedelta

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from citydata.app import create_app
from citydata.audit import service as audit
from citydata.audit.models import AuditEntry, AuditSubject
from citydata.bases import service as bases
from citydata.catalog.models import ResourceClass
from citydata.config import Settings
from citydata.ingest.service import ingest
from citydata.mechanisms import credentials
from citydata.mechanisms import webhooks as delivery
from citydata.mechanisms.workdays import add_workdays
from citydata.privacy.masking import MASKS, mask_frame, mask_value
from citydata.share import service
from citydata.share.models import ShareApplication, ShareCredential
from conftest import fixed_clock
from sharing import (
    FIELDS,
    HOUSEHOLD,
    LEGAL,
    LOOPBACK,
    PEOPLE,
    POPULATION,
    WHO,
    add_person,
    apply,
    approve,
    call,
    credential,
    dispatch,
    granted,
    user,
)


@pytest.fixture
def app(store):
    return create_app(
        store,
        Settings(database_url=store.url, secret_key="test-secret", webhook_allow_hosts=LOOPBACK),
        clock=fixed_clock,
    )


@pytest.fixture
def api(app, people):
    with TestClient(app) as c:
        yield c


# ---------------------------------------------------------------- applications


def test_due_dates_count_chinese_working_days_with_holidays_and_make_up_days():
    # 2026: 1–7 October are off; Saturday 10 October is a make-up working day.
    assert add_workdays(date(2026, 9, 28), 10) == (date(2026, 10, 16), True)
    # A year the calendar does not know yet: Monday to Friday, and the caller is told.
    assert add_workdays(date(2030, 1, 4), 1) == (date(2030, 1, 7), False)


def test_each_sharing_attribute_takes_its_own_path(city, people):
    unconditional = apply(city, LEGAL, ["credit_code", "name"])
    conditional = apply(city, today=date(2026, 9, 28))
    with city.session() as session:
        refused_code = session.scalar(
            select(ResourceClass.code).where(
                ResourceClass.share_type == "none", ResourceClass.provider_code != "csmz"
            )
        )
        condition = session.get(ResourceClass, refused_code).share_condition
        refused_field = session.get(ResourceClass, refused_code).fields[0].name
    refused = apply(city, refused_code, [refused_field])
    with city.session() as session:
        a, b, c = (session.get(ShareApplication, i) for i in (unconditional, conditional, refused))
        assert (a.status, a.granted, a.decided_by) == (
            "approved",
            ["credit_code", "name"],
            "system",
        )
        assert (b.status, b.due_date, b.granted) == ("pending", date(2026, 10, 16), [])
        assert c.status == "refused" and condition in c.reason
        assert [d.action for d in service.decisions(session, a.id)] == ["submit", "auto_approve"]


def test_provider_approves_fewer_fields_rejects_with_reason_or_asks_for_more(city, people):
    first, second, third = apply(city), apply(city), apply(city)
    with city.session() as session:
        with pytest.raises(service.ShareError) as denied:
            service.decide(session, user(city, "police"), first, "approve")  # not the provider
        assert denied.value.status == 404  # another unit's application is not even shown
        service.decide(session, user(city, "bureau"), first, "approve", "够用即可", ["name", "sex"])
        with pytest.raises(service.ShareError, match="理由"):
            service.decide(session, user(city, "bureau"), second, "reject")
        service.decide(session, user(city, "bureau"), second, "reject", "用途与职责不符")
        service.decide(session, user(city, "bureau"), third, "ask", "请提供文件依据")
    with city.session() as session:
        service.resubmit(session, user(city, "civil"), third, legal_basis="民政部文件")
        apps = {i: session.get(ShareApplication, i) for i in (first, second, third)}
        assert apps[first].granted == ["name", "sex"] and apps[first].status == "approved"
        assert (apps[second].status, apps[second].reason) == ("rejected", "用途与职责不符")
        assert apps[third].status == "pending" and apps[third].legal_basis == "民政部文件"
        assert [d.action for d in service.decisions(session, third)] == [
            "submit",
            "ask",
            "resubmit",
        ]


def test_overdue_applications_are_flagged(city, people):
    app_id = apply(city, today=date(2026, 9, 28))
    with city.session() as session:
        app = session.get(ShareApplication, app_id)
        assert not service.is_overdue(app, date(2026, 10, 16))
        assert service.is_overdue(app, date(2026, 10, 17))


# ---------------------------------------------------------------- the sharing API


def test_lookup_masks_personal_fields_unless_granted_in_clear(city, api):
    masked = granted(city)
    clear = granted(city, unmasked=["name"])
    body = {
        "class_code": POPULATION,
        "keys": [PEOPLE[0][0]],
        "fields": ["name", "id_number", "phone", "address", "sex"],
    }
    one = call(api, masked, "lookup", body)
    assert one.status_code == 200, one.text
    record = one.json()["records"][0]
    assert record == {
        "name": "张*",
        # The grant also delivers the birth date in clear: a mask hiding only the birth date
        # would give the whole number away, so it hides everything after the division.
        "id_number": "430102************",
        "phone": "138****5678",
        "address": "芙蓉区",  # the golden record keeps the address without the city prefix
        "sex": "男",
    }
    two = call(api, clear, "lookup", body).json()["records"][0]
    assert two["name"] == "张三" and two["id_number"] == "430102************"
    with city.session() as session:
        master = bases.search(session, "population", PEOPLE[0][0])[0].id
    assert one.json()["delivered_subjects"] == [master]


def test_fields_must_be_named_and_granted_and_errors_carry_no_data(city, api):
    headers = granted(city, fields=["name", "sex"])
    key = [PEOPLE[0][0]]
    missing = call(api, headers, "lookup", {"keys": key})
    ungranted = call(api, headers, "lookup", {"keys": key, "fields": ["name", "phone"]})
    bad_filter = call(
        api, headers, "query", {"fields": ["name"], "filters": {"sex": {"like": "男"}}}
    )
    hidden_filter = call(api, headers, "query", {"fields": ["name"], "filters": {"phone": "138"}})
    nobody = call(
        api, {"Authorization": "Bearer cds_nope_nope"}, "lookup", {"keys": key, "fields": ["name"]}
    )
    for response, status, code in (
        (missing, 400, "fields_required"),
        (ungranted, 403, "field_not_granted"),
        (bad_filter, 400, "bad_filter"),
        (hidden_filter, 403, "field_not_granted"),
        (nobody, 401, "unauthorized"),
    ):
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert "records" not in response.json() and "张" not in response.text


def test_verification_answers_per_field_without_returning_data(city, api):
    headers = granted(city, fields=["id_number", "name", "birth_date"])
    body = {"key": PEOPLE[1][0], "fields": {"name": "欧阳娜娜", "birth_date": "1985-02-03"}}
    answer = call(api, headers, "verify", body)
    assert answer.json()["result"] == {"name": "一致", "birth_date": "不一致"}
    assert answer.json()["found"] is True and "1985-02-02" not in answer.text
    unknown = call(
        api, headers, "verify", {"key": "430102199901011233", "fields": {"name": "欧阳娜娜"}}
    )
    assert unknown.json() == {**unknown.json(), "found": False, "result": {"name": "不一致"}}


def test_query_filters_and_pages_with_a_cursor(city, api):
    headers = granted(city)
    seen, cursor = [], None
    while True:
        page = call(
            api,
            headers,
            "query",
            {
                "fields": ["name", "division"],
                "limit": 1,
                "cursor": cursor,
                "filters": {"division": {"in": ["430102", "430104"]}},
            },
        ).json()
        seen += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["division"] for r in seen] == ["430102", "430104"]
    assert [r["name"] for r in seen] == ["张*", "欧**娜"]


def test_export_streams_every_row_masked(city, api):
    headers = granted(city)
    csv = call(api, headers, "export", {"fields": ["name", "phone"], "format": "csv"})
    assert csv.content.startswith("\ufeff".encode())
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "name,phone" and len(lines) == 4 and "13812345678" not in csv.text
    empty = call(
        api, headers, "export", {"fields": ["name"], "format": "csv", "filters": {"sex": "无"}}
    )
    assert empty.content.decode("utf-8-sig").splitlines() == ["name"]
    jsonl = call(api, headers, "export", {"fields": ["sex"], "filters": {"sex": "男"}})
    assert [orjson.loads(x) for x in jsonl.content.splitlines()] == [{"sex": "男"}, {"sex": "男"}]
    # The body's hash is audited in a closing entry once the stream has ended.
    with city.session() as session:
        closing = session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "export_end")
            .order_by(AuditEntry.id.desc())
        )
        assert closing.query == {"export_request_id": jsonl.headers["X-Request-Id"]}
        assert closing.response_hash == hashlib.sha256(jsonl.content).hexdigest()
        assert (closing.rows, closing.key_id, closing.subjects) == (2, headers["key_id"], [])
        assert audit.verify(session).ok


def test_change_feed_follows_resolution_runs(city, api, tmp_path):
    headers = granted(city)
    first = call(api, headers, "changes", {"fields": ["name"]}).json()
    assert {c["kind"] for c in first["changes"]} == {"upsert"} and first["count"] == 3
    again = call(api, headers, "changes", {"fields": ["name"], "cursor": first["next_cursor"]})
    assert again.json()["count"] == 0
    path = tmp_path / "more.csv"
    row = ("430102200001011233", "王五", "男", "2000-01-01", "430102", "芙蓉区", None)
    pl.DataFrame([row], schema=FIELDS, orient="row").write_csv(path)
    ingest(city, path, HOUSEHOLD)
    bases.resolve(city, "population")
    later = call(
        api, headers, "changes", {"fields": ["name"], "cursor": first["next_cursor"]}
    ).json()
    assert [c["record"] for c in later["changes"]] == [{"name": "王*"}]


def test_expired_and_revoked_approvals_and_revoked_credentials_stop_the_next_call(city, api):
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    headers = granted(city)
    assert call(api, headers, "lookup", body).status_code == 200
    with city.session() as session:
        service.revoke_credential(session, user(city, "civil"), headers["key_id"])
    assert call(api, headers, "lookup", body).status_code == 401
    headers = granted(city)
    with city.session() as session:
        app_id = session.scalar(select(ShareApplication.id).order_by(ShareApplication.id.desc()))
        service.revoke(session, user(city, "bureau"), app_id, "职责调整")
    revoked = call(api, headers, "lookup", body)
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (403, "application_revoked")
    headers = granted(city)
    with city.session() as session:
        session.execute(
            update(ShareApplication)
            .where(ShareApplication.id == app_id + 1)
            .values(valid_until=date.today() - timedelta(days=1))
        )
    expired = call(api, headers, "lookup", body)
    assert (expired.status_code, expired.json()["error"]["code"]) == (403, "application_expired")


def test_rotation_keeps_the_old_secret_alive_only_for_the_grace_period(city, api):
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    old = granted(city)
    with city.session() as session:
        new = service.rotate_credential(session, user(city, "civil"), old["key_id"])
    fresh = {"Authorization": f"Bearer {new.secret}"}
    assert call(api, old, "lookup", body).status_code == 200
    assert call(api, fresh, "lookup", body).status_code == 200
    with city.session() as session:
        service.rotate_credential(session, user(city, "civil"), old["key_id"], grace=timedelta(0))
    assert call(api, fresh, "lookup", body).status_code == 401  # two rotations ago
    assert call(api, old, "lookup", body).status_code == 401


def test_ip_allow_list(city, api):
    app_id = apply(city)
    approve(city, app_id)
    elsewhere = credential(city, app_id, ip_allow=["10.0.0.0/8"])
    response = call(api, elsewhere, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["sex"]})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "ip_not_allowed")
    with city.session() as session:
        allowed = session.scalar(
            select(ShareCredential).where(ShareCredential.key_id == elsewhere["key_id"])
        )
        assert credentials.ip_allowed(allowed, "10.1.2.3") and not credentials.ip_allowed(
            allowed, "192.168.0.1"
        )


def test_daily_quota_answers_429_with_retry_after(city, api):
    app_id = apply(city, daily_volume=2)
    approve(city, app_id)
    headers = credential(city, app_id)
    body = {"keys": [PEOPLE[0][0]], "fields": ["sex"]}
    codes = [call(api, headers, "lookup", body).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    last = call(api, headers, "lookup", body)
    assert int(last.headers["Retry-After"]) > 0 and "records" not in last.json()


# ---------------------------------------------------------------- audit


def test_every_call_is_audited_with_who_why_and_the_body_hash(city, api):
    headers = granted(city)
    ok = call(
        api,
        headers,
        "lookup",
        {"keys": [PEOPLE[0][0]], "fields": ["name"]},
        **{"X-Citydata-User-Id": "clerk-7", "X-Citydata-Case-Id": "DB2026-001"},
    )
    denied = call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["religion"]})
    with city.session() as session:
        entries = {e.request_id: e for e in session.scalars(select(AuditEntry))}
        master = bases.search(session, "population", PEOPLE[0][0])[0].id
        read_him = audit.search(session, master_id=master)
    entry = entries[ok.headers["X-Request-Id"]]
    assert (entry.consumer_code, entry.end_user, entry.case_id, entry.rows) == (
        "csmz",
        "clerk-7",
        "DB2026-001",
        1,
    )
    assert (
        entry.response_hash
        == hashlib.sha256(ok.content).hexdigest()
        == ok.headers["X-Citydata-Response-Sha256"]
    )
    assert entry.subjects == [master] and [e.request_id for e in read_him] == [entry.request_id]
    assert entries[denied.headers["X-Request-Id"]].outcome == "field_not_granted"


def _chain(city, api, calls=4):
    headers = granted(city)
    for _ in range(calls):
        call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["sex"]})
    with city.session() as session:
        assert audit.verify(session).ok
        return session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()


def test_audit_verify_catches_an_edited_entry(city, api):
    ids = _chain(city, api)
    with city.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.id == ids[1]).values(rows=0))
    with city.session() as session:
        report = audit.verify(session)
    assert [(p["id"], p["problem"]) for p in report.problems] == [(ids[1], "altered")]


def test_audit_verify_catches_a_deleted_entry_and_a_deleted_last_entry(city, api):
    ids = _chain(city, api)
    with city.session() as session:
        gone = [ids[1], ids[-1]]
        session.execute(AuditSubject.__table__.delete().where(AuditSubject.audit_id.in_(gone)))
        session.execute(AuditEntry.__table__.delete().where(AuditEntry.id.in_(gone)))
    with city.session() as session:
        problems = {(p["id"], p["problem"]) for p in audit.verify(session).problems}
    assert (ids[2], "gap") in problems and (ids[2], "broken_link") in problems
    assert any(p == "tail" for _, p in problems)


def test_audit_verify_catches_reordered_entries(city, api):
    ids = _chain(city, api)
    table = AuditEntry.__table__
    with city.session() as session:
        a, b = (
            session.execute(select(table).where(table.c.id == i)).mappings().one() for i in ids[1:3]
        )
        swap = {c: v for c, v in a.items() if c not in {"id", "request_id"}}
        session.execute(
            update(table)
            .where(table.c.id == ids[1])
            .values(**{c: v for c, v in b.items() if c not in {"id", "request_id"}})
        )
        session.execute(update(table).where(table.c.id == ids[2]).values(**swap))
    with city.session() as session:
        assert not audit.verify(session).ok


def test_a_call_whose_audit_write_fails_returns_no_data(city, api, app, monkeypatch):
    headers = granted(city)

    def broken(_entries):
        raise RuntimeError("disk full")

    monkeypatch.setattr(app.state.audit, "commit", broken)
    response = call(api, headers, "lookup", {"keys": [PEOPLE[0][0]], "fields": ["name", "sex"]})
    assert response.status_code == 503
    assert (
        response.json()["error"]["code"] == "audit_unavailable" and "records" not in response.json()
    )


# ---------------------------------------------------------------- pages


def login(client, username):
    page = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": username, "password": "password123", "csrf": csrf})
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def test_pages_apply_approve_issue_and_audit(city, people, app):
    with TestClient(app) as civil, TestClient(app) as bureau, TestClient(app) as admin:
        signed_out = civil.get("/share", follow_redirects=False)
        assert (signed_out.status_code, signed_out.headers["location"]) == (
            303,
            "/login?next=/share",
        )
        csrf = login(civil, "civil")
        form = civil.get(f"/share/apply?class_code={POPULATION}")
        assert "申请共享" in form.text and "公民身份号码" in form.text
        sent = civil.post(
            "/share/apply",
            data={
                "class_code": POPULATION,
                "fields": ["name", "sex"],
                "purpose": "低保核查",
                "legal_basis": "社会救助暂行办法",
                "system_name": "低保系统",
                "csrf": csrf,
            },
        )
        assert sent.status_code == 200 and "待审核" in sent.text
        app_id = int(str(sent.url).rsplit("/", 1)[1])
        csrf_b = login(bureau, "bureau")
        decided = bureau.post(
            f"/share/{app_id}/decision",
            data={"action": "approve", "fields": ["sex"], "csrf": csrf_b},
        )
        assert "已批准" in decided.text
        issued = civil.post(f"/share/{app_id}/credentials", data={"csrf": csrf})
        secret = re.search(r"<code>(cds_[^<]+)</code>", issued.text).group(1)
        lookup = civil.post(
            "/api/share/v1/lookup",
            json={"keys": [PEOPLE[0][0]], "fields": ["sex"]},
            headers={"Authorization": f"Bearer {secret}", **WHO},
        )
        assert lookup.json()["records"] == [{"sex": "男"}]
        assert civil.get("/audit").status_code == 403
        login(admin, "admin")
        page = admin.get(f"/audit?id_number={PEOPLE[0][0]}")
        assert "审计链完整" in page.text and "csmz" in page.text and "低保系统" in page.text
        assert "csmz" in admin.get("/share").text
        # The cockpit counts the day's calls per unit, by name (its summary refreshed as the
        # server's refresher would, at the call's moment); the public one shows no usage.
        from citydata.brain import service as brain
        from citydata.brain.models import Summary

        with city.session() as session:
            at = session.scalar(select(func.max(AuditEntry.at)))
        brain.refresh(city, at.replace(tzinfo=at.tzinfo or UTC), ["share_calls_daily"], True)
        with city.session() as session:
            tile = session.get(Summary, "share_calls_daily").payload
        called = {s["key"]: (s["name"], sum(s["data"])) for s in tile["series"]}
        assert called == {"csmz": ("市民政局", 1)}
        assert admin.get("/brain/tiles/share_calls_daily.json").status_code == 200
    with TestClient(app) as anonymous:
        assert anonymous.get("/brain/tiles/share_calls_daily.json").status_code == 401
        public = anonymous.get("/brain/tiles/share_calls_daily.json", params={"view": "public"})
        assert public.status_code == 403


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.none(), st.text(alphabet="长沙市湖南省岳麓区浏阳县路号12345678X张欧阳", max_size=30)
        ),
        min_size=1,
        max_size=20,
    ),
    kind=st.sampled_from(sorted(MASKS)),
)
def test_value_masks_equal_the_vectorised_masks(values, kind):
    frame = mask_frame(pl.DataFrame({"v": values}, schema={"v": pl.String}), {"v": kind})
    assert frame["v"].to_list() == [mask_value(v, kind) for v in values]


def test_cli_audit_verify_fails_on_a_tampered_chain_and_search_finds_the_reader(city, api, env):
    from typer.testing import CliRunner

    from citydata.cli import app as cli

    ids = _chain(city, api, calls=2)
    runner = CliRunner()
    found = runner.invoke(cli, ["audit", "search", "--id-number", PEOPLE[0][0], "--json"])
    assert [e["id"] for e in orjson.loads(found.output)] == list(reversed(ids))
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    with city.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.id == ids[0]).values(case_id="x"))
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and f"第 {ids[0]} 条：altered" in broken.output


# ---------------------------------------------------------------- webhook subscriptions


@pytest.fixture
def receiver():
    """A business system's webhook endpoint on loopback: records each notice, answers
    ``receiver.status``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(server.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.status, server.got = 200, got
    server.url = f"http://127.0.0.1:{server.server_port}/hooks/citydata"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


WANGWU = ("430102200001011233", "王五", "男", "2000-01-01", "430102", "芙蓉区", "13700001111")


def test_webhook_notices_name_committed_changes_not_values_and_are_signed(
    city, api, receiver, tmp_path
):
    from citydata.bases.models import MasterChange

    headers = granted(city)
    legal = apply(city, class_code=LEGAL, fields=["name"])
    refused = call(api, credential(city, legal), "subscriptions", {"url": receiver.url})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "no_feed")
    bad = call(api, headers, "subscriptions", {"url": "ftp://example.org/x"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_url")
    made = call(api, headers, "subscriptions", {"url": receiver.url})
    assert made.status_code == 200
    secret = made.json()["signing_secret"]
    # The three people resolved before subscribing are in the feed, not in a notice.
    assert dispatch(city).delivered == 0 and receiver.got == []

    with city.session() as session:  # a change not yet committed is not notified
        session.add(MasterChange(base="population", master_id=1, kind="upsert"))
        session.flush()
        assert dispatch(city).delivered == 0 and receiver.got == []
        session.rollback()

    add_person(city, tmp_path, WANGWU)
    report = dispatch(city)
    assert (report.delivered, report.failed, report.changes) == (1, 0, 1)
    ((sent_headers, body),) = receiver.got
    for value in WANGWU[:3] + WANGWU[5:]:  # ID number, name, sex, address, phone
        assert value.encode() not in body
    notice = orjson.loads(body)
    assert notice["class_code"] == POPULATION
    assert [set(c) for c in notice["changes"]] == [{"change", "master_id", "kind"}]
    assert notice["changes"][0]["kind"] == "upsert"
    expected = delivery.signature(secret, sent_headers["X-Citydata-Timestamp"], body)
    assert sent_headers["X-Citydata-Signature"] == f"sha256={expected}"
    # The system then reads what changed through the feed, masked and audited.
    feed = call(api, headers, "changes", {"fields": ["name"], "cursor": notice["since_cursor"]})
    assert [c["record"] for c in feed.json()["changes"]] == [{"name": "王*"}]
    assert feed.json()["next_cursor"] == notice["cursor"]
    assert dispatch(city).delivered == 0 and len(receiver.got) == 1

    listed = api.get(
        "/api/share/v1/subscriptions", headers={"Authorization": headers["Authorization"]}
    )
    (sub,) = listed.json()["subscriptions"]
    assert sub["cursor"] == notice["cursor"] and sub["failures"] == 0
    gone = api.delete(
        f"/api/share/v1/subscriptions/{sub['id']}",
        headers={"Authorization": headers["Authorization"]},
    )
    assert gone.json()["subscription"]["ended_at"] is not None
    add_person(
        city, tmp_path, ("430102200002021237", "赵六", "男", "2000-02-02", "430102", "芙蓉区", None)
    )
    assert dispatch(city).delivered == 0 and len(receiver.got) == 1


def test_a_refused_notice_is_offered_again_with_backoff_and_the_cursor_waits(
    city, api, receiver, tmp_path
):
    from datetime import UTC, datetime

    from citydata.share.models import ShareSubscription

    headers = granted(city)
    assert call(api, headers, "subscriptions", {"url": receiver.url}).status_code == 200
    add_person(city, tmp_path, WANGWU)
    receiver.status = 500
    t0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def state():
        with city.session() as session:
            sub = session.scalar(select(ShareSubscription))
            return sub.failures, sub.next_attempt_at, sub.cursor

    _, _, cursor = state()
    assert dispatch(city, now=t0).failed == 1
    failures, due, _ = state()
    assert (failures, due.replace(tzinfo=UTC)) == (1, t0 + timedelta(seconds=10))
    assert dispatch(city, now=t0 + timedelta(seconds=5)).failed == 0  # not due yet
    assert len(receiver.got) == 1
    assert dispatch(city, now=t0 + timedelta(seconds=11)).failed == 1
    failures, due, _ = state()
    assert (failures, due.replace(tzinfo=UTC)) == (2, t0 + timedelta(seconds=31))
    assert state()[2] == cursor  # nothing acknowledged, nothing skipped

    receiver.status = 204
    assert dispatch(city, now=t0 + timedelta(seconds=31)).delivered == 1
    assert receiver.got[0][1] == receiver.got[2][1]  # the same changes, offered again
    failures, due, after = state()
    assert (failures, due) == (0, None) and after > cursor
    assert delivery.backoff(20) == delivery.LAST_RETRY

    # A revoked application is told nothing more.
    with city.session() as session:
        app_id = session.scalar(select(ShareApplication.id).order_by(ShareApplication.id.desc()))
        service.revoke(session, user(city, "bureau"), app_id, "职责调整")
    add_person(
        city, tmp_path, ("430102200002021237", "赵六", "男", "2000-02-02", "430102", "芙蓉区", None)
    )
    assert dispatch(city, now=t0 + timedelta(minutes=5)).delivered == 0
    assert len(receiver.got) == 3


def test_the_running_server_sends_due_notices_by_itself(city, people, receiver, tmp_path):
    import time

    from citydata.app import create_app
    from citydata.config import Settings

    settings = Settings(
        database_url=city.url,
        secret_key="test-secret",
        webhook_seconds=0.1,
        webhook_allow_hosts=LOOPBACK,
    )
    with TestClient(create_app(city, settings)) as server:
        headers = granted(city)
        assert call(server, headers, "subscriptions", {"url": receiver.url}).status_code == 200
        add_person(city, tmp_path, WANGWU)
        deadline = time.monotonic() + 20
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(receiver.got) == 1
    assert orjson.loads(receiver.got[0][1])["changes"][0]["kind"] == "upsert"


def test_a_call_that_gave_up_waiting_does_not_stop_the_audit_writer(city):
    """A waiter that timed out cancels its future; the writer must still settle the others."""
    import asyncio
    import threading

    log = audit.AuditLog(city)
    release, holding = threading.Event(), threading.Event()
    commit = log.commit

    def slow(entries):
        holding.set()
        release.wait(10)
        return commit(entries)

    log.commit = slow
    entry = {
        **dict.fromkeys(["key_id", "consumer_code", "system_name", "application_id"]),
        **dict.fromkeys(["class_code"]),
        **dict.fromkeys(["end_user", "case_id", "client_ip", "response_hash"], ""),
        "action": "lookup",
        "fields": [],
        "query": {},
        "rows": 0,
        "subjects": [],
        "outcome": "ok",
        "status_code": 200,
    }

    async def main():
        from datetime import UTC, datetime

        def one(i):
            return {**entry, "at": datetime.now(UTC), "request_id": f"gave-up-{i}"}

        first = asyncio.ensure_future(log.write(one(1)))
        # the writer holds [1], so 2 and 3 queue as one group
        assert await asyncio.get_running_loop().run_in_executor(None, holding.wait, 10)
        gave_up = asyncio.ensure_future(log.write(one(2)))
        third = asyncio.ensure_future(log.write(one(3)))
        while log._queue.qsize() < 2:  # both handed over, behind [1]
            await asyncio.sleep(0)
        gave_up.cancel()  # as wait_for does on its timeout
        release.set()
        return await first, await asyncio.wait_for(third, 5)

    assert asyncio.run(main()) == (1, 3)  # all written, in order; the second waiter just left
    assert log._thread.is_alive()
    with city.session() as session:
        assert audit.verify(session).ok
