"""Common-area pools and property fees over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta, timezone

from pypdf import PdfReader

API = "/api/v1"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)


def ok(response, status=201):
    assert response.status_code == status, response.text
    return response.json()


def key():
    return {"Idempotency-Key": str(uuid.uuid4())}


def setup_site(client):
    site = ok(client.post(f"{API}/sites", json={"name": "Mall"}))
    tariff = ok(client.post(f"{API}/tariffs", json={
        "name": "Flat", "kind": "flat", "price": "1.0000",
        "effective_from": "2026-01-01T00:00:00+08:00"}))
    shops = [ok(client.post(f"{API}/accounts", json={"name": f"Shop {n}",
                                                      "area_m2": area}))["id"]
             for n, area in enumerate(["50", "100", "150"])]
    meters = []
    for n in range(2):
        meters.append(ok(client.post(f"{API}/meters", json={
            "meter_no": f"00000000090{n}", "kind": "electricity", "mode": "monitoring",
            "address": n + 1, "site_id": site["id"], "tariff_id": tariff["id"],
            "tariff_from": "2026-01-01T00:00:00+08:00"}))["id"])
    return site, shops, meters


def read(client, readings):
    body = {"readings": [{"meter_no": m, "read_at": t.isoformat(), "total_kwh": v}
                         for m, t, v in readings]}
    ok(client.post(f"{API}/readings", json=body), 200)


def balances(client, shops, wallet="electricity"):
    return [client.get(f"{API}/accounts/{s}").json()["wallets"][wallet] for s in shops]


def test_a_pool_month_is_shared_to_the_fen_once(client, clock):
    clock.now = T0 + timedelta(days=40)
    site, shops, meters = setup_site(client)
    read(client, [("000000000900", T0, "0"), ("000000000901", T0, "0"),
                  ("000000000900", T0 + timedelta(days=3), "10.01"),
                  ("000000000901", T0 + timedelta(days=5), "0.99")])
    pool = ok(client.post(f"{API}/common-area-pools", json={
        "name": "Lifts and corridors", "site_id": site["id"], "meter_ids": meters,
        "method": "ratio", "period": "month",
        "shares": [{"account_id": s, "weight": w} for s, w in zip(shops, [1, 1, 1])]}))
    allocation = ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                                json={"period": "2026-03"}))
    assert allocation["total"] == "11.00" and allocation["energy_kwh"] == "11.00"
    assert [s["amount"] for s in allocation["shares"]] == ["3.67", "3.67", "3.66"]
    again = ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                           json={"period": "2026-03"}))
    assert again == allocation
    assert balances(client, shops) == ["-3.67", "-3.67", "-3.66"]
    tb = {r["ledger_account"]: r for r in
          client.get(f"{API}/ledger/trial-balance").json()["accounts"]}
    assert tb["revenue:common_area"]["credit"] == "11.00"
    statement = client.get(f"{API}/accounts/{shops[0]}/statement").json()["items"]
    assert [(e["kind"], e["amount"]) for e in statement] == [("common_area", "-3.67")]


def test_sharing_by_floor_area_and_bad_pools(client, clock):
    clock.now = T0 + timedelta(days=40)
    site, shops, meters = setup_site(client)
    read(client, [("000000000900", T0, "0"), ("000000000900", T0 + timedelta(days=1), "6.00")])
    pool = ok(client.post(f"{API}/common-area-pools", json={
        "name": "Air handling", "site_id": site["id"], "meter_ids": [meters[0]],
        "method": "area", "period": "day", "shares": [{"account_id": s} for s in shops]}))
    allocation = ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                                json={"period": "2026-03-03"}))  # the day it ends
    # 50 : 100 : 150 m² of 6.00 yuan
    assert [s["amount"] for s in allocation["shares"]] == ["1.00", "2.00", "3.00"]
    wrong_period = client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                               json={"period": "2026-03"})
    assert wrong_period.status_code == 422
    billed = ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000999", "kind": "electricity", "mode": "prepaid", "address": 9,
        "site_id": site["id"]}))
    refused = client.post(f"{API}/common-area-pools", json={
        "name": "x", "site_id": site["id"], "meter_ids": [billed["id"]], "method": "ratio",
        "shares": [{"account_id": shops[0], "weight": 1}]})
    assert refused.status_code == 422  # a tenant's own meter is not a common area


def test_property_fees_once_a_month_and_arrears_cut_the_power(client, platform, clock):
    clock.now = T0 + timedelta(days=40)
    site, shops, _ = setup_site(client)
    shop = shops[0]
    ok(client.post(f"{API}/accounts/{shop}/top-ups",
                   json={"amount": "150.00", "channel": "cash", "wallet": "property_fee"},
                   headers=key()))
    ok(client.post(f"{API}/accounts/{shop}/top-ups",
                   json={"amount": "500.00", "channel": "cash"}, headers=key()))
    meter = ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000777", "kind": "electricity", "mode": "prepaid", "address": 7,
        "site_id": site["id"], "account_id": shop}))
    ok(client.post(f"{API}/property-fees/schedules", json={
        "account_id": shop, "monthly_amount": "100.00", "day_of_month": 5}))
    ok(client.post(f"{API}/property-fees/schedules", json={
        "account_id": shops[1], "per_m2": "0.35", "day_of_month": 5}))
    march = ok(client.post(f"{API}/property-fees/runs", json={"month": "2026-03"}))
    assert [(r["deducted"], r["arrears"]) for r in march["results"]] == [
        ("100.00", False), ("35.00", True)]
    again = ok(client.post(f"{API}/property-fees/runs", json={"month": "2026-03"}))
    assert [r["first_run"] for r in again["results"]] == [False, False]
    assert balances(client, shops[:2], "property_fee") == ["50.00", "-35.00"]
    april = ok(client.post(f"{API}/property-fees/runs", json={"month": "2026-04"}))
    assert april["results"][0]["arrears"] is True
    platform.enforce()
    state = client.get(f"{API}/meters/{meter['id']}/state").json()
    assert state["relay_wanted"] == "open" and state["relay_reason"] == "arrears"
    # Paying the fee clears the arrears and the power comes back.
    ok(client.post(f"{API}/accounts/{shop}/top-ups",
                   json={"amount": "60.00", "channel": "wechat", "wallet": "property_fee"},
                   headers=key()))
    platform.enforce()
    assert client.get(f"{API}/meters/{meter['id']}/state").json()["relay_wanted"] == "closed"
    bad = client.post(f"{API}/property-fees/schedules", json={
        "account_id": shop, "monthly_amount": "1.00", "per_m2": "1.00"})
    assert bad.status_code == 422


def test_account_period_report_balances_and_sales_keep_gifts_apart(client, clock):
    clock.now = datetime(2026, 3, 10, tzinfo=timezone.utc)
    site, shops, meters = setup_site(client)
    shop = shops[0]
    ok(client.post(f"{API}/accounts/{shop}/top-ups", json={
        "amount": "80.00", "channel": "cash",
        "effective_at": "2026-02-20T10:00:00+08:00"}, headers=key()))
    ok(client.post(f"{API}/accounts/{shop}/top-ups",
                   json={"amount": "100.00", "channel": "wechat"}, headers=key()))
    ok(client.post(f"{API}/accounts/{shop}/gifts",
                   json={"amount": "5.00", "reason": "opening week"}, headers=key()))
    ok(client.post(f"{API}/accounts/{shop}/refunds",
                   json={"amount": "30.00", "channel": "cash"}, headers=key()))
    march = client.get(f"{API}/reports/account-periods", params={"month": "2026-03"}).json()
    row = next(r for r in march["items"] if r["account_id"] == shop
               and r["wallet"] == "electricity")
    assert (row["opening"], row["top_up"], row["gift"], row["refund"], row["closing"]) == (
        "80.00", "100.00", "5.00", "-30.00", "155.00")
    for r in march["items"]:  # opening + movements = closing, on every row
        from decimal import Decimal

        movements = sum(Decimal(r[k]) for k in ("top_up", "gift", "consumption",
                                                "common_area", "property_fee", "refund",
                                                "reversal", "adjustment", "settlement"))
        assert Decimal(r["opening"]) + movements == Decimal(r["closing"])
    sales = client.get(f"{API}/reports/sales", params={"period": "month"}).json()["items"]
    by_key = {(s["period"], s["channel"]): s for s in sales}
    assert by_key[("2026-03", "wechat")]["top_ups"] == "100.00"
    assert by_key[("2026-03", "cash")]["refunds"] == "30.00"
    gifts = [s for s in sales if s["gifts"] != "0.00"]
    assert [(g["gifts"], g["net_paid"]) for g in gifts] == [("5.00", "0.00")]
    as_then = client.get(f"{API}/reports/account-periods", params={
        "month": "2026-03", "known_at": "2026-01-01T00:00:00+08:00"}).json()["items"]
    assert as_then == []  # nothing had been recorded yet
    csv_text = client.get(f"{API}/reports/sales", params={"format": "csv"}).text
    assert csv_text.splitlines()[0] == \
        "period,channel,operator,building,top_ups,refunds,reversals,gifts,net_paid"


def test_a_closed_month_keeps_its_report_and_alarm_and_offline_reports(client, clock):
    clock.now = datetime(2026, 3, 20, tzinfo=timezone.utc)
    site, shops, _ = setup_site(client)
    ok(client.post(f"{API}/accounts/{shops[0]}/top-ups",
                   json={"amount": "10.00", "channel": "cash"}, headers=key()))
    early = client.post(f"{API}/periods/2026-03/close")
    assert early.status_code == 422  # not over yet
    clock.now = datetime(2026, 4, 2, tzinfo=timezone.utc)
    closed = ok(client.post(f"{API}/periods/2026-03/close"))
    assert ok(client.post(f"{API}/periods/2026-03/close")) == closed
    before = client.get(f"{API}/reports/account-periods", params={"month": "2026-03"}).json()
    # A late correction dated in March is recorded after the close...
    clock.advance(minutes=5)
    ok(client.post(f"{API}/accounts/{shops[0]}/top-ups", json={
        "amount": "1.00", "channel": "bank", "effective_at": "2026-03-31T10:00:00+08:00"},
        headers=key()))
    after = client.get(f"{API}/reports/account-periods", params={"month": "2026-03"}).json()
    assert after["items"] == before["items"] and after["closed"] is True
    # ...and shows in the open month's opening balance.
    april = client.get(f"{API}/reports/account-periods", params={"month": "2026-04"}).json()
    row = next(r for r in april["items"] if r["account_id"] == shops[0])
    assert row["opening"] == "11.00"
    assert client.get(f"{API}/reports/alarms").status_code == 200
    offline = client.get(f"{API}/reports/offline").json()
    assert offline["items"] == []


def test_receipts_in_html_and_pdf(client, tmp_path, platform):
    shop = ok(client.post(f"{API}/accounts", json={"name": "Tea <House>"}))["id"]
    sale = ok(client.post(f"{API}/accounts/{shop}/top-ups",
                          json={"amount": "88.80", "channel": "cash"}, headers=key()))
    html = client.get(f"{API}/transactions/{sale['id']}/receipt")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.text.count("金额 Amount (元 yuan)</td><td>88.80") == 3  # three copies
    assert "Tea &lt;House&gt;" in html.text and "<House>" not in html.text
    pdf = client.get(f"{API}/transactions/{sale['id']}/receipt", params={"format": "pdf"})
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert text.count("金额 Amount (元 yuan)\n88.80") == 3  # tests/integration/test_receipts.py
    custom = tmp_path / "receipt.html"
    custom.write_text("<p>Mall office: $account_name paid $amount</p>", encoding="utf-8")
    platform.settings.receipt_template = str(custom)
    mine = client.get(f"{API}/transactions/{sale['id']}/receipt").text
    assert mine == "<p>Mall office: Tea &lt;House&gt; paid 88.80</p>"
    assert client.get(f"{API}/transactions/{uuid.uuid4()}/receipt").status_code == 404


def test_a_pool_rule_has_versions_and_opening_receipts_print(client, clock):
    clock.now = T0 + timedelta(days=40)
    site, shops, meters = setup_site(client)
    read(client, [("000000000900", T0, "0"), ("000000000900", T0 + timedelta(days=2), "3.00")])
    pool = ok(client.post(f"{API}/common-area-pools", json={
        "name": "Lobby", "site_id": site["id"], "meter_ids": [meters[0]], "method": "ratio",
        "shares": [{"account_id": s, "weight": 1} for s in shops], "period": "month"}))
    changed = client.put(f"{API}/common-area-pools/{pool['id']}/rule", json={
        "method": "ratio", "shares": [{"account_id": shops[0], "weight": 1}]})
    assert changed.status_code == 200 and changed.json()["rule"]["version"] == 2
    allocation = ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                                json={"period": "2026-03"}))
    assert allocation["rule_version"] == 2
    assert [s["amount"] for s in allocation["shares"]] == ["3.00"]
    receipt = client.get(f"{API}/accounts/{shops[0]}/receipt")
    assert receipt.status_code == 200 and receipt.text.count("开户凭证 Account opening") >= 3
