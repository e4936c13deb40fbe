"""Meters that must not get stuck, pools that must not price unknown energy at zero, and
reading fields named by their unit; over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from tests.conftest import read_models

API = "/api/v1"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai


def ok(response, status=201):
    assert response.status_code == status, response.text
    return response.json()


def read(client, *items, unit="total_kwh"):
    body = {"readings": [{"meter_no": m, "read_at": t.isoformat(), unit: v}
                         for m, t, v in items]}
    return ok(client.post(f"{API}/readings", json=body), 200)["results"]


def balance(client, account_id):
    return client.get(f"{API}/accounts/{account_id}").json()["balance"]


def tariff(client, price="1.0000", utility="electricity"):
    return ok(client.post(f"{API}/tariffs", json={
        "name": f"Flat {price}", "kind": "flat", "price": price, "utility": utility,
        "effective_from": "2026-01-01T00:00:00+08:00"}))["id"]


def prepaid_meter(client, meter_no="000000000301", **extra):
    account = ok(client.post(f"{API}/accounts", json={"name": "Noodle Bar"}))["id"]
    ok(client.post(f"{API}/accounts/{account}/top-ups",
                   json={"amount": "100.00", "channel": "cash"},
                   headers={"Idempotency-Key": str(uuid.uuid4())}))
    site = ok(client.post(f"{API}/sites", json={"name": "Mall"}))["id"]
    meter = ok(client.post(f"{API}/meters", json={
        "meter_no": meter_no, "kind": "electricity", "mode": "prepaid", "address": 1,
        "site_id": site, "account_id": account, **extra}))
    return account, meter


def billing(client, meter_id):
    return [(r["read_at"], r["billing"]) for r in
            ok(client.get(f"{API}/meters/{meter_id}/readings"), 200)["items"]]


def test_a_tariff_given_at_registration_applies_from_the_first_reading(client, clock):
    clock.now = T0 + timedelta(hours=5)
    account, meter = prepaid_meter(client, tariff_id=tariff(client))
    results = read(client, ("000000000301", T0, "100.00"),
                   ("000000000301", T0 + timedelta(hours=1), "102.00"),
                   ("000000000301", T0 + timedelta(hours=2), "103.50"))
    assert [(r["billing"], r["amount"]) for r in results] == [
        ("started", "0.00"), ("charged", "2.00"), ("charged", "1.50")]
    assert balance(client, account) == "96.50"
    shown = ok(client.get(f"{API}/meters/{meter['id']}"), 200)["tariffs"]
    assert shown[0]["effective_from"] is None and shown[0]["from_first_reading"] is True


def test_held_readings_are_billed_once_when_a_covering_tariff_is_assigned(client, clock,
                                                                           platform):
    clock.now = T0 + timedelta(hours=5)
    price = tariff(client)
    account, meter = prepaid_meter(client, tariff_id=price,
                                   tariff_from=(T0 + timedelta(hours=4)).isoformat())
    results = read(client, ("000000000301", T0, "100.00"),
                   ("000000000301", T0 + timedelta(hours=1), "101.00"),
                   ("000000000301", T0 + timedelta(hours=2), "102.50"))
    assert [r["billing"] for r in results] == ["started", "held", "held"]
    assert "no tariff in effect" in results[1]["reason"]
    assert balance(client, account) == "100.00"
    # The same held reading again is not a new hold.
    again = read(client, ("000000000301", T0 + timedelta(hours=2), "102.50"))
    assert again[0]["status"] == "duplicate"

    # Backdating to the first (billed) reading bills what was held, in order, each once.
    ok(client.put(f"{API}/meters/{meter['id']}/tariff", json={
        "tariff_id": price, "effective_from": T0.isoformat()}), 200)
    assert balance(client, account) == "97.50"
    assert [b for _, b in billing(client, meter["id"])] == ["started", "charged", "charged"]
    statement = client.get(f"{API}/accounts/{account}/statement").json()["items"]
    assert [(e["kind"], e["amount"]) for e in statement][-2:] == [
        ("consumption", "-1.00"), ("consumption", "-1.50")]
    # Later readings are billed as usual, and assigning again bills nothing twice.
    results = read(client, ("000000000301", T0 + timedelta(hours=3), "103.00"),
                   ("000000000301", T0 + timedelta(hours=1), "101.00"))
    assert [(r["billing"], r["amount"]) for r in results] == [
        ("charged", "0.50"), ("late", "0.00")]
    ok(client.put(f"{API}/meters/{meter['id']}/tariff", json={
        "tariff_id": price, "effective_from": (T0 + timedelta(hours=3)).isoformat()}), 200)
    assert balance(client, account) == "97.00"
    # Backdating before the last billed reading is refused and changes nothing.
    before = read_models(platform)
    refused = client.put(f"{API}/meters/{meter['id']}/tariff", json={
        "tariff_id": price, "effective_from": (T0 + timedelta(hours=2)).isoformat()})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "last billed reading" in refused.json()["detail"]
    assert read_models(platform) == before


def test_a_stuck_meter_is_unstuck_by_backdating_its_tariff(client, clock):
    # The registration instant lies after the first reading (recorded by a gateway
    # earlier); assigning later than that cannot reach back, backdating can.
    clock.now = T0 + timedelta(hours=7)
    price = tariff(client, "0.8000")
    account, meter = prepaid_meter(client)
    read(client, ("000000000301", T0, "10.00"))
    ok(client.put(f"{API}/meters/{meter['id']}/tariff", json={
        "tariff_id": price, "effective_from": (T0 + timedelta(hours=5)).isoformat()}), 200)
    held = read(client, ("000000000301", T0 + timedelta(hours=6), "11.00"))
    assert held[0]["billing"] == "held"
    ok(client.put(f"{API}/meters/{meter['id']}/tariff", json={
        "tariff_id": price, "effective_from": T0.isoformat()}), 200)
    assert balance(client, account) == "99.20"
    assert billing(client, meter["id"])[-1][1] == "charged"
    shown = ok(client.get(f"{API}/meters/{meter['id']}"), 200)
    assert [t["effective_from"] for t in shown["tariffs"]] == [
        "2026-03-02T00:00:00+00:00", "2026-03-02T05:00:00+00:00"]


def pool_setup(client, tariff_from):
    site = ok(client.post(f"{API}/sites", json={"name": "Mall"}))["id"]
    shops = [ok(client.post(f"{API}/accounts", json={"name": f"Shop {n}"}))["id"]
             for n in range(2)]
    price = tariff(client)
    meters = [ok(client.post(f"{API}/meters", json={
        "meter_no": f"00000000090{n}", "kind": "electricity", "mode": "monitoring",
        "address": n + 1, "site_id": site, "tariff_id": price,
        "tariff_from": tariff_from}))["id"] for n in range(2)]
    return shops, meters, price


def test_a_pool_with_unpriced_energy_is_refused_until_the_tariff_is_fixed(client, clock,
                                                                          platform):
    clock.now = T0 + timedelta(days=40)
    shops, meters, price = pool_setup(client, "2026-03-10T00:00:00+08:00")
    read(client, ("000000000900", T0, "0"), ("000000000900", T0 + timedelta(days=1), "10.00"),
         ("000000000901", T0, "0"), ("000000000901", T0 + timedelta(days=2), "2.50"))
    pool = ok(client.post(f"{API}/common-area-pools", json={
        "name": "Lifts", "site_id": ok(client.get(f"{API}/meters/{meters[0]}"), 200)["site_id"],
        "meter_ids": meters, "method": "ratio", "period": "month",
        "shares": [{"account_id": s, "weight": 1} for s in shops]}))
    before = read_models(platform)
    refused = client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                          json={"period": "2026-03"})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["unpriced"] == [
        {"meter_id": meters[0], "meter_no": "000000000900", "unpriced_kwh": "10.00"},
        {"meter_id": meters[1], "meter_no": "000000000901", "unpriced_kwh": "2.50"}]
    assert "000000000900" in problem["detail"] and "10.00 kWh" in problem["detail"]
    assert read_models(platform) == before
    assert [client.get(f"{API}/accounts/{s}").json()["wallets"]["electricity"]
            for s in shops] == ["0.00", "0.00"]
    # Another month without unpriced energy is shared as usual.
    assert ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                          json={"period": "2026-02"}))["total"] == "0.00"
    # A monitoring meter's tariff may reach back over energy measured without a price
    # (not over priced energy); that energy is then priced and the month allocated.
    later = read(client, ("000000000900", T0 + timedelta(days=8), "10.00"),
                 ("000000000900", T0 + timedelta(days=9), "15.00"))
    assert [r["billing"] for r in later] == ["charged", "charged"]  # measured
    refused = client.put(f"{API}/meters/{meters[0]}/tariff", json={
        "tariff_id": price, "effective_from": "2026-03-11T00:00:00+08:00"})
    assert refused.status_code == 422, refused.text  # would reprice priced energy
    for meter in meters:
        ok(client.put(f"{API}/meters/{meter}/tariff", json={
            "tariff_id": price, "effective_from": "2026-03-09T00:00:00+08:00"}), 200)
    still = client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                        json={"period": "2026-03"})
    assert still.status_code == 409 and [u["unpriced_kwh"] for u in still.json()[
        "unpriced"]] == ["10.00", "2.50"]
    for meter in meters:
        ok(client.put(f"{API}/meters/{meter}/tariff", json={
            "tariff_id": price, "effective_from": "2026-03-01T00:00:00+08:00"}), 200)
    allocation = ok(client.post(f"{API}/common-area-pools/{pool['id']}/allocations",
                                json={"period": "2026-03"}))
    assert allocation["energy_kwh"] == "17.50" and allocation["total"] == "17.50"
    assert [s["amount"] for s in allocation["shares"]] == ["8.75", "8.75"]


def test_reading_totals_are_named_by_their_unit(client, clock):
    clock.now = T0 + timedelta(hours=5)
    account, meter = prepaid_meter(client, tariff_id=tariff(client))
    answers = read(client, ("000000000301", T0, "100.00"),
                   ("000000000301", T0 + timedelta(hours=1), "101.25"))
    assert [a["total_kwh"] for a in answers] == ["100.00", "101.25"]
    items = ok(client.get(f"{API}/meters/{meter['id']}/readings"), 200)["items"]
    assert [(r["total"], r["total_kwh"]) for r in items] == [
        ("100.00", "100.00"), ("101.25", "101.25")]
    assert all("total_m3" not in r for r in items)
    last = ok(client.get(f"{API}/meters/{meter['id']}"), 200)["last_billed_reading"]
    assert last["total"] == last["total_kwh"] == "101.25"

    site = ok(client.get(f"{API}/meters/{meter['id']}"), 200)["site_id"]
    water = ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000302", "kind": "water", "mode": "monitoring", "address": 2,
        "site_id": site, "tariff_id": tariff(client, "4.5000", "water")}))
    answers = read(client, ("000000000302", T0, "12.345"), unit="total_m3")
    assert answers[0]["total_m3"] == "12.345" and "total_kwh" not in answers[0]
    items = ok(client.get(f"{API}/meters/{water['id']}/readings"), 200)["items"]
    assert (items[0]["total"], items[0]["total_m3"]) == ("12.345", "12.345")
    assert "total_kwh" not in items[0]


def test_an_unknown_meter_is_reported_by_the_number_sent(client, clock):
    clock.now = T0 + timedelta(hours=5)
    results = read(client, ("999999999999", T0, "1.00"))
    assert results[0]["status"] == "rejected"
    assert results[0]["reason"] == "meter 999999999999 does not exist"
