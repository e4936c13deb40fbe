"""The core REST API over HTTP (in-process), on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import read_models

API = "/api/v1"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def open_account(client, name="Shop 101", **fields) -> str:
    response = client.post(f"{API}/accounts", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def top_up(client, account_id, amount="100.00", channel="cash", **extra):
    response = client.post(f"{API}/accounts/{account_id}/top-ups",
                           json={"amount": amount, "channel": channel, **extra}, headers=key())
    assert response.status_code == 201, response.text
    return response.json()


def trial_balance(client) -> dict:
    body = client.get(f"{API}/ledger/trial-balance").json()
    assert body["total_debit"] == body["total_credit"]
    return body


def test_cashier_day(client, clock):
    """Open, sell credit, refund, reverse a mistaken sale, close; read everything back."""
    account = open_account(client, unit="1F-101", contact="Ms Li", phone="13800000000",
                           area_m2="85.5")
    assert client.get(f"{API}/accounts/{account}").json()["area_m2"] == "85.50"
    sale = top_up(client, account, "200.00", "cash", reference="receipt 0001")
    assert sale["balance_after"] == "200.00"
    clock.advance(minutes=5)
    mistaken = top_up(client, account, "50.00", "bank")
    assert mistaken["balance_after"] == "250.00"
    clock.advance(minutes=5)
    reversal = client.post(f"{API}/transactions/{mistaken['id']}/reversal",
                           json={"reason": "typed the wrong shop"}, headers=key())
    assert reversal.status_code == 201, reversal.text
    assert reversal.json()["balance_after"] == "200.00"
    assert reversal.json()["corrects"] == mistaken["id"]
    clock.advance(minutes=5)
    refund = client.post(f"{API}/accounts/{account}/refunds",
                         json={"amount": "30.00", "channel": "cash", "reason": "moving meter"},
                         headers=key())
    assert refund.status_code == 201
    assert refund.json()["balance_after"] == "170.00"

    got = client.get(f"{API}/accounts/{account}").json()
    assert got["balance"] == "170.00" and got["status"] == "open"

    statement = client.get(f"{API}/accounts/{account}/statement").json()["items"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in statement] == [
        ("top_up", "200.00", "200.00"), ("top_up", "50.00", "250.00"),
        ("reversal", "-50.00", "200.00"), ("refund", "-30.00", "170.00")]

    transaction = client.get(f"{API}/transactions/{mistaken['id']}").json()
    assert transaction["reversed_by"] == reversal.json()["id"]
    assert transaction["postings"] == [
        {"ledger_account": "clearing:bank", "debit": "50.00", "credit": "0.00"},
        {"ledger_account": f"wallet:{account}:electricity", "debit": "0.00", "credit": "50.00"}]

    closed = client.post(f"{API}/accounts/{account}/close",
                         json={"settlement": "refund", "reason": "lease ended"}, headers=key())
    assert closed.status_code == 201, closed.text
    assert closed.json()["amount"] == "170.00"
    assert client.get(f"{API}/accounts/{account}").json()["status"] == "closed"
    assert client.get(f"{API}/accounts/{account}").json()["balance"] == "0.00"

    tb = trial_balance(client)
    rows = {r["ledger_account"]: r for r in tb["accounts"]}
    assert rows["clearing:cash"]["balance"] == "0.00"  # 200 in, 30 + 170 out
    assert rows["clearing:bank"]["balance"] == "0.00"  # 50 in, reversed
    assert rows[f"wallet:{account}:electricity"]["balance"] == "0.00"

    events = client.get(f"{API}/accounts/{account}/events").json()["events"]
    assert [e["type"] for e in events] == [
        "Account.Opened", "Account.TopUpCredited", "Account.TopUpCredited",
        "Account.TransactionReversed", "Account.RefundPaid", "Account.BalanceSettled",
        "Account.Closed"]
    assert [e["version"] for e in events] == list(range(1, 8))


def test_balance_as_of_any_past_instant_and_as_known_then(client, clock):
    account = open_account(client)
    t0 = clock.now
    top_up(client, account, "10.00")
    t1 = clock.advance(hours=1)
    top_up(client, account, "5.00")
    clock.advance(hours=1)
    # A bank transfer that arrived at t0 + 30 min, recorded only now.
    backdated = (t0.replace(minute=30)).isoformat()
    top_up(client, account, "1.00", "bank", effective_at=backdated)

    def balance(**params):
        response = client.get(f"{API}/accounts/{account}/balance", params=params)
        assert response.status_code == 200, response.text
        return response.json()["balance"]

    assert balance(as_of=t0.isoformat()) == "10.00"
    assert balance(as_of=t1.isoformat()) == "16.00"
    assert balance(as_of=t1.isoformat(), known_at=t1.isoformat()) == "15.00"
    assert balance() == "16.00"
    assert balance(as_of=t0.replace(year=2020).isoformat()) == "0.00"

    past = client.get(f"{API}/ledger/trial-balance", params={"as_of": t0.isoformat()}).json()
    assert past["total_debit"] == past["total_credit"] == "10.00"


def test_statement_pages_and_filters(client, clock):
    account = open_account(client)
    times = []
    for n in range(7):
        times.append(clock.advance(minutes=10))
        top_up(client, account, f"{n + 1}.00")
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/accounts/{account}/statement", params=params).json()
        seen += [e["amount"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"{n}.00" for n in range(1, 8)]
    window = client.get(f"{API}/accounts/{account}/statement",
                        params={"from": times[2].isoformat(), "to": times[4].isoformat()}).json()
    assert [e["amount"] for e in window["items"]] == ["3.00", "4.00"]


def test_same_key_same_body_replays_and_other_body_conflicts(client):
    account = open_account(client)
    headers = {"Idempotency-Key": "till-7-receipt-0042"}
    body = {"amount": "12.34", "channel": "cash"}
    first = client.post(f"{API}/accounts/{account}/top-ups", json=body, headers=headers)
    again = client.post(f"{API}/accounts/{account}/top-ups", json={"amount": 12.34,
                                                                    "channel": "cash"},
                        headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post(f"{API}/accounts/{account}/top-ups",
                        json={"amount": "99.00", "channel": "cash"}, headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"{API}/accounts/{account}").json()["balance"] == "12.34"


def test_a_retried_refund_replays_instead_of_failing_on_the_lower_balance(client):
    account = open_account(client)
    top_up(client, account, "10.00")
    headers = {"Idempotency-Key": "refund-1"}
    body = {"amount": "10.00", "channel": "cash", "reason": "left"}
    first = client.post(f"{API}/accounts/{account}/refunds", json=body, headers=headers)
    again = client.post(f"{API}/accounts/{account}/refunds", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


def test_open_account_is_idempotent_too(client):
    headers = {"Idempotency-Key": "open-shop-9"}
    first = client.post(f"{API}/accounts", json={"name": "Shop 9"}, headers=headers)
    again = client.post(f"{API}/accounts", json={"name": "Shop 9"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert client.post(f"{API}/accounts", json={"name": "Shop 10"},
                       headers=headers).status_code == 409
    assert len(client.get(f"{API}/accounts").json()["items"]) == 1


def test_gifts_are_kept_apart_from_paid_money(client):
    account = open_account(client)
    top_up(client, account, "20.00")
    gift = client.post(f"{API}/accounts/{account}/gifts",
                       json={"amount": "5.00", "reason": "opening promotion"}, headers=key())
    assert gift.status_code == 201 and gift.json()["balance_after"] == "25.00"
    rows = {r["ledger_account"]: r for r in trial_balance(client)["accounts"]}
    assert rows["expense:subsidy"]["debit"] == "5.00"
    assert rows["clearing:cash"]["debit"] == "20.00"
    kinds = [e["kind"] for e in
             client.get(f"{API}/accounts/{account}/statement").json()["items"]]
    assert kinds == ["top_up", "gift"]


def test_adjustments_need_a_reason_and_may_be_negative(client):
    account = open_account(client)
    top_up(client, account, "20.00")
    no_reason = client.post(f"{API}/accounts/{account}/adjustments", json={"amount": "-1.00"},
                            headers=key())
    assert no_reason.status_code == 422
    ok = client.post(f"{API}/accounts/{account}/adjustments",
                     json={"amount": "-1.50", "reason": "meter read twice"}, headers=key())
    assert ok.status_code == 201 and ok.json()["balance_after"] == "18.50"


def test_reversal_rules(client):
    account = open_account(client)
    sale = top_up(client, account, "10.00")
    client.post(f"{API}/accounts/{account}/refunds",
                json={"amount": "8.00", "channel": "cash"}, headers=key())
    # Reversing the sale would leave -8.00: refused unless forced.
    refused = client.post(f"{API}/transactions/{sale['id']}/reversal",
                          json={"reason": "duplicate"}, headers=key())
    assert refused.status_code == 409
    forced = client.post(f"{API}/transactions/{sale['id']}/reversal",
                         json={"reason": "duplicate", "force": True}, headers=key())
    assert forced.status_code == 201 and forced.json()["balance_after"] == "-8.00"
    second = client.post(f"{API}/transactions/{sale['id']}/reversal",
                         json={"reason": "again", "force": True}, headers=key())
    assert second.status_code == 409 and second.json()["type"] == "/problems/already-reversed"
    of_reversal = client.post(f"{API}/transactions/{forced.json()['id']}/reversal",
                              json={"reason": "undo", "force": True}, headers=key())
    assert of_reversal.status_code == 409
    assert of_reversal.json()["type"] == "/problems/not-reversible"


BAD_TOP_UPS = [
    ({"amount": "0", "channel": "cash"}, 422),
    ({"amount": "-5.00", "channel": "cash"}, 422),
    ({"amount": "1.234", "channel": "cash"}, 422),
    ({"amount": 1.234, "channel": "cash"}, 422),
    ({"amount": "1e3", "channel": "cash"}, 422),
    ({"amount": True, "channel": "cash"}, 422),
    ({"amount": None, "channel": "cash"}, 422),
    ({"amount": "100000.01", "channel": "cash"}, 422),
    ({"amount": "10.00", "channel": "cheque"}, 422),
    ({"amount": "10.00", "channel": "cash", "wallet": "gas"}, 422),
    ({"amount": "10.00"}, 422),
    ({"amount": "10.00", "channel": "cash", "surprise": 1}, 422),
    ({"amount": "10.00", "channel": "cash", "effective_at": "2026-01-01T00:00:00"}, 422),
]


@pytest.mark.parametrize("body, status", BAD_TOP_UPS)
def test_bad_top_ups_are_problems_that_change_nothing(client, platform, body, status):
    account = open_account(client)
    top_up(client, account, "1.00")
    before = read_models(platform)
    response = client.post(f"{API}/accounts/{account}/top-ups", json=body, headers=key())
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    platform.catch_up()
    assert read_models(platform) == before


def test_other_bad_requests_are_problems_that_change_nothing(client, platform):
    account = open_account(client)
    sale = top_up(client, account, "10.00")
    before = read_models(platform)
    cases = [
        ("post", f"/accounts/{uuid.uuid4()}/top-ups", {"amount": "1", "channel": "cash"}, 404),
        ("post", "/accounts/not-an-id/top-ups", {"amount": "1", "channel": "cash"}, 404),
        ("post", f"/accounts/{account}/refunds", {"amount": "10.01", "channel": "cash"}, 409),
        ("post", f"/transactions/{uuid.uuid4()}/reversal", {"reason": "x"}, 404),
        ("post", f"/accounts/{account}/close", {"settlement": "give-away"}, 422),
        ("post", f"/accounts/{account}/gifts", {"amount": "1.00"}, 422),
        ("get", f"/accounts/{uuid.uuid4()}", None, 404),
        ("get", f"/transactions/{uuid.uuid4()}", None, 404),
        ("get", f"/accounts/{account}/statement?cursor=%%%", None, 400),
        ("get", f"/accounts/{account}/statement?limit=100000", None, 422),
        ("get", f"/accounts/{account}/balance?as_of=2026-01-01T00:00:00", None, 422),
    ]
    for method, path, body, status in cases:
        kwargs = {"json": body, "headers": key()} if method == "post" else {}
        response = getattr(client, method)(f"{API}{path}", **kwargs)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), path
    malformed = client.post(f"{API}/accounts/{account}/top-ups", content=b'{"amount": ',
                            headers={**key(), "content-type": "application/json"})
    assert malformed.status_code == 400
    missing_key = client.post(f"{API}/accounts/{account}/top-ups",
                              json={"amount": "1.00", "channel": "cash"})
    assert missing_key.status_code == 400
    huge = client.post(f"{API}/accounts", content=b"{" + b" " * 70_000 + b"}",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert client.get(f"{API}/transactions/{sale['id']}").status_code == 200
    platform.catch_up()
    assert read_models(platform) == before


def test_a_closed_account_accepts_no_new_money(client, platform):
    account = open_account(client)
    sale = top_up(client, account, "3.00")
    assert client.post(f"{API}/accounts/{account}/close", json={"settlement": "forfeit"},
                       headers=key()).status_code == 201
    before = read_models(platform)
    for path, body in [("top-ups", {"amount": "1.00", "channel": "cash"}),
                       ("gifts", {"amount": "1.00", "reason": "x"}),
                       ("adjustments", {"amount": "1.00", "reason": "x"}),
                       ("close", {"settlement": "refund"})]:
        response = client.post(f"{API}/accounts/{account}/{path}", json=body, headers=key())
        assert response.status_code == 409, (path, response.text)
    response = client.post(f"{API}/transactions/{sale['id']}/reversal", json={"reason": "x"},
                           headers=key())
    assert response.status_code == 409
    platform.catch_up()
    assert read_models(platform) == before
    rows = {r["ledger_account"]: r for r in trial_balance(client)["accounts"]}
    assert rows["revenue:forfeited"]["credit"] == "3.00"


def test_openapi_document_lists_the_core_paths(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/api/v1/accounts", "/api/v1/accounts/{account_id}",
                 "/api/v1/accounts/{account_id}/top-ups", "/api/v1/accounts/{account_id}/refunds",
                 "/api/v1/transactions/{transaction_id}/reversal",
                 "/api/v1/accounts/{account_id}/close", "/api/v1/accounts/{account_id}/balance",
                 "/api/v1/accounts/{account_id}/statement", "/api/v1/accounts/{account_id}/events",
                 "/api/v1/transactions/{transaction_id}", "/api/v1/ledger/trial-balance"]:
        assert path in paths
