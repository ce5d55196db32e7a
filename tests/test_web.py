import re

from sqlalchemy import select

from citydata.accounts import service
from citydata.accounts.models import ApiToken, User
from conftest import make_user


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_home_shows_counts_and_targets_in_chinese(client, sample_catalog):
    html = client.get("/").text
    assert "政务数据资源管理平台" in html
    # municipal departments that have aggregated (none yet), never the units in the catalog
    assert re.search(r'id="n-departments">0<small> / 35<', html)
    assert re.search(r'id="n-classes">0<small> / 289<', html)
    assert re.search(r'id="n-shared">8<small> / 700<', html)  # all but the one 不予共享 class
    assert "目录中市直部门 8 个" in html
    assert "有条件共享" in html


def test_english_is_a_setting(client, sample_catalog):
    r = client.get(
        "/lang/en", headers={"referer": "http://testserver/catalog"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "http://testserver/catalog"
    html = client.get("/catalog").text
    assert "Resource catalog" in html and "信息资源目录" not in html
    client.get("/lang/zh")
    assert "信息资源目录" in client.get("/catalog").text


def test_catalog_pages_search_filter_and_detail(client, sample_catalog):
    html = client.get("/catalog", params={"q": "房屋"}).text
    assert re.search(r'id="total">1<', html) and "房屋登记信息" in html
    html = client.get("/catalog", params={"open": "open"}).text
    assert re.search(r'id="total">5<', html) and "户籍人口信息" not in html
    detail = client.get("/catalog/101001/00001").text
    assert "公民身份号码" in detail and "敏感个人信息" in detail and "个人信息保护法" in detail
    assert client.get("/catalog/000000/00000").status_code == 404
    assert "长沙市公安局" in client.get("/units").text


def test_login_needs_csrf_and_right_password(client, store, sample_catalog):
    make_user(store, "steward1", "steward", "csga", password="right-password")
    page = client.get("/login").text
    token = csrf_of(page)
    assert (
        client.post(
            "/login", data={"username": "steward1", "password": "right-password"}
        ).status_code
        == 403
    )
    wrong = client.post("/login", data={"username": "steward1", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    ok = client.post(
        "/login",
        data={"username": "steward1", "password": "right-password", "csrf": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    home = client.get("/").text
    assert "steward1" in home and "退出" in home
    client.post("/logout", data={"csrf": csrf_of(home)})
    assert "steward1" not in client.get("/").text


def test_passwords_and_tokens_are_stored_hashed(store):
    token = make_user(store, "u1", "consumer", password="a-secret-pw")
    with store.session() as session:
        user = session.scalar(select(User).where(User.username == "u1"))
        assert (
            user.password_hash.startswith("$argon2id$") and "a-secret-pw" not in user.password_hash
        )
        stored = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
        assert token not in stored.token_hash and token.split("_", 2)[1] == stored.prefix
        assert service.user_for_token(session, token).username == "u1"
        assert (
            service.user_for_token(session, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        )
        service.revoke_token(session, stored.prefix)
    with store.session() as session:
        assert service.user_for_token(session, token) is None
        assert session.scalar(select(ApiToken).where(ApiToken.prefix == stored.prefix)).revoked_at


def test_revoked_token_is_refused_at_the_next_call(client, store, sample_catalog):
    token = make_user(store, "admin2")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.delete("/api/v1/catalog/classes/301002/00001", headers=headers).status_code == 200
    with store.session() as session:
        service.revoke_token(session, token.split("_", 2)[1])
    assert client.delete("/api/v1/catalog/classes/301001/00001", headers=headers).status_code == 401


def test_openapi_lists_the_catalog_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/units", "/api/v1/catalog/classes", "/api/v1/catalog/classes/{code}"} <= set(
        paths
    )
