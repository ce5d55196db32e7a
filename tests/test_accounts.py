"""Accounts from the command line: list, disable (sessions and tokens stop), new password."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citydata.cli import app as cli
from conftest import make_user


def test_users_are_listed_disabled_and_given_new_passwords(env, store, app):
    token = make_user(store, "zhang", "admin")
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["user", "list", "--json"]).output)
    assert [(u["username"], u["role"], u["active"]) for u in listed] == [("zhang", "admin", True)]
    with TestClient(app) as client:
        page = client.get("/login").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        client.post("/login", data={"username": "zhang", "password": "password123", "csrf": csrf})
        assert client.get("/base/population", follow_redirects=False).status_code == 200
        changed = runner.invoke(cli, ["user", "password", "zhang", "--password", "another-pw-1"])
        assert changed.exit_code == 0, changed.output
        # the password change ended the session
        assert client.get("/base/population", follow_redirects=False).status_code == 303
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/batches", headers=bearer).status_code == 200
        assert runner.invoke(cli, ["user", "disable", "zhang"]).exit_code == 0
        assert client.get("/api/v1/batches", headers=bearer).status_code == 401
    listed = json.loads(runner.invoke(cli, ["user", "list", "--json"]).output)
    assert listed[0]["active"] is False
    missing = runner.invoke(cli, ["user", "disable", "nobody"])
    assert missing.exit_code != 0 and "不存在" in missing.output


def test_after_signing_in_one_returns_to_the_page_asked_for_and_only_on_this_site(store, client):
    import re

    make_user(store, "zhang", "admin", None)
    asked = client.get("/share", follow_redirects=False)
    assert asked.headers["location"] == "/login?next=/share"
    page = client.get(asked.headers["location"]).text
    assert 'name="next" value="/share"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    for target, expected in (
        ("/share", "/share"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil", "/"),
    ):
        client.post("/logout", data={"csrf": csrf})
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        signed = client.post(
            "/login",
            data={"username": "zhang", "password": "password123", "csrf": csrf, "next": target},
            follow_redirects=False,
        )
        assert (signed.status_code, signed.headers["location"]) == (303, expected), target
