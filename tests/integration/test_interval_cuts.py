"""Announced prices, earlier tariffs and tariff switches priced over the API, to the fen."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

API = "/api/v1"
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 10, 3, 0, tzinfo=CST)
BAND_PRICES = {"sharp": "1.5000", "peak": "1.0000", "flat": "0.6000", "valley": "0.3000"}
SCHEDULE = [{"start": "00:00", "band": "valley"}, {"start": "08:00", "band": "peak"},
            {"start": "11:00", "band": "sharp"}, {"start": "13:00", "band": "flat"},
            {"start": "22:00", "band": "valley"}]
# Dearer, and with other segment starts (07:30, 09:30, ...).
OTHER_SCHEDULE = {
    "kind": "tou",
    "band_prices": {"sharp": "1.6000", "peak": "1.1000", "flat": "0.6500", "valley": "0.3000"},
    "schedule": [{"start": "00:00", "band": "valley"}, {"start": "07:30", "band": "flat"},
                 {"start": "09:30", "band": "peak"}, {"start": "11:30", "band": "sharp"},
                 {"start": "13:00", "band": "flat"}, {"start": "21:30", "band": "valley"}]}


def ok(response, status=201):
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def shop(client, clock):
    clock.now = datetime(2026, 3, 12, tzinfo=timezone.utc)
    account = ok(client.post(f"{API}/accounts", json={"name": "Noodle Bar"}))
    ok(client.post(f"{API}/accounts/{account['id']}/top-ups",
                   json={"amount": "100.00", "channel": "cash"},
                   headers={"Idempotency-Key": str(uuid.uuid4())}))
    return account


def tariff(client, name, **spec):
    return ok(client.post(f"{API}/tariffs", json={
        "name": name, "effective_from": "2026-01-01T00:00:00+08:00", **spec}))["id"]


def meter(client, account, tariff_id):
    return ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000301", "kind": "electricity", "mode": "prepaid",
        "address": 1, "account_id": account["id"], "tariff_id": tariff_id,
        "tariff_from": "2026-01-01T00:00:00+08:00"}))["id"]


def read(client, *items):
    body = {"readings": [{"meter_no": "000000000301", "read_at": at.isoformat(),
                          "total_kwh": total, **bands} for at, total, bands in items]}
    return ok(client.post(f"{API}/readings", json=body), 200)["results"]


def test_a_price_announced_for_later_does_not_reprice_todays_energy(client, shop):
    tou = tariff(client, "TOU", kind="tou", band_prices=BAND_PRICES, schedule=SCHEDULE)
    ok(client.post(f"{API}/tariffs/{tou}/versions",
                   json={**OTHER_SCHEDULE, "effective_from": "2026-04-01T00:00:00+08:00"}))
    meter(client, shop, tou)
    results = read(client, (T0, "0.00", {}), (T0 + timedelta(hours=5, minutes=35), "18.64", {}))
    # 03:00 to 08:35: 16.693 kWh valley at 0.30 and 1.947 kWh peak at 1.00 is 6.9549 yuan.
    assert results[1]["amount"] == "6.95"


def test_the_schedule_of_an_earlier_tariff_does_not_cut_todays_readings(client, shop):
    earlier = tariff(client, "TOU 2025", **OTHER_SCHEDULE)
    tou = tariff(client, "TOU", kind="tou", band_prices=BAND_PRICES, schedule=SCHEDULE)
    meter_id = meter(client, shop, earlier)
    ok(client.put(f"{API}/meters/{meter_id}/tariff",
                  json={"tariff_id": tou, "effective_from": "2026-03-01T00:00:00+08:00"}), 200)
    results = read(client, (T0, "0.00", {}), (T0 + timedelta(hours=5, minutes=35), "18.64", {}))
    assert results[1]["amount"] == "6.95"


def test_a_switch_to_time_of_use_inside_an_interval_charges_the_measured_energy(client, shop):
    flat = tariff(client, "Flat", kind="flat", price="0.6000")
    tou = tariff(client, "TOU", kind="tou", band_prices=BAND_PRICES, schedule=SCHEDULE)
    meter_id = meter(client, shop, flat)
    start = datetime(2026, 3, 10, 9, 0, tzinfo=CST)
    ok(client.put(f"{API}/meters/{meter_id}/tariff",
                  json={"tariff_id": tou,
                        "effective_from": (start + timedelta(minutes=40)).isoformat()}), 200)
    zero = {"sharp_kwh": "0.00", "peak_kwh": "0.00", "flat_kwh": "0.00", "valley_kwh": "0.00"}
    results = read(client, (start, "0.00", zero),
                   (start + timedelta(hours=1), "4.15",
                    {"sharp_kwh": "1.05", "peak_kwh": "2.21", "flat_kwh": "0.14",
                     "valley_kwh": "0.75"}))
    # Each band's energy split by time, two thirds under the flat tariff: 2.766 kWh at
    # 0.60, then 0.350 sharp, 0.737 peak, 0.047 flat, 0.250 valley: 3.0248 yuan. Charging
    # 4.151 kWh (the pieces not adding up) came to 3.03.
    assert results[1]["amount"] == "3.02"
    report = client.get(f"{API}/reports/energy",
                        params={"group_by": "meter", "period": "month"}).json()["items"]
    assert [(r["energy_kwh"], r["amount"]) for r in report] == [("4.15", "3.02")]
