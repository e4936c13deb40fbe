"""The staff console and the tenant page in a real browser: Debian's chromium, driven by
selenium over chromedriver, against the platform served over HTTP on loopback.

The browser may reach the platform only: every other host resolves to nothing
(``--host-resolver-rules``), and each test checks the browser's own network log and the
pages' markup for anything from elsewhere. Screenshots go to var/test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bootstrap import Platform
from api.app import create_app
from domain.tariff import TariffSpec
from ledger.metering import ReadingInput
from api.render import yuan
from tests.conftest import login
from tests.integration.simulation import TEST_MASTER_KEY, running_simulation
from tests.payment_fakes import APPID, PAYER_OPENID, FakeProvider, Keys, oauth_env, \
    serve_in_thread, wechat_notification, wechat_paid

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="chromium and chromium-driver are not installed (scripts/system-deps)")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
PASSWORD = "browser-test-password"  # test fixture only
# The strict policy the platform serves its pages with (api/headers.py): this origin only,
# no inline script or style. The receipt is the API's own page, with its own policy.
STRICT_CSP = ("default-src 'self'; img-src 'self' data:; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
ARREARS_RGB = "rgb(198, 40, 40)"  # --arrears in web/static/console.css
WAIT_S = 15
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/120.0.0.0 Mobile Safari/537.36 XWEB/1200 MMWEBSDK/20240301 "
             "MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI "
             "Language/zh_CN ABI/arm64")
# What WeChat's browser provides, stubbed: records each call and answers as a payer who
# paid. Injected before any page script runs (the pages' CSP does not apply to it).
WEIXIN_BRIDGE_STUB = """
window.wxpayCalls = [];
window.WeixinJSBridge = {invoke: function (name, params, answer) {
  window.wxpayCalls.push({name: name, params: params});
  window.setTimeout(function () { answer({err_msg: "get_brand_wcpay_request:ok"}); }, 100);
}};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_policy(url: str) -> str:
    """The Content-Security-Policy the platform itself sends with a page."""
    import urllib.request
    with urllib.request.urlopen(url) as answer:
        return answer.headers["content-security-policy"]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
def fake(keys):
    provider = FakeProvider(keys)
    port = free_port()
    server, thread = serve_in_thread(provider.app(), port)
    provider.base = f"http://127.0.0.1:{port}"
    yield provider
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def mall(make_settings, tmp_path, monkeypatch, keys, fake):
    """A site with three shops on simulated meters, operators of each role, the WeChat Pay
    fake, and the platform served on a loopback port."""
    for name, value in {**keys.write(tmp_path), **oauth_env(fake.base, tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WECHATPAY_API_BASE", fake.base)
    monkeypatch.setenv("ALIPAY_GATEWAY", f"{fake.base}/alipay/gateway.do")
    key_file = tmp_path / "master.key"
    key_file.write_text(TEST_MASTER_KEY.hex())  # a test fixture key
    with running_simulation(meters=3, gateways=1, speed=0.0) as sim:
        platform = Platform(make_settings(
            "sqlite", master_key_file=str(key_file), poll_timeout_s=0.5, poll_tries=1,
            gateway_allowed_networks="127.0.0.0/8", approvals_required="reversal"))
        ledger = platform.ledger
        now = ledger.clock()
        site = ledger.metering.create_site(name="Riverside Mall", actor={})
        gateway = ledger.metering.register_gateway(site_id=site.id, name="GW1", host="127.0.0.1",
                                                   port=sim.simulation.gateways[0].port,
                                                   protocol="modbus-tcp", actor={})
        tariff = ledger.metering.create_tariff(name="Flat 1 yuan", actor={},
                                               effective_from=now - timedelta(days=40),
                                               spec=TariffSpec.from_dict({"kind": "flat",
                                                                          "price_1e4": 10_000}))
        shops = {}
        for (name, unit, floor), sim_meter in zip(
                (("Tea House", "A-101", "1F"), ("Noodle Bar", "A-102", "1F"),
                 ("Book Nook", "B-201", "2F")), sim.simulation.gateways[0].meters.values()):
            account = uuid.UUID(ledger.accounts.open_account(name=name, unit=unit,
                                                             site_id=str(site.id),
                                                             actor={}).result["account_id"])
            meter = ledger.metering.register_meter(
                meter_no=sim_meter.meter_no, kind="electricity", mode="prepaid",
                gateway_id=gateway.id, address=sim_meter.address, profile="ref-prepaid-v1",
                account_id=account, tariff_id=tariff.id, site_id=site.id,
                building=unit[0], floor=floor, unit=unit,
                tariff_from=now - timedelta(days=40), actor={})
            shops[name] = {"account": str(account), "meter": str(meter.id),
                           "meter_no": sim_meter.meter_no}
        ledger.accounts.top_up(uuid.UUID(shops["Book Nook"]["account"]), amount_fen=10000,
                               channel="cash", actor={})
        ledger.accounts.adjust(uuid.UUID(shops["Noodle Bar"]["account"]), delta_fen=-1500,
                               reason="unpaid consumption", force=True, actor={})
        # Ten days of consumption on the Book Nook's meter, for the tenant's chart.
        book = shops["Book Nook"]["meter_no"]
        start = now - timedelta(days=10)
        ledger.metering.ingest_readings([ReadingInput(meter_no=book,
                                                      read_at=start + timedelta(days=d),
                                                      total=100_000 + d * (200 + 30 * (d % 3)))
                                         for d in range(11)])
        for username, roles in (("cashier", ["finance"]), ("finance2", ["finance"]),
                                ("operator", ["operator"]), ("admin", ["admin"])):
            login(platform, username, PASSWORD, roles=tuple(roles))
        platform.catch_up()
        port = free_port()
        server, thread = serve_in_thread(create_app(platform, background=False),
                                         port)
        runtime = platform.device_runtime()
        loop = asyncio.new_event_loop()
        yield {"base": f"http://127.0.0.1:{port}", "platform": platform, "shops": shops,
               "fake": fake, "keys": keys, "runtime": runtime,
               "run": loop.run_until_complete}
        loop.run_until_complete(runtime.close())
        loop.close()
        server.should_exit = True
        thread.join(timeout=10)
        platform.close()


class Browser:
    """One chromium with its own profile; it records every request it makes."""

    def __init__(self, base: str, tmp: Path, name: str, size=(1280, 900),
                 agent: str | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage",
                     # Nothing but the platform resolves: a mall LAN without internet.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                     f"--user-data-dir={tmp / ('chromium-' + name)}",
                     f"--window-size={size[0]},{size[1]}"):
            options.add_argument(flag)
        options.add_argument("--lang=en-US")
        if agent:
            options.add_argument(f"--user-agent={agent}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                       options=options)
        self.driver.set_window_size(*size)
        self.driver.implicitly_wait(3)  # for the next page after a click
        self.base, self.name, self.requests = base, name, []
        self.also_allowed: list[str] = []  # other local origins a test sends it to
        self.shots = 0

    # -- driving ---------------------------------------------------------------------------

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.check_page()

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str):
        """What is on the page now (no waiting for it to appear)."""
        from selenium.webdriver.common.by import By

        self.driver.implicitly_wait(0)
        try:
            return self.driver.find_elements(By.CSS_SELECTOR, selector)
        finally:
            self.driver.implicitly_wait(3)

    def click(self, selector: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(5):  # a polled part of the page may be replaced meanwhile
            try:
                self.css(selector).click()
                break
            except StaleElementReferenceException:
                time.sleep(0.1)
        self.check_page()

    def wait_for(self, condition, what: str, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
                if value:
                    return value
            except Exception:  # noqa: BLE001 - the page is changing under us
                pass
            if time.monotonic() > deadline:
                self.shot(f"timeout-{what}")
                raise AssertionError(f"{self.name}: no {what} after {timeout} s")
            time.sleep(0.2)

    def log_in(self, username: str) -> None:
        self.get("/console/login")
        self.css("#username").send_keys(username)
        self.css("#password").send_keys(PASSWORD)
        self.click("#login")
        self.wait_for(lambda: self.all("#who"), "logged in")
        assert self.driver.current_url.startswith(self.base + "/console/"), \
            self.driver.current_url
        assert username in self.css("#who").text

    def shot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{label}.png"
        self.driver.save_screenshot(str(path))
        return path

    # -- what the browser fetched ----------------------------------------------------------

    def check_page(self) -> None:
        """The page loads its script from a file (a strict CSP holds) and names no other
        host in anything it would load or send."""
        html = self.driver.page_source
        inline = [s for s in re.findall(r"<script\b[^>]*>", html) if "src=" not in s]
        assert not inline, f"inline script on {self.driver.current_url}"
        assert not re.search(r"\son[a-z]+=", html), "inline event handler"
        for attribute, url in re.findall(r'\s(src|href|action)="(https?://[^"]*)"', html):
            assert url.startswith(self.base), f"{attribute}={url} on {self.driver.current_url}"

    def network(self) -> list[str]:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        return self.requests

    def close(self) -> None:
        try:
            refused = [e["message"] for e in self.driver.get_log("browser")
                       if "Content Security Policy" in e["message"]]
            assert refused == [], f"{self.name}: the policy refused {refused}"
            elsewhere = [u for u in self.network() if not u.startswith(
                (self.base, "data:", "about:", "chrome:", "blob:", *self.also_allowed))]
            assert elsewhere == [], f"{self.name} asked other hosts: {elsewhere}"
            assert any(u.startswith(self.base) for u in self.requests)
        finally:
            self.driver.quit()


@pytest.fixture
def browsers(mall, tmp_path):
    opened: list[Browser] = []

    def open_browser(name: str, size=(1280, 900), agent: str | None = None) -> Browser:
        browser = Browser(mall["base"], tmp_path, name, size, agent)
        opened.append(browser)
        return browser

    yield open_browser
    errors = []
    for browser in opened:
        try:
            browser.close()
        except AssertionError as error:
            errors.append(str(error))
    assert errors == []


def balance_fen(mall, shop: str) -> int:
    return mall["platform"].ledger.accounts.get_account(
        uuid.UUID(mall["shops"][shop]["account"])).balance_fen("electricity")


def top_ups(mall, shop: str) -> list[dict]:
    p = mall["platform"]
    p.catch_up()
    rows = p.queries.statement(mall["shops"][shop]["account"], limit=100, cursor=None).items
    return [r for r in rows if r["kind"] == "top_up"]


# -- the tests ---------------------------------------------------------------------------

def test_a_cashier_finds_a_shop_by_unit_sells_200_cash_and_prints_the_receipt(mall, browsers):
    b = browsers("cashier")
    b.log_in("cashier")
    b.css("#search").send_keys("A-101")
    b.click("#search-button")
    b.wait_for(lambda: [t.get_attribute("data-unit") for t in b.all(".tile")] == ["A-101"],
               "the one shop")
    b.shot("found")
    # Three clicks: the shop, the amount, the receipt.
    b.click(".tile[data-unit='A-101']")
    assert "Tea House" in b.css("#account-name").text
    b.click("#sell-200\\.00")
    assert "Sold" in b.css("#done").text
    assert b.css("[data-wallet=electricity] .balance").text == "200.00"
    b.shot("sold")
    b.click("#receipt-link")
    b.driver.switch_to.window(b.driver.window_handles[-1])
    b.wait_for(lambda: "200.00" in b.driver.page_source, "receipt")
    assert "Tea House" in b.driver.page_source
    b.shot("receipt")
    assert balance_fen(mall, "Tea House") == 20000
    assert len(top_ups(mall, "Tea House")) == 1


def test_pressing_submit_twice_or_going_back_and_resubmitting_credits_once(mall, browsers):
    from selenium.webdriver.common.action_chains import ActionChains

    b = browsers("double")
    b.log_in("cashier")
    b.get(f"/console/accounts/{mall['shops']['Tea House']['account']}")
    ActionChains(b.driver).double_click(b.css("#sell-200\\.00")).perform()
    b.wait_for(lambda: b.all("#done"), "sale")
    assert b.css("[data-wallet=electricity] .balance").text == "200.00"
    # Back to the rendered form (same idempotency key), and submit it again.
    b.driver.back()
    b.wait_for(lambda: b.all("#sell-200\\.00") and not b.all("#done"), "the form again")
    b.click("#sell-200\\.00")
    assert "nothing was credited twice" in b.css("#done").text
    assert b.css("[data-wallet=electricity] .balance").text == "200.00"
    # The same form posted twice by hand (no script in the way): one credit.
    form_key = b.css("#sale-form input[name=idempotency_key]").get_attribute("value")
    csrf = b.css("#sale-form input[name=csrf]").get_attribute("value")
    statuses = b.driver.execute_script("""
        const [url, csrf, key] = arguments;
        const body = () => new URLSearchParams({csrf, idempotency_key: key, preset: "50.00",
                                                channel: "cash", wallet: "electricity"});
        return Promise.all([1, 2].map(() => fetch(url, {method: "POST", body: body(),
            redirect: "manual"}).then(r => r.type)));
    """, f"{b.base}/console/accounts/{mall['shops']['Tea House']['account']}/top-up",
        csrf, form_key)
    assert statuses == ["opaqueredirect", "opaqueredirect"]
    assert balance_fen(mall, "Tea House") == 25000
    assert [r["amount_fen"] for r in top_ups(mall, "Tea House")] == [20000, 5000]


def test_a_reversal_waits_for_a_second_person_who_approves_it_from_the_inbox(mall, browsers):
    account = mall["shops"]["Tea House"]["account"]
    mall["platform"].ledger.accounts.top_up(uuid.UUID(account), amount_fen=10000, channel="cash",
                                            actor={"kind": "operator", "id": "cashier"})
    first = browsers("finance1")
    first.log_in("cashier")
    first.get(f"/console/accounts/{account}")
    row = first.css("#statement tr[data-kind=top_up]")
    row.find_element("css selector", "input[name=reason]").send_keys("sold to the wrong shop")
    row.find_element("css selector", "form.reverse button").click()
    assert "second person" in first.css("#waiting").text
    assert "reverse the top_up of 100.00" in first.css("#pending-here").text
    assert first.css("[data-wallet=electricity] .balance").text == "100.00"
    first.get("/console/approvals")
    pending = first.all("#pending tr[data-approval]")
    assert len(pending) == 1 and "reverse the top_up of 100.00" in pending[0].text
    first.shot("waiting")
    # The requester cannot approve it: the server refuses.
    pending[0].find_element("css selector", "button.approve").click()
    assert first.css("#error")
    assert balance_fen(mall, "Tea House") == 10000

    second = browsers("finance2")
    second.log_in("finance2")
    second.get("/console/approvals")
    second.shot("inbox")
    second.css("#pending tr[data-approval] button.approve").click()
    second.wait_for(lambda: second.all("#nothing"), "an empty inbox")
    assert second.css("#decided tr[data-approval] .status").text == "Approved"
    second.get(f"/console/accounts/{account}")
    assert second.css("[data-wallet=electricity] .balance").text == "0.00"
    assert balance_fen(mall, "Tea House") == 0


def test_the_overview_shows_arrears_in_colour_and_a_trip_is_confirmed_by_the_meter(
        mall, browsers):
    b = browsers("overview")
    b.log_in("admin")
    noodle = b.css(".tile[data-unit='A-102']")
    assert noodle.get_attribute("data-state") == "arrears"
    assert noodle.value_of_css_property("background-color") in (ARREARS_RGB,
                                                                "rgba(198, 40, 40, 1)")
    arrears = b.all(".tile[data-state=arrears]")
    assert b.css(".counts [data-state=arrears] span").text == str(len(arrears))
    shot = b.shot("overview")
    shutil.copy(shot, ROOT / "var" / "test-artifacts" / "console-overview.png")
    # The overview follows a change without a reload.
    b.driver.execute_script("window.stillHere = true;")
    mall["platform"].ledger.accounts.top_up(uuid.UUID(mall["shops"]["Noodle Bar"]["account"]),
                                            amount_fen=20000, channel="cash", actor={})
    b.wait_for(lambda: b.css(".tile[data-unit='A-102']").get_attribute("data-state") ==
               "open", "the tile turning green")
    assert b.driver.execute_script("return window.stillHere;") is True

    meter = mall["shops"]["Tea House"]["meter"]
    b.get(f"/console/meters/{meter}")
    b.click("#cmd-trip")
    assert b.css("#sent")
    command = b.css("#command-list tr[data-command]")
    assert command.get_attribute("data-status") != "acknowledged"
    # The device loop sends the trip to the simulated meter, which confirms it.
    mall["platform"].catch_up()
    assert mall["run"](mall["runtime"].execute_due()) == 1
    b.wait_for(lambda: b.css("#command-list tr[data-command]").get_attribute(
        "data-status") == "acknowledged", "acknowledged trip")
    b.get(f"/console/meters/{meter}")
    assert b.css("#relay").text == "open"
    b.shot("meter-tripped")


def test_a_tenant_opens_the_signed_link_on_a_phone_and_pays_20_by_wechat(mall, browsers):
    account = mall["shops"]["Book Nook"]["account"]
    staff = browsers("staff")
    staff.log_in("admin")
    staff.get(f"/console/accounts/{account}")
    staff.click("#issue-link")
    link = staff.css("#link-url").get_attribute("href")
    assert link.startswith(mall["base"] + "/t/l/")

    phone = browsers("tenant", size=(390, 844))
    phone.driver.get(link)
    phone.check_page()
    before = balance_fen(mall, "Book Nook")
    assert 0 < before < 10000  # a hundred sold, ten days used
    assert phone.css("[data-wallet=electricity] .balance").text == f"¥{yuan(before)}"
    bars = phone.all("#usage svg rect.bar")
    assert len(bars) == 30 and sum(float(r.get_attribute("height")) > 0 for r in bars) >= 7
    shot = phone.shot("home")
    shutil.copy(shot, ARTIFACTS / "tenant-page.png")
    phone.click("#pay-20\\.00")
    phone.wait_for(lambda: "/t/o/" in phone.driver.current_url, "the payment order")
    assert phone.css("#qr svg")
    phone.driver.execute_script("window.stillHere = true;")
    phone.shot("qr")
    out_trade_no = phone.driver.current_url.rsplit("/", 1)[-1]
    # The payer pays in WeChat; WeChat Pay notifies the platform.
    mall["fake"].pay(out_trade_no)
    body, headers = wechat_notification(mall["keys"], wechat_paid(out_trade_no, 2000))
    answer = httpx.post(f"{mall['base']}/api/v1/payments/wechat/notify", content=body,
                        headers=headers)
    assert answer.status_code == 204
    phone.wait_for(lambda: phone.css("#new-balance").text == f"¥{yuan(before + 2000)}",
                   "the new balance")
    assert phone.driver.execute_script("return window.stillHere;") is True
    phone.shot("paid")
    # The link shows this account only.
    other = mall["shops"]["Tea House"]["account"]
    phone.get(f"/t/a/{other}")
    assert phone.all("#error") and "Tea House" not in phone.driver.page_source
    # Revoked: the printed link opens nothing any more, nor does the page it opened.
    staff.get(f"/console/accounts/{account}")
    staff.click("#revoke-link")
    staff.wait_for(lambda: not staff.all("#revoke-link"), "the link revoked")
    phone.get(f"/t/a/{account}")
    assert "no longer valid" in phone.css("#error").text
    phone.driver.get(link)
    assert "no longer valid" in phone.css("#error").text


def test_inside_wechat_a_tenant_pays_20_by_jsapi_and_sees_the_new_balance(mall, browsers):
    from Crypto.Hash import SHA256
    from Crypto.Signature import pkcs1_15

    account = mall["shops"]["Book Nook"]["account"]
    staff = browsers("staff")
    staff.log_in("admin")
    staff.get(f"/console/accounts/{account}")
    staff.click("#issue-link")
    link = staff.css("#link-url").get_attribute("href")

    phone = browsers("tenant-wechat", size=(390, 844), agent=WECHAT_UA)
    phone.also_allowed.append(mall["fake"].base)  # WeChat's authorise page, on the fake
    phone.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                 {"source": WEIXIN_BRIDGE_STUB})
    assert "MicroMessenger" in phone.driver.execute_script("return navigator.userAgent;")
    phone.driver.get(link)
    # By WeChat's authorise page and back, silently (snsapi_base).
    phone.wait_for(lambda: phone.all("[data-wallet=electricity] .balance"), "the balance")
    phone.check_page()
    # (The browser keeps the authorise URL's #wechat_redirect across the redirects.)
    assert phone.driver.current_url.split("#")[0] == f"{mall['base']}/t/a/{account}?wx=1"
    assert [o for _, _, o in mall["fake"].exchanges] == [PAYER_OPENID]
    assert any(u.startswith(mall["fake"].base + "/connect/oauth2/authorize?")
               for u in phone.network())
    assert PAYER_OPENID not in phone.driver.page_source
    before = balance_fen(mall, "Book Nook")
    phone.click("#pay-20\\.00")
    phone.wait_for(lambda: "/t/o/" in phone.driver.current_url, "the payment order")
    phone.driver.execute_script("window.stillHere = true;")
    out_trade_no = phone.driver.current_url.rsplit("/", 1)[-1]
    assert mall["fake"].orders[out_trade_no]["payer"] == {"openid": PAYER_OPENID}
    assert not phone.all("#qr")
    # The page called the bridge once, by itself, with parameters WeChat would accept.
    phone.wait_for(lambda: phone.css("#wxpay").get_attribute("data-result") ==
                   "get_brand_wcpay_request:ok", "the payer's answer")
    calls = phone.driver.execute_script("return window.wxpayCalls;")
    assert [c["name"] for c in calls] == ["getBrandWCPayRequest"]
    params = calls[0]["params"]
    assert params["appId"] == APPID and params["signType"] == "RSA"
    assert params["package"] == f"prepay_id=wx{out_trade_no}"
    message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr",
                                                  "package"))
    pkcs1_15.new(mall["keys"].merchant.public_key()).verify(
        SHA256.new(message.encode()), __import__("base64").b64decode(params["paySign"]))
    assert PAYER_OPENID not in phone.driver.page_source
    phone.shot("jsapi-paid-in-wechat")
    # WeChat Pay notifies the platform; the page shows the new balance without a reload.
    mall["fake"].pay(out_trade_no)
    body, headers = wechat_notification(mall["keys"], wechat_paid(out_trade_no, 2000,
                                                                  trade_type="JSAPI"))
    answer = httpx.post(f"{mall['base']}/api/v1/payments/wechat/notify", content=body,
                        headers=headers)
    assert answer.status_code == 204
    phone.wait_for(lambda: phone.css("#new-balance").text == f"¥{yuan(before + 2000)}",
                   "the new balance")
    assert phone.driver.execute_script("return window.stillHere;") is True
    assert len(phone.driver.execute_script("return window.wxpayCalls;")) == 1
    phone.shot("jsapi-credited")


def test_an_operator_without_top_up_sees_no_sale_form_and_a_forged_post_is_refused(
        mall, browsers):
    account = mall["shops"]["Tea House"]["account"]
    b = browsers("operator")
    b.log_in("operator")
    b.get(f"/console/accounts/{account}")
    assert b.all("#sale-form") == [] and b.all("#sale") == []
    csrf = b.css("form[action='/console/logout'] input[name=csrf]").get_attribute("value")
    status = b.driver.execute_script("""
        const [url, csrf] = arguments;
        return fetch(url, {method: "POST", redirect: "manual", body: new URLSearchParams({
            csrf, idempotency_key: "forged-1", preset: "200.00", channel: "cash"})})
            .then(r => r.status);
    """, f"{b.base}/console/accounts/{account}/top-up", csrf)
    assert status == 403
    assert balance_fen(mall, "Tea House") == 0
    # Nor is a post without the session's CSRF token taken from anyone.
    admin = browsers("admin")
    admin.log_in("admin")
    status = admin.driver.execute_script("""
        return fetch(arguments[0], {method: "POST", redirect: "manual",
            body: new URLSearchParams({csrf: "x", idempotency_key: "k", preset: "200.00",
                                       channel: "cash"})}).then(r => r.status);
    """, f"{admin.base}/console/accounts/{account}/top-up")
    assert status == 403
    assert balance_fen(mall, "Tea House") == 0


def test_every_page_renders_with_nothing_but_the_platform_reachable(mall, browsers):
    shops = mall["shops"]
    b = browsers("every-page")
    b.log_in("admin")
    pages = ["/console/", f"/console/accounts/{shops['Book Nook']['account']}",
             f"/console/meters/{shops['Book Nook']['meter']}", "/console/approvals",
             "/console/audit", "/console/audit?actor_kind=console"]
    pages += [f"/console/reports?name={n}&month=2026-03" for n in
              ("sales-day", "sales-month", "account-periods", "energy", "alarms", "offline")]
    pages.append(f"/console/reports?name=losses&month=2026-03"
                 f"&master_meter_id={shops['Tea House']['meter']}")
    for path in pages:
        b.get(path)
        assert not b.all("#error"), (path, b.css("#error").text)
        assert b.css("main h1").text
    # The platform itself serves its pages with the strict policy the browser enforced.
    assert served_policy(b.base + "/console/login") == STRICT_CSP
    b.get("/console/reports?name=sales-day")
    assert b.all("#chart svg")
    b.shot("reports")
    # Chinese for a Chinese browser, and the switch back.
    b.click("#lang-switch")
    assert b.css("header nav a").text == "总览"
    b.shot("zh")
    b.click("#lang-switch")
    assert b.css("header nav a").text == "Overview"
    # The exports are the report endpoints' own files.
    csv = b.driver.execute_script(
        "return fetch('/console/reports?name=sales-day&format=csv').then(r => r.text());")
    assert csv.startswith("period,channel,operator")
    # The tenant's pages too, by a fresh link.
    b.get(f"/console/accounts/{shops['Book Nook']['account']}")
    b.click("#issue-link")
    link = b.css("#link-url").get_attribute("href")
    phone = browsers("every-tenant-page", size=(390, 844))
    phone.driver.get(link)
    phone.check_page()
    receipts = phone.all("a[href^='/t/receipts/']")
    assert receipts
    receipts[0].click()
    assert "100.00" in phone.driver.page_source
