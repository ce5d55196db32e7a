"""A day of sharing in the demo city: consumer units' applications (approved, pending, overdue,
rejected, refused) and their business systems' calls, replayed through the real sharing API, so
the sharing pages, the audit log and the usage figures show real use on a fresh install."""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text

from citydata.accounts.models import User
from citydata.accounts.service import create_user
from citydata.catalog.models import ResourceClass
from citydata.db.engine import Store
from citydata.share import service
from citydata.share.models import ShareApplication

OPERATOR = "demo-share"  # acts for the units in the replay; its password is never shown
POPULATION, LEGAL_PERSON, HOUSING = "101001/00000", "101002/00000", "101005/00000"
# (consumer, class, fields, unmasked, what happens, purpose, legal basis, system)
APPLICATIONS = [
    (
        "csmz",
        POPULATION,
        ["id_number", "name", "sex", "birth_date", "division"],
        [],
        "approve",
        "最低生活保障资格核查",
        "《社会救助暂行办法》第十一条",
        "长沙市低保审批系统",
    ),
    (
        "csrs",
        POPULATION,
        ["id_number", "name", "birth_date", "phone"],
        ["name"],
        "approve",
        "社会保险参保登记信息核验",
        "《中华人民共和国社会保险法》第五十八条",
        "长沙市社保经办系统",
    ),
    (
        "cssw",
        LEGAL_PERSON,
        ["credit_code", "name", "legal_rep", "industry", "status"],
        [],
        "auto",
        "纳税人登记信息比对",
        "《中华人民共和国税收征收管理法》第六条",
        "长沙市税务征管系统",
    ),
    (
        "csjy",
        POPULATION,
        ["id_number", "name", "address"],
        [],
        "pending",
        "义务教育入学资格审核",
        "《中华人民共和国义务教育法》第十二条",
        "长沙市义务教育招生系统",
    ),
    (
        "cswj",
        POPULATION,
        ["id_number", "name", "phone"],
        ["phone"],
        "overdue",
        "出生医学证明与户籍信息比对",
        "《中华人民共和国母婴保健法》",
        "长沙市妇幼健康信息系统",
    ),
    (
        "cscg",
        HOUSING,
        ["house_code", "address", "owner_id_number"],
        ["owner_id_number"],
        "reject",
        "违法建设线索核查",
        "《长沙市城市管理条例》",
        "长沙市城管执法系统",
    ),
]


def operator(session) -> User:
    user = session.scalar(select(User).where(User.username == OPERATOR))
    return user or create_user(
        session, OPERATOR, secrets.token_urlsafe(24), "admin", None, "演示共享"
    )


def _applications(store: Store, today: date) -> list[tuple[str, int, str]]:
    """Create the applications once; returns (consumer, application id, secret) for the approved."""
    approved = []
    with store.session() as session:
        if session.scalar(select(func.count()).select_from(ShareApplication)):
            return []
        acting = operator(session)
        for consumer, code, fields, clear, fate, purpose, basis, system in APPLICATIONS:
            if session.get(ResourceClass, code) is None:
                continue
            app = service.apply(
                session,
                acting,
                consumer_code=consumer,
                class_code=code,
                fields=fields,
                unmasked=clear,
                purpose=purpose,
                legal_basis=basis,
                system_name=system,
                valid_until=today + timedelta(days=365),
                today=today - timedelta(days=30) if fate == "overdue" else today,
            )
            if fate == "approve":
                service.decide(session, acting, app.id, "approve", "符合共享条件")
            elif fate == "reject":
                service.decide(
                    session, acting, app.id, "reject", "线索核查应逐案申请，不宜批量共享房屋权属"
                )
            if app.status == "approved":
                issued = service.issue_credential(session, acting, app.id)
                approved.append((consumer, app.id, issued.secret))
        refused = session.scalar(
            select(ResourceClass).where(
                ResourceClass.share_type == "none", ResourceClass.provider_code != "csmz"
            )
        )
        if refused is not None:
            service.apply(
                session,
                acting,
                consumer_code="csmz",
                class_code=refused.code,
                fields=[refused.fields[0].name],
                purpose="困难群众信息比对",
                legal_basis="《社会救助暂行办法》",
                system_name="长沙市低保审批系统",
                valid_until=today + timedelta(days=365),
                today=today,
            )
    return approved


class _InProcess:
    """Calls an ASGI app in this process, as a business system's HTTP calls would reach it
    (the web server's part is not what the replay shows). Runtime dependencies only: the test
    client needs httpx, which a plain install does not have."""

    def __init__(self, app: Any):
        self.app = app

    async def post(self, path: str, body: dict, headers: dict[str, str]) -> int:
        raw = orjson.dumps(body)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")]
            + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status = 0

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


def replay(store: Store, today: date, calls: int = 300, seed: int = 2020) -> dict[str, Any]:
    """Applications made on ``today`` (the demo's day), then ``calls`` sharing calls through the
    API; returns what happened."""
    import asyncio

    from citydata.config import Settings
    from citydata.share.api import standalone

    approved = _applications(store, today)
    if not approved:
        return {"applications": 0, "calls": 0}
    rng = random.Random(seed)
    with store.engine.connect() as conn:
        names = dict(
            conn.execute(
                text("SELECT key, name FROM base_population WHERE key IS NOT NULL LIMIT 5000")
            ).all()
        )
        people = list(names)
        companies = [
            r[0]
            for r in conn.execute(
                text("SELECT key FROM base_legal_person WHERE key IS NOT NULL LIMIT 2000")
            )
        ]
    with store.session() as session:
        apps = {a.id: a for a in session.scalars(select(ShareApplication))}
    outcomes: dict[int, int] = {}
    app = standalone(store, Settings(database_url=store.url, secret_key="demo-replay"))
    client = _InProcess(app)

    async def run() -> None:
        for n in range(calls):
            consumer, app_id, secret = rng.choice(approved)
            granted = apps[app_id].granted
            headers = {
                "Authorization": f"Bearer {secret}",
                "X-Citydata-User-Id": f"{consumer}-clerk-{rng.randint(1, 12)}",
                "X-Citydata-Case-Id": f"{consumer.upper()}{today:%Y%m%d}{n:04d}",
            }
            keys = companies if apps[app_id].class_code == LEGAL_PERSON else people
            if not keys:
                continue
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.6:
                path, body = "lookup", {"keys": [key], "fields": granted}
            elif roll < 0.8 and "name" in granted and key in names:
                claimed = names[key] if rng.random() < 0.8 else "王小明"
                path, body = "verify", {"key": key, "fields": {"name": claimed}}
            elif roll < 0.95:
                path, body = "query", {"fields": granted[:2], "limit": 20}
            else:  # a field that was not granted: refused, and audited as such
                path, body = "lookup", {"keys": [key], "fields": [*granted, "religion"]}
            status = await client.post(f"/api/share/v1/{path}", body, headers)
            outcomes[status] = outcomes.get(status, 0) + 1

    asyncio.run(run())
    return {
        "applications": len(APPLICATIONS) + 1,
        "credentials": len(approved),
        "calls": calls,
        "outcomes": outcomes,
    }
