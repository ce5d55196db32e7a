"""Helpers shared by the sharing and security tests: a small population, applications,
approvals, credentials and audited calls."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
from sqlalchemy import select

from citydata.accounts.models import User
from citydata.bases import service as bases
from citydata.ingest.service import ingest
from citydata.keys import Keys
from citydata.share import service

HOUSEHOLD = "101001/00001"
POPULATION = "101001/00000"  # the population base itself, as a class
LEGAL = "101002/00001"  # 无条件共享
PEOPLE = [
    (
        "430102199001011238",
        "张三",
        "男",
        "1990-01-01",
        "430102",
        "湖南省长沙市芙蓉区五一大道1号",
        "13812345678",
    ),
    (
        "430104198502020026",
        "欧阳娜娜",
        "女",
        "1985-02-02",
        "430104",
        "长沙市岳麓区麓山南路2号",
        "13900001111",
    ),
    ("430181199503030012", "李四", "男", "1995-03-03", "430181", "长沙市浏阳市集里街道3号", None),
]
FIELDS = ["id_number", "name", "sex", "birth_date", "division", "address", "phone"]


def user(store, name: str) -> User:
    with store.session() as session:
        return session.scalar(select(User).where(User.username == name))


def apply(store, class_code=POPULATION, fields=None, unmasked=(), today=None, **extra):
    with store.session() as session:
        app = service.apply(
            session,
            user(store, "civil"),
            consumer_code="csmz",
            class_code=class_code,
            fields=fields or FIELDS,
            unmasked=list(unmasked),
            purpose="低保资格核查",
            legal_basis="《社会救助暂行办法》第十一条",
            system_name="低保审批系统",
            valid_until=(today or date.today()) + timedelta(days=365),
            today=today,
            **extra,
        )
        return app.id


def approve(store, app_id, fields=None, unmasked=None):
    with store.session() as session:
        service.decide(session, user(store, "bureau"), app_id, "approve", "", fields, unmasked)


def credential(store, app_id, **extra) -> dict[str, str]:
    with store.session() as session:
        issued = service.issue_credential(session, user(store, "civil"), app_id, **extra)
        return {"Authorization": f"Bearer {issued.secret}", "key_id": issued.credential.key_id}


def granted(store, fields=FIELDS, unmasked=()) -> dict[str, str]:
    app_id = apply(store, fields=fields, unmasked=unmasked)
    approve(store, app_id)
    return credential(store, app_id)


# The tests' webhook receiver listens on loopback, which only an administrator's allow-list
# opens (CITYDATA_WEBHOOK_ALLOW_HOSTS).
LOOPBACK = ("127.0.0.1",)


def dispatch(store, **extra):
    from citydata.share import webhooks

    return webhooks.dispatch(store, keys=Keys(("test-secret",)), allow_hosts=LOOPBACK, **extra)


# Who a call is for: required on every call that delivers data.
WHO = {"X-Citydata-User-Id": "mz-clerk-1", "X-Citydata-Case-Id": "MZ2026-0001"}


def call(api, headers, action, body, **extra_headers):
    auth = {"Authorization": headers["Authorization"], **WHO, **extra_headers}
    # the standard library's JSON: a test may send numbers past 64 bits on purpose
    return api.post(f"/api/share/v1/{action}", content=json.dumps(body).encode(), headers=auth)


def add_person(store, tmp_path, row):
    path = tmp_path / f"{row[0]}.csv"
    pl.DataFrame([row], schema=FIELDS, orient="row").write_csv(path)
    ingest(store, path, HOUSEHOLD)
    bases.resolve(store, "population")
