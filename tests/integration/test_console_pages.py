"""The console and tenant pages over HTTP (no browser): sessions, CSRF, languages, the
signed tenant link and its revocation, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import login

PASSWORD = "pages-test-password"  # test fixture only


@pytest.fixture
def app(platform):
    return create_app(platform, background=False)


def browser(app, **headers) -> TestClient:
    return TestClient(app, headers=headers, follow_redirects=False)


def logged_in(app, platform, username="cashier", roles=("finance",), **headers) -> TestClient:
    login(platform, username, PASSWORD, roles=roles)
    client = browser(app, **headers)
    answer = client.post("/console/login", data={"username": username, "password": PASSWORD,
                                                 "next": "/console/"})
    assert answer.status_code == 303, answer.text
    return client


def field(html: str, name: str, after: str = "") -> str:
    start = html.index(after) if after else 0
    return re.search(rf'name="{name}" value="([^"]*)"', html[start:]).group(1)


def open_shop(platform, name="Tea House") -> str:
    account = platform.ledger.accounts.open_account(name=name, unit="A-101", actor={})
    platform.catch_up()
    return account.result["account_id"]


def test_the_root_leads_to_the_console_and_the_console_to_its_login(app):
    client = browser(app)
    assert client.get("/").headers["location"] == "/console/"
    answer = client.get("/console/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    assert client.get("/console/login").status_code == 200


def test_a_chinese_browser_gets_chinese_and_the_switch_is_kept(app):
    client = browser(app, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    page = client.get("/console/login").text
    assert 'lang="zh-CN"' in page and "登录" in page
    switched = client.get("/console/lang?to=en&next=/console/login")
    assert switched.headers["location"] == "/console/login"
    assert "Log in" in client.get("/console/login").text
    # A switch cannot send anyone to another site.
    assert client.get("/console/lang?to=zh&next=//evil.example/").headers["location"] == \
        "/console/"


def test_the_session_cookie_is_httponly_and_strict_and_secure_over_tls(app, platform):
    login(platform, "cashier", PASSWORD, roles=("finance",))
    plain = browser(app).post("/console/login", data={"username": "cashier",
                                                      "password": PASSWORD})
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    tls = browser(app, **{"X-Forwarded-Proto": "https"}).post(
        "/console/login", data={"username": "cashier", "password": PASSWORD})
    assert "Secure" in tls.headers["set-cookie"]
    wrong = browser(app).post("/console/login", data={"username": "cashier",
                                                      "password": "not the password"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


def test_a_sale_needs_the_sessions_csrf_token_and_its_key_credits_once(app, platform):
    account = open_shop(platform)
    client = logged_in(app, platform)
    page = client.get(f"/console/accounts/{account}").text
    csrf, key = field(page, "csrf"), field(page, "idempotency_key", 'id="sale-form"')
    sale = {"idempotency_key": key, "preset": "200.00", "channel": "cash",
            "wallet": "electricity"}
    assert client.post(f"/console/accounts/{account}/top-up",
                       data={**sale, "csrf": "0" * 64}).status_code == 403
    other = logged_in(app, platform, "finance2")
    other_csrf = field(other.get("/console/").text, "csrf")
    assert client.post(f"/console/accounts/{account}/top-up",
                       data={**sale, "csrf": other_csrf}).status_code == 403
    assert platform.ledger.accounts.get_account(uuid.UUID(account)).balance_fen("electricity") == 0
    first = client.post(f"/console/accounts/{account}/top-up", data={**sale, "csrf": csrf})
    again = client.post(f"/console/accounts/{account}/top-up", data={**sale, "csrf": csrf})
    assert first.status_code == again.status_code == 303
    assert "replayed=1" in again.headers["location"]
    account_now = platform.ledger.accounts.get_account(uuid.UUID(account))
    assert account_now.balance_fen("electricity") == 20000
    shown = client.get(again.headers["location"]).text
    assert "nothing was credited twice" in shown


def test_pages_and_posts_need_a_login(app, platform):
    account = open_shop(platform)
    client = browser(app)
    for path in ("/console/", f"/console/accounts/{account}", "/console/approvals",
                 "/console/reports", "/console/audit"):
        assert client.get(path).headers["location"].startswith("/console/login"), path
    answer = client.post(f"/console/accounts/{account}/top-up",
                         data={"csrf": "x", "idempotency_key": "k", "preset": "200.00",
                               "channel": "cash"})
    assert answer.status_code == 303
    assert platform.ledger.accounts.get_account(uuid.UUID(account)).balance_fen("electricity") == 0


def test_pages_follow_the_permission_table(app, platform):
    account = open_shop(platform)
    operator = logged_in(app, platform, "operator", roles=("operator",))
    page = operator.get(f"/console/accounts/{account}").text
    assert 'id="sale-form"' not in page
    assert operator.get("/console/reports").status_code == 403
    assert operator.get("/console/audit").status_code == 403
    limited = logged_in(app, platform, "elsewhere", roles=("finance",))
    platform.ledger.access.change_operator(platform.ledger.access.find_operator("elsewhere").id,
                                           site_ids=["another-site"], actor={})
    platform.catch_up()
    assert limited.get(f"/console/accounts/{account}").status_code == 404
    assert account not in limited.get("/console/").text


def issued_link(app, platform, account: str) -> str:
    admin = logged_in(app, platform, "admin", roles=("admin",))
    page = admin.get(f"/console/accounts/{account}").text
    admin.post(f"/console/accounts/{account}/link",
               data={"csrf": field(page, "csrf"), "action": "issue"})
    page = admin.get(f"/console/accounts/{account}").text
    return re.search(r'href="http://testserver(/t/l/[^"]+)"', page).group(1)


def test_a_signed_link_opens_its_account_only_until_revoked_or_reissued(app, platform):
    account = open_shop(platform)
    other = open_shop(platform, "Noodle Bar")
    link = issued_link(app, platform, account)
    tenant = browser(app)
    opened = tenant.get(link)
    assert opened.headers["location"] == f"/t/a/{account}"
    assert "Tea House" in tenant.get(f"/t/a/{account}").text
    assert tenant.get(f"/t/a/{other}").status_code == 404
    assert tenant.get("/console/").status_code == 303  # no way into the console
    # A changed signature, or another account under this signature, opens nothing.
    account_part, version, signature = link.removeprefix("/t/l/").split(".")
    for forged in (f"{account_part}.{version}.{'0' * 32}",
                   f"{other}.{version}.{signature}", f"{account_part}.{int(version) + 1}."
                                                     f"{signature}"):
        assert browser(app).get(f"/t/l/{forged}").status_code == 403
    # Reissued: the old link and the page it opened stop working; the new one works.
    new_link = issued_link(app, platform, account)
    assert new_link != link
    assert tenant.get(f"/t/a/{account}").status_code == 403
    assert browser(app).get(link).status_code == 403
    assert browser(app).get(new_link).status_code == 303


def test_a_tenant_login_sees_its_own_accounts(app, platform):
    mine, theirs = open_shop(platform), open_shop(platform, "Noodle Bar")
    login(platform, "tea-house", PASSWORD, roles=("tenant",), account_ids=(mine,))
    tenant = browser(app)
    answer = tenant.post("/t/login", data={"username": "tea-house", "password": PASSWORD})
    assert answer.status_code == 303
    assert tenant.get("/t/").headers["location"] == f"/t/a/{mine}"
    assert "Tea House" in tenant.get(f"/t/a/{mine}").text
    assert tenant.get(f"/t/a/{theirs}").status_code == 404
    # Staff cannot log in on the tenant page, nor a tenant on the console.
    login(platform, "cashier", PASSWORD, roles=("finance",))
    assert browser(app).post("/t/login", data={"username": "cashier",
                                               "password": PASSWORD}).status_code == 401
    console = browser(app)
    console.post("/console/login", data={"username": "tea-house", "password": PASSWORD})
    assert console.get("/console/").status_code == 303


def test_the_account_forms_gift_refund_set_alert_levels_and_close(app, platform):
    account = open_shop(platform)
    the_id = uuid.UUID(account)
    client = logged_in(app, platform, "admin", roles=("admin",))

    def post(action: str, **data):
        page = client.get(f"/console/accounts/{account}").text
        key = field(page, "idempotency_key", f'action="/console/accounts/{account}/{action}"') \
            if f'/{action}" data-once' in page else None
        answer = client.post(f"/console/accounts/{account}/{action}",
                             data={"csrf": field(page, "csrf"),
                                   **({"idempotency_key": key} if key else {}), **data})
        assert answer.status_code == 303, answer.text
        return answer

    post("top-up", amount="80.50", channel="wechat")
    post("gift", amount="10.00", reason="opening week")
    post("refund", amount="20.00", channel="cash", reason="moving out")
    assert platform.ledger.accounts.get_account(the_id).balance_fen("electricity") == 7050
    post("alert-levels", alarm1="30.00", alarm2="10.00")
    page = client.get(f"/console/accounts/{account}").text
    assert 'name="alarm1" value="30.00"' in page
    # Bad input changes nothing and says why.
    page = client.get(f"/console/accounts/{account}").text
    bad = client.post(f"/console/accounts/{account}/top-up", data={
        "csrf": field(page, "csrf"), "channel": "cash", "amount": "12.345",
        "idempotency_key": field(page, "idempotency_key", 'id="sale-form"')})
    assert bad.status_code == 422
    post("close", settlement="refund", reason="lease ended")
    account_now = platform.ledger.accounts.get_account(the_id)
    assert account_now.status == "closed" and account_now.balance_fen("electricity") == 0
    page = client.get(f"/console/accounts/{account}").text
    assert 'id="sale-form"' not in page
    statement = [row["kind"] for row in platform.queries.statement(
        account, limit=50, cursor=None).items]
    assert statement[:3] == ["top_up", "gift", "refund"]
