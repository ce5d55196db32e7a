"""schemathesis over the platform's own ``/openapi.json``: every operation, with data that fits
the schema and data that does not, anonymously and with a token of each role. No answer may be
a 5xx, and every answer must be one the schema describes (status code, body). Bounded: a few
examples per operation and role, on whichever store the run uses."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from sqlalchemy import select

from citydata.accounts.models import User
from citydata.app import create_app
from citydata.catalog.service import import_catalog
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.services import docking
from conftest import SAMPLE, fixed_clock, make_user

ROLES = [None, "admin", "steward", "consumer", "auditor", "public", "system"]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def fuzzed(store):
    """The sample catalog, one user of each role, and the app."""
    with store.session() as session:
        import_catalog(session, SAMPLE)
    tokens = {
        "admin": make_user(store, "admin", "admin"),
        "steward": make_user(store, "steward", "steward", "csga"),
        "consumer": make_user(store, "consumer", "consumer", "csjy"),
        "auditor": make_user(store, "auditor", "auditor"),
        "public": make_user(store, "citizen", "public"),
    }
    with store.session() as session:  # a docked business system of the service platform
        steward = session.scalar(select(User).where(User.username == "steward"))
        tokens["system"] = docking.register(session, steward, "csga", "公安业务系统").secret
    app = create_app(store, Settings(database_url=store.url, secret_key="fuzz"), clock=fixed_clock)
    return app, tokens


def _labels() -> list[str]:
    """The operations, read once from a throwaway app (the description needs no data)."""
    app = create_app(Store("sqlite://"), Settings(database_url="sqlite://", secret_key="x"))
    return [
        r.ok().label
        for r in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()
    ]


@pytest.mark.parametrize("label", _labels())
def test_no_operation_answers_5xx_or_outside_its_schema(label, fuzzed):
    app, tokens = fuzzed
    operations = schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()
    operation = next(r.ok() for r in operations if r.ok().label == label)

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=operation.as_strategy())
    def every_role(case):
        for role in ROLES:
            headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
            case.call_and_validate(headers=headers, checks=CHECKS)

    every_role()
