"""Announced prices, earlier tariffs and tariff switches priced over the API, to the fen."""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap import Platform
from domain.tariff import TariffSpec
from ledger.config import Settings
from ledger.metering import ReadingInput
from tests.conftest import FrozenClock

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


def tou_spec(prices: dict[str, str], schedule: list[dict]) -> TariffSpec:
    return TariffSpec.from_dict({
        "kind": "tou", "band_prices_1e4": {b: int(p.replace(".", "")) for b, p in prices.items()},
        "schedule": schedule})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.integers(min_value=1, max_value=600),
                                st.integers(min_value=0, max_value=3_000)),
                      min_size=1, max_size=25),
       announced_after=st.integers(min_value=0, max_value=30 * 24 * 60))
def test_charges_are_the_same_whether_or_not_a_later_price_was_announced(steps,
                                                                         announced_after):
    start = datetime(2026, 3, 1, 0, 0, tzinfo=CST)
    with tempfile.TemporaryDirectory() as folder:
        platform = Platform(Settings(database_url=f"sqlite:///{folder}/p.db",
                                     max_plausible_kw=10**9),
                            clock=FrozenClock(start + timedelta(days=60)))
        try:
            ledger = platform.ledger
            spec = tou_spec(BAND_PRICES, SCHEDULE)
            plain = ledger.metering.create_tariff(name="plain", spec=spec, effective_from=start,
                                                  actor={})
            announced = ledger.metering.create_tariff(name="announced", spec=spec,
                                                      effective_from=start,
                                                      actor={})
            readings, when, total = [], start, 0
            for minutes, units in steps:  # units of 0.01 kWh
                readings.append((when, total))
                when += timedelta(minutes=minutes)
                total += units
            readings.append((when, total))
            other = OTHER_SCHEDULE
            ledger.metering.add_tariff_version(
                announced.id, effective_from=when + timedelta(minutes=announced_after + 1),
                spec=tou_spec(other["band_prices"], other["schedule"]), actor={})
            for meter_no, tariff in (("000000000401", plain), ("000000000402", announced)):
                account = uuid.UUID(ledger.accounts.open_account(name=meter_no, actor={})
                                    .result["account_id"])
                ledger.metering.register_meter(meter_no=meter_no, kind="electricity",
                                               mode="prepaid",
                                               gateway_id=None, address=1, profile="ref-prepaid-v1",
                                               account_id=account, tariff_id=tariff.id,
                                               tariff_from=start, actor={})
            for at, register in readings:
                answers = ledger.metering.ingest_readings([ReadingInput("000000000401", at,
                                                                        register),
                                                           ReadingInput("000000000402", at,
                                                                        register)])
                plain_answer, announced_answer = answers.answers
                assert (plain_answer["billing"], plain_answer["charge_fen"]) == \
                    (announced_answer["billing"], announced_answer["charge_fen"])
            months = [ledger.metering.get_meter(ledger.metering.get_meter_id(n)).month
                      for n in ("000000000401", "000000000402")]
            assert months[0] == months[1]
        finally:
            platform.close()
