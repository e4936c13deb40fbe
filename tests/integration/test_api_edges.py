"""What a client first meets at the edge of the API: the documentation pages served without
internet, the root and health paths, how bodies that are not JSON are answered, cursors,
security headers, and money that always reads in yuan."""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap import Platform
from api.app import create_app
from api.auth import allow
from domain.access import PUBLIC
from tests.conftest import FrozenClock, login

API = "/api/v1"
FEN = re.compile(r"\bfen\b|_fen\b", re.IGNORECASE)
YUAN = re.compile(r"^-?\d+\.\d{2}$")


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def shop(client: TestClient, amount: str = "100.00") -> str:
    account = client.post(f"{API}/accounts", json={"name": "Edge shop"}).json()["id"]
    assert client.post(f"{API}/accounts/{account}/top-ups",
                       json={"amount": amount, "channel": "cash"},
                       headers=key()).status_code == 201
    return account


# -- documentation pages, root and health ---------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_documentation_pages_need_no_internet(anonymous, page):
    answer = anonymous.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert not re.search(r"(?i)\bhttps?://", html), re.findall(r"(?i)https?://[^\"' ]+", html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets)
    expected = {".js": ("application/javascript", "text/javascript"), ".css": ("text/css",),
                ".png": ("image/png",)}
    for asset in assets:
        got = anonymous.get(asset)
        assert got.status_code == 200, asset
        kind = got.headers["content-type"].split(";")[0]
        assert kind in expected[asset[asset.rindex("."):]], (asset, kind)
        assert len(got.content) > 1000
    # The page's own policy lets these local assets (and its one inline script) run.
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "https:" not in policy
    for inline in re.findall(r"<script>(.*?)</script>", html, re.S):
        digest = base64.b64encode(__import__("hashlib").sha256(inline.encode()).digest())
        assert f"'sha256-{digest.decode()}'" in policy
    assert anonymous.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_documentation_can_be_switched_off(make_settings, backend):
    platform = Platform(make_settings(backend, public_docs=False), clock=FrozenClock())
    try:
        with TestClient(create_app(platform, background=False)) as anonymous:
            for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
                assert anonymous.get(path).status_code == 404, path
            root = anonymous.get("/", follow_redirects=False)
            assert root.headers["location"] == "/console/"  # the console, not the docs
            assert anonymous.get("/health").status_code == 200
    finally:
        platform.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_root_leads_to_the_console_and_health_answers_under_the_api_prefix(anonymous):
    root = anonymous.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
    assert "/console/login" in str(anonymous.get("/").url)  # followed: the console's login
    for path in ("/health", f"{API}/health"):
        answer = anonymous.get(path)
        assert answer.status_code == 200 and answer.json()["status"] == "ok", path


# -- bodies ----------------------------------------------------------------------------------

@pytest.fixture
def world(backend, make_settings):
    """Approvals on, as in production; an admin and two finance clerks."""
    platform = Platform(make_settings(backend, approvals_required=(
        "keep_power,reversal,adjustment,refund")), clock=FrozenClock())
    app = create_app(platform, background=False)
    clients = {name: TestClient(app, headers=login(platform, name, f"{name}-password",
                                                   roles=roles))
               for name, roles in (("boss", ("admin",)), ("maker", ("finance",)),
                                   ("checker", ("finance",)))}
    yield clients
    platform.close()


def test_approvals_are_decided_without_a_body(world):
    admin, maker, checker = world["boss"], world["maker"], world["checker"]
    account = shop(admin)
    asked = [maker.post(f"{API}/accounts/{account}/adjustments",
                        json={"amount": "-1.00", "reason": f"misread {n}"},
                        headers=key()).json()["approval_id"] for n in range(3)]
    approved = checker.post(f"{API}/approvals/{asked[0]}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    rejected = checker.post(f"{API}/approvals/{asked[1]}/reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    empty = checker.post(f"{API}/approvals/{asked[2]}/approve", json={})
    assert empty.status_code == 200 and empty.json()["status"] == "approved"
    assert admin.get(f"{API}/accounts/{account}").json()["balance"] == "98.00"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bodies_that_are_not_json_say_what_to_send(client):
    account = shop(client)
    before = client.get(f"{API}/accounts/{account}").json()
    path = f"{API}/accounts/{account}/top-ups"
    for kwargs in ({"data": {"amount": "1.00", "channel": "cash"}},
                   {"content": '{"amount": "1.00", "channel": "cash"}',
                    "headers": {"Content-Type": "text/plain", **key()}}):
        kwargs.setdefault("headers", key())
        answer = client.post(path, **kwargs)
        assert answer.status_code == 415, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "application/json" in answer.json()["detail"]
    bad = client.post(path, content=b'{"amount": "1.00", "channel": "ca\xffsh"}',
                      headers={"Content-Type": "application/json", **key()})
    assert bad.status_code == 400 and "UTF-8" in bad.json()["detail"], bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"{API}/accounts/{account}").json() == before
    # Logging in is a form, and stays one.
    assert client.post(f"{API}/auth/token", data={"username": "x", "password": "y"}
                       ).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("body", [[], "text", 12, None])
def test_no_validation_error_has_an_empty_field_name(client, body):
    account = shop(client)
    answer = client.post(f"{API}/accounts/{account}/top-ups", json=body, headers=key())
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert all(item["field"] for item in problem["errors"]), problem
    assert not problem["detail"].startswith(":")
    assert problem["errors"][0]["field"] == "body"


# -- cursors ---------------------------------------------------------------------------------

def encoded(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


CURSOR_PATHS = ("/accounts", "/accounts/{account}/statement", "/meters",
                "/meters/{meter}/readings", "/audit/log")
BAD_CURSORS = [encoded(v) for v in ({"after": True}, {"after": False}, {"after": 1.5},
                                    {"after": "3"}, {"after": -1}, {"after": 2 ** 64},
                                    {"after": 1, "before": 2}, {}, [1], None, 7)] + [
    "%%%", "not base64", "ü", "A" * 1000]


def _paths(client: TestClient) -> list[str]:
    account = shop(client)
    meter = client.post(f"{API}/meters", json={"meter_no": "000000000077",
                                                "kind": "electricity", "mode": "prepaid",
                                                "address": 1, "account_id": account}).json()["id"]
    return [f"{API}{p.format(account=account, meter=meter)}" for p in CURSOR_PATHS]


def test_crafted_cursors_are_400_problems(client):
    for path in _paths(client):
        assert client.get(path, params={"cursor": encoded({"after": 0})}).status_code == 200
        for cursor in BAD_CURSORS:
            answer = client.get(path, params={"cursor": cursor})
            assert answer.status_code == 400, (path, cursor, answer.text)
            assert answer.json()["type"] == "/problems/bad-cursor"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@pytest.mark.parametrize("backend", ["postgres"])
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON | st.fixed_dictionaries({"after": JSON | st.integers(2 ** 62, 2 ** 70)}))
def test_cursors_of_random_json_are_answered_or_refused_never_a_failure(client, value):
    answer = client.get(f"{API}/accounts", params={"cursor": encoded(value)})
    assert answer.status_code in (200, 400), (value, answer.text)


# -- security headers ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_answer_carries_security_headers(client, anonymous):
    account = shop(client)
    transaction = client.get(f"{API}/accounts/{account}/statement").json()["items"][0]
    answers = {
        "json": client.get(f"{API}/accounts/{account}"),
        "health": anonymous.get("/health"),
        "unauthenticated": anonymous.get(f"{API}/accounts"),
        "not found": client.get("/nowhere"),
        "too large": client.post(f"{API}/accounts", content=b"{" + b" " * 70_000 + b"}",
                                 headers={"Content-Type": "application/json"}),
        "docs": anonymous.get("/docs"),
        "asset": anonymous.get(re.findall(r'src="([^"]+\.js)"', anonymous.get("/docs").text)[0]),
    }
    receipt = client.get(f"{API}/transactions/{transaction['transaction_id']}/receipt")
    answers["receipt"] = receipt
    # An unexpected failure too (the framework's own error layer answers it).
    app = client.app

    @app.get("/fails-for-the-test", **allow(PUBLIC))
    def fails() -> None:
        raise RuntimeError("for the test")

    with TestClient(app, raise_server_exceptions=False) as crashing:
        answers["failure"] = crashing.get("/fails-for-the-test")
    assert answers["failure"].status_code == 500
    for name, answer in answers.items():
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
    assert answers["too large"].status_code == 413
    assert receipt.status_code == 200 and receipt.headers["content-type"].startswith("text/html")
    policy = receipt.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in receipt.text


# -- money reads in yuan ---------------------------------------------------------------------

def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_openapi_document_never_speaks_of_fen(anonymous):
    document = anonymous.get("/openapi.json").json()
    said = [s for s in _strings(document.get("components", {})) if FEN.search(s)]
    said += [s for s in _strings(document["paths"]) if FEN.search(s)]
    assert said == []


def test_answers_and_messages_say_yuan_never_fen(world):
    admin, maker, checker = world["boss"], world["maker"], world["checker"]
    account = shop(admin, "30.00")
    answers = []
    # A refund above the balance.
    answers.append(admin.post(f"{API}/accounts/{account}/refunds",
                              json={"amount": "50.00", "channel": "cash"}, headers=key()))
    assert answers[-1].status_code == 409
    assert "50.00" in answers[-1].json()["detail"] and "30.00" in answers[-1].json()["detail"]
    # An adjustment that would take the wallet below zero, asked and approved.
    asked = maker.post(f"{API}/accounts/{account}/adjustments",
                       json={"amount": "-60.00", "reason": "misread"}, headers=key())
    answers.append(asked)
    answers.append(checker.get(f"{API}/approvals/{asked.json()['approval_id']}"))
    answers.append(checker.post(f"{API}/approvals/{asked.json()['approval_id']}/approve"))
    assert answers[-1].status_code == 409
    assert "-30.00" in answers[-1].json()["detail"], answers[-1].text
    # A refund that needs approval: its parameters and result read in yuan.
    admin.post(f"{API}/accounts/{account}/top-ups", json={"amount": "3000.00",
                                                        "channel": "bank"}, headers=key())
    big = maker.post(f"{API}/accounts/{account}/refunds",
                     json={"amount": "1500.00", "channel": "bank"}, headers=key())
    pending = checker.get(f"{API}/approvals/{big.json()['approval_id']}").json()
    assert pending["params"]["amount"] == "1500.00"
    done = checker.post(f"{API}/approvals/{big.json()['approval_id']}/approve")
    answers += [big, done]
    result = done.json()["result"]
    assert result["amount"] == "1500.00" and result["balance_after"] == "1530.00", result
    assert all(YUAN.match(v) for v in result["balances_after"].values())
    # A reversal that would take the wallet negative (the refund left too little).
    sale = admin.get(f"{API}/accounts/{account}/statement").json()["items"]
    top_up = next(i for i in sale if i["amount"] == "3000.00")
    reverse = maker.post(f"{API}/transactions/{top_up['transaction_id']}/reversal",
                         json={"reason": "wrong shop"}, headers=key())
    answers.append(reverse)
    answers.append(checker.post(f"{API}/approvals/{reverse.json()['approval_id']}/approve"))
    assert answers[-1].status_code == 409 and "-1470.00" in answers[-1].json()["detail"]
    answers.append(checker.get(f"{API}/approvals"))
    for answer in answers:
        said = [s for s in _strings(answer.json()) if FEN.search(s)]
        assert said == [], (answer.request.url, answer.text)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_meters_alarm_levels_read_in_yuan(client):
    account = shop(client)
    site = client.post(f"{API}/sites", json={"name": "Edge mall"}).json()["id"]
    gateway = client.post(f"{API}/gateways", json={"name": "GW", "host": "10.0.0.9",
                                                   "port": 502, "site_id": site}).json()
    meter = client.post(f"{API}/meters", json={
        "meter_no": "000000000078", "kind": "electricity", "mode": "prepaid",
        "gateway_id": gateway["id"], "address": 1, "account_id": account}).json()
    synced = client.post(f"{API}/meters/{meter['id']}/commands", json={
        "action": "sync_thresholds", "alarm1": "50.00", "alarm2": "20.00", "overload_kw": 40})
    assert synced.status_code == 202, synced.text
    state = client.get(f"{API}/meters/{meter['id']}/state").json()
    assert state["thresholds"] == {"alarm1": "50.00", "alarm2": "20.00", "overload_w": 40_000}
