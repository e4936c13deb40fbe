"""The tenant page inside WeChat's browser pays by JSAPI: the payer's openid by web
authorisation (snsapi_base) against the local fake, a JSAPI order with it, and the
pay-sign checked against the ``wechatpayv3`` SDK and an independent RSA verification;
on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from tests.integration.test_console_pages import field, issued_link, open_shop
from tests.payment_fakes import (
    APP_SECRET,
    APPID,
    CERT_SERIAL,
    MCHID,
    PAYER_OPENID,
    PUB_KEY_ID,
    FakeProvider,
    Keys,
    oauth_env,
    serve_in_thread,
    wechat_notification,
    wechat_paid,
)

WECHAT_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) "
             "NetType/WIFI Language/zh_CN")
PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
def fake(keys):
    import socket

    provider = FakeProvider(keys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = serve_in_thread(provider.app(), port)
    provider.base = f"http://127.0.0.1:{port}"
    yield provider
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def world(backend, make_settings, keys, fake, tmp_path, monkeypatch):
    env = {**keys.write(tmp_path), **oauth_env(fake.base, tmp_path),
           "WECHATPAY_API_BASE": fake.base, "ALIPAY_GATEWAY": f"{fake.base}/alipay/gateway.do"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    platform = Platform(make_settings(backend))
    app = create_app(platform, background=False)
    account = open_shop(platform)
    yield {"app": app, "platform": platform, "account": account, "fake": fake,
           "keys": keys, "link": issued_link(app, platform, account)}
    platform.close()


def phone(world, agent: str = WECHAT_UA) -> TestClient:
    client = TestClient(world["app"], headers={"User-Agent": agent}, follow_redirects=False)
    assert client.get(world["link"]).status_code == 303
    return client


def to_wechat(world, client: TestClient) -> dict:
    """Open the account page; answer WeChat's authorise URL, read."""
    answer = client.get(f"/t/a/{world['account']}")
    assert answer.status_code == 303
    location = answer.headers["location"]
    parts = urlsplit(location)
    assert location.startswith(world["fake"].base + "/connect/oauth2/authorize?")
    assert parts.fragment == "wechat_redirect"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["appid"] == APPID and query["scope"] == "snsapi_base"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"http://testserver/t/wx/oauth/{world['account']}"
    assert re.fullmatch(r"[0-9a-f]{48}", query["state"])
    return {"location": location, **query}


def back_from_wechat(authorize: dict) -> str:
    """What WeChat does: the payer comes back to redirect_uri with a code and the state."""
    answer = httpx.get(authorize["location"].split("#")[0], follow_redirects=False)
    assert answer.status_code == 302
    back = answer.headers["location"]
    assert back.startswith(authorize["redirect_uri"] + "?code=")
    return back.removeprefix("http://testserver")


def pay(world, client: TestClient, amount: str = "20.00") -> str:
    page = client.get(f"/t/a/{world['account']}").text
    answer = client.post(f"/t/a/{world['account']}/pay", data={
        "csrf": field(page, "csrf"), "idempotency_key": field(page, "idempotency_key"),
        "preset": amount, "channel": "wechat"})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


def wxpay_params(page: str) -> dict:
    found = re.search(r"data-wxpay='([^']*)'", page)
    return json.loads(html.unescape(found.group(1))) if found else {}


def test_inside_wechat_the_page_learns_the_openid_and_pays_by_jsapi(world, caplog):
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from wechatpayv3.core import Core

    caplog.set_level(logging.DEBUG)
    fake, client = world["fake"], phone(world)
    authorize = to_wechat(world, client)
    back = back_from_wechat(authorize)
    answer = client.get(back)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/t/a/{world['account']}?wx=1"
    assert [(secret, openid) for _, secret, openid in fake.exchanges] == \
        [(APP_SECRET, PAYER_OPENID)]
    assert PAYER_OPENID not in answer.headers["set-cookie"]  # sealed
    # Once known, the page opens straight away, and names no openid.
    page = client.get(f"/t/a/{world['account']}")
    assert page.status_code == 200 and PAYER_OPENID not in page.text

    out_trade_no = pay(world, client)
    assert fake.orders[out_trade_no]["scene"] == "jsapi"
    assert fake.orders[out_trade_no]["payer"] == {"openid": PAYER_OPENID}
    page = client.get(f"/t/o/{out_trade_no}").text
    assert PAYER_OPENID not in page and 'src="/static/wxpay.js"' in page
    params = wxpay_params(page)
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType",
                           "paySign"}
    assert params["appId"] == APPID and params["signType"] == "RSA"
    assert params["package"] == f"prepay_id=wx{out_trade_no}"
    assert params["timeStamp"].isdigit() and len(params["nonceStr"]) >= 16
    fields = [params["appId"], params["timeStamp"], params["nonceStr"], params["package"]]
    # The SDK signs the same fields to the same signature (PKCS#1 v1.5 is deterministic)...
    keys = world["keys"]
    sdk = Core(mchid=MCHID, cert_serial_no=CERT_SERIAL,
               private_key=keys.merchant.export_key(pkcs=8).decode(),
               apiv3_key=keys.apiv3.decode(),
               public_key=keys.wechat.public_key().export_key().decode(),
               public_key_id=PUB_KEY_ID)
    assert params["paySign"] == sdk.sign(fields)
    # ...and WeChat checks it with the merchant's public key (from its certificate).
    import base64
    merchant = load_pem_public_key(keys.merchant.public_key().export_key())
    merchant.verify(base64.b64decode(params["paySign"]),
                    ("\n".join(fields) + "\n").encode(), PKCS1v15(), SHA256())

    # The payer pays; WeChat Pay notifies; the page's status shows the new balance.
    before = client.get(f"/t/o/{out_trade_no}/status").text
    assert 'data-status="created"' in before and "data-final" not in before
    fake.pay(out_trade_no)
    body, headers = wechat_notification(keys, wechat_paid(out_trade_no, 2000,
                                                          trade_type="JSAPI"))
    assert client.post("/api/v1/payments/wechat/notify", content=body,
                       headers=headers).status_code == 204
    after = client.get(f"/t/o/{out_trade_no}/status").text
    assert 'data-status="credited"' in after and 'id="new-balance">¥20.00' in after
    assert "data-wxpay" not in client.get(f"/t/o/{out_trade_no}").text
    assert PAYER_OPENID not in caplog.text and APP_SECRET not in caplog.text


def test_a_code_brought_back_with_a_state_of_another_session_is_refused(world):
    fake = world["fake"]
    victim = phone(world)
    authorize = to_wechat(world, victim)
    back = back_from_wechat(authorize)
    # Another phone (another session on the same link) brings the code and state back.
    other = phone(world)
    to_wechat(world, other)
    refused = other.get(back)
    assert refused.status_code == 403 and "expired" in refused.text
    assert "set-cookie" not in refused.headers
    # A changed state in the right session is refused too; no code was exchanged.
    code = parse_qs(urlsplit(back).query)["code"][0]
    for state in ("0" * 48, authorize["state"][:-1] + "0", "", authorize["state"] + "0"):
        if state == authorize["state"]:
            continue
        answer = victim.get(f"/t/wx/oauth/{world['account']}?code={code}&state={state}")
        assert answer.status_code == 403
    assert fake.exchanges == []
    # The code with its own state, in its own session, is taken.
    assert victim.get(back).status_code == 303
    assert [openid for _, _, openid in fake.exchanges] == [PAYER_OPENID]


def test_a_refused_code_or_a_browser_outside_wechat_pays_by_qr_code(world):
    fake = world["fake"]
    client = phone(world)
    authorize = to_wechat(world, client)
    answer = client.get(f"/t/wx/oauth/{world['account']}?code=forged&state="
                        f"{authorize['state']}")
    assert answer.status_code == 303 and fake.exchanges[-1][2] is None
    assert client.get(f"/t/a/{world['account']}").status_code == 200  # no loop
    out_trade_no = pay(world, client)
    assert fake.orders[out_trade_no]["scene"] == "native"
    assert 'id="qr"' in client.get(f"/t/o/{out_trade_no}").text
    # A phone's own browser never goes to WeChat, and pays by QR code.
    browser = phone(world, PHONE_UA)
    assert browser.get(f"/t/a/{world['account']}").status_code == 200
    out_trade_no = pay(world, browser)
    assert fake.orders[out_trade_no]["scene"] == "native"
    assert wxpay_params(browser.get(f"/t/o/{out_trade_no}").text) == {}


def test_the_app_secret_is_read_from_its_file_warned_about_if_exposed_and_never_shown(
        tmp_path, monkeypatch, make_settings):
    from adapters.auth import check_secret_files
    from adapters.payments.config import PaymentSettings
    from adapters.payments.oauth import oauth_from

    keys = Keys.generate()
    for name, value in {**keys.write(tmp_path),
                        **oauth_env("http://127.0.0.1:9", tmp_path)}.items():
        monkeypatch.setenv(name, value)
    settings = PaymentSettings()
    assert settings.jsapi_configured and settings.app_secret() == APP_SECRET
    assert all("AppSecret" not in p
               for p in check_secret_files(make_settings("sqlite"), settings))  # mode 600
    (tmp_path / "wechat_app_secret").chmod(0o644)
    warned = check_secret_files(make_settings("sqlite"), settings)
    assert any("AppSecret" in p and "wechat_app_secret" in p for p in warned)
    assert APP_SECRET not in repr(oauth_from(settings))
    # From the environment instead of a file: kept as a secret in the settings too.
    monkeypatch.delenv("WECHAT_APP_SECRET_FILE")
    monkeypatch.setenv("WECHAT_APP_SECRET", APP_SECRET)
    settings = PaymentSettings()
    assert settings.app_secret() == APP_SECRET and APP_SECRET not in repr(settings)
    monkeypatch.delenv("WECHAT_APP_SECRET")
    assert not PaymentSettings().jsapi_configured and oauth_from(PaymentSettings()) is None


def test_a_tenant_sees_no_order_of_another_account(world):
    """The order page, which may carry pay parameters, follows the API's own check."""
    other = open_shop(world["platform"], "Noodle Bar")
    order = world["platform"].ledger.payments.create_payment_order(
        account_id=uuid.UUID(other), amount_fen=2000, channel="wechat", scene="native",
        wallet="electricity", payer_openid=None, actor={})
    client = phone(world, PHONE_UA)
    assert client.get(f"/t/o/{order.out_trade_no}").status_code == 404
    assert client.get(f"/t/o/{order.out_trade_no}/status").status_code == 404
    assert "20.00" not in client.get(f"/t/o/{order.out_trade_no}").text
