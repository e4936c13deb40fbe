"""Sites, meters, tariffs and readings over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import read_models

API = "/api/v1"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai


def ok(response, status=201):
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def site(client, clock):
    clock.now = T0 + timedelta(days=10)
    site = ok(client.post(f"{API}/sites", json={"name": "Riverside Mall"}))
    ok(client.post(f"{API}/sites/{site['id']}/buildings", json={"code": "A", "name": "Tower A"}))
    gateway = ok(client.post(f"{API}/gateways", json={
        "name": "GW-1", "host": "10.0.0.11", "port": 502, "site_id": site["id"]}))
    tariff = ok(client.post(f"{API}/tariffs", json={
        "name": "Commercial flat", "kind": "flat", "price": "0.6000",
        "effective_from": "2026-01-01T00:00:00+08:00"}))
    account = ok(client.post(f"{API}/accounts", json={"name": "Tea House", "unit": "A-101"}))
    ok(client.post(f"{API}/accounts/{account['id']}/top-ups",
                   json={"amount": "100.00", "channel": "cash"},
                   headers={"Idempotency-Key": str(uuid.uuid4())}))
    meter = ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000101", "kind": "electricity", "mode": "prepaid",
        "gateway_id": gateway["id"], "address": 1, "account_id": account["id"],
        "tariff_id": tariff["id"], "building": "A", "floor": "1", "unit": "A-101",
        "tariff_from": "2026-01-01T00:00:00+08:00"}))
    return {"site": site, "gateway": gateway, "tariff": tariff, "account": account,
            "meter": meter}


def read(client, *items):
    body = {"readings": [{"meter_no": m, "read_at": t.isoformat(), "total_kwh": v, **extra}
                         for m, t, v, *rest in items for extra in [rest[0] if rest else {}]]}
    return ok(client.post(f"{API}/readings", json=body), 200)["results"]


def balance(client, account_id):
    return client.get(f"{API}/accounts/{account_id}").json()["balance"]


def test_readings_become_exact_charges(client, site, platform):
    account = site["account"]["id"]
    results = read(client,
                   ("000000000101", T0, "1000.00"),
                   ("000000000101", T0 + timedelta(minutes=30), "1001.00"),
                   ("000000000101", T0 + timedelta(minutes=60), "1002.55"))
    assert [(r["status"], r["billing"], r["amount"]) for r in results] == [
        ("accepted", "started", "0.00"), ("accepted", "charged", "0.60"),
        ("accepted", "charged", "0.93")]  # 1.55 kWh: 0.93 yuan; round(1.55*0.6)=0.93
    assert balance(client, account) == "98.47"

    again = read(client, ("000000000101", T0 + timedelta(minutes=60), "1002.55"),
                 ("000000000101", T0 + timedelta(minutes=45), "1001.80"),
                 ("000000000101", T0 + timedelta(minutes=60), "1002.56"))
    assert [(r["status"], r["billing"]) for r in again] == [
        ("duplicate", "duplicate"), ("accepted", "late"), ("rejected", "rejected")]
    assert balance(client, account) == "98.47"

    statement = client.get(f"{API}/accounts/{account}/statement").json()["items"]
    assert [(e["kind"], e["amount"]) for e in statement][-2:] == [
        ("consumption", "-0.60"), ("consumption", "-0.93")]
    tb = {r["ledger_account"]: r for r in
          client.get(f"{API}/ledger/trial-balance").json()["accounts"]}
    assert tb["revenue:electricity"]["credit"] == "1.53"
    readings = client.get(f"{API}/meters/{site['meter']['id']}/readings").json()["items"]
    assert [r["total"] for r in readings] == ["1000.00", "1001.00", "1001.80", "1002.55"]


def test_anomalies_and_implausible_jumps_are_not_charged(client, site):
    account = site["account"]["id"]
    read(client, ("000000000101", T0, "500.00"),
         ("000000000101", T0 + timedelta(minutes=30), "501.00"))
    results = read(client,
                   ("000000000101", T0 + timedelta(minutes=60), "400.00"),
                   ("000000000101", T0 + timedelta(minutes=90), "99999.00"))
    results += read(client, ("000000000101", T0 + timedelta(minutes=90), "99999.00"))
    results += read(client, ("000000000101", T0 + timedelta(minutes=120), "502.00"))
    assert [(r["status"], r["billing"]) for r in results] == [
        ("accepted", "anomaly"), ("accepted", "held"), ("duplicate", "duplicate"),
        ("accepted", "charged")]
    assert results[3]["amount"] == "0.60"
    assert balance(client, account) == "98.80"
    alerts = client.get(f"{API}/meters/{site['meter']['id']}/readings").json()["alerts"]
    assert [a["kind"] for a in alerts] == ["reading_anomaly", "reading_held"]


def test_bad_readings_are_rejected_one_by_one(client, site, platform):
    results = read(client, ("000000000101", T0, "1.00"), ("999999999999", T0, "1.00"),
                   ("12345", T0, "1.00"),
                   ("000000000101", datetime(2030, 1, 1, tzinfo=timezone.utc), "2.00"))
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    assert "future" in results[3]["reason"]
    before = read_models(platform)
    for body in [{"readings": []}, {"readings": [{"meter_no": "000000000101",
                                                   "read_at": T0.isoformat(),
                                                   "total_kwh": "1.001"}]},
                 {"readings": [{"meter_no": "000000000101", "read_at": "2026-03-02T00:00:00",
                                "total_kwh": "1.00"}]},
                 {"readings": [{"meter_no": "000000000101", "read_at": T0.isoformat(),
                                "total_kwh": "-1"}]}]:
        response = client.post(f"{API}/readings", json=body)
        assert response.status_code == 422, response.text
    assert read_models(platform) == before


def test_a_tariff_change_from_a_future_date_splits_the_interval(client, site):
    tariff = site["tariff"]["id"]
    change = T0 + timedelta(minutes=30)
    ok(client.post(f"{API}/tariffs/{tariff}/versions",
                   json={"kind": "flat", "price": "1.0000",
                         "effective_from": change.isoformat()}))
    versions = client.get(f"{API}/tariffs/{tariff}/versions").json()["items"]
    assert [v["price"] for v in versions] == ["0.6000", "1.0000"]
    results = read(client, ("000000000101", T0 - timedelta(minutes=30), "0.00"),
                   ("000000000101", T0 + timedelta(minutes=90), "2.00"))
    # 2 kWh over 2 hours: 1 kWh before the change at 0.60, 1 kWh after at 1.00.
    assert results[1]["amount"] == "1.60"


def test_time_of_use_tariff_with_band_registers(client, site):
    tou = ok(client.post(f"{API}/tariffs", json={
        "name": "TOU", "kind": "tou", "effective_from": "2026-01-01T00:00:00+08:00",
        "band_prices": {"sharp": "1.2000", "peak": "1.0000", "flat": "0.6000",
                        "valley": "0.3000"},
        "schedule": [{"start": "00:00", "band": "valley"}, {"start": "08:00", "band": "peak"},
                     {"start": "22:00", "band": "valley"}]}))
    ok(client.put(f"{API}/meters/{site['meter']['id']}/tariff",
                  json={"tariff_id": tou["id"], "effective_from": "2026-02-01T00:00:00+08:00"}),
       200)
    bands = {"sharp_kwh": "0", "peak_kwh": "0", "flat_kwh": "0", "valley_kwh": "0"}
    results = read(client, ("000000000101", T0, "10.00", bands),
                   ("000000000101", T0 + timedelta(hours=1), "13.00",
                    {**bands, "peak_kwh": "2.00", "valley_kwh": "1.00"}))
    assert results[1]["amount"] == "2.30"  # 2 kWh peak at 1.00 + 1 kWh valley at 0.30


def test_two_meters_one_account_and_meter_replacement(client, site):
    account = site["account"]["id"]
    second = ok(client.post(f"{API}/meters", json={
        "meter_no": "000000000102", "kind": "electricity", "mode": "prepaid",
        "gateway_id": site["gateway"]["id"], "address": 2, "account_id": account,
        "tariff_id": site["tariff"]["id"], "tariff_from": "2026-01-01T00:00:00+08:00"}))
    read(client, ("000000000101", T0, "10.00"), ("000000000102", T0, "20.00"),
         ("000000000101", T0 + timedelta(hours=1), "11.00"),
         ("000000000102", T0 + timedelta(hours=1), "22.00"))
    assert balance(client, account) == "98.20"

    replaced = client.post(f"{API}/meters/{site['meter']['id']}/replace", json={
        "new_meter_no": "000000000201",
        "final": {"read_at": (T0 + timedelta(hours=2)).isoformat(), "total_kwh": "12.00"},
        "initial": {"read_at": (T0 + timedelta(hours=2, minutes=10)).isoformat(),
                    "total_kwh": "0.00"}})
    new = ok(replaced)
    assert new["account_id"] == account and new["meter_no"] == "000000000201"
    assert balance(client, account) == "97.60"  # the old meter's final kWh was charged
    old = client.get(f"{API}/meters/{site['meter']['id']}").json()
    assert old["status"] == "replaced" and old["account_id"] is None
    results = read(client, ("000000000101", T0 + timedelta(hours=3), "13.00"),
                   ("000000000201", T0 + timedelta(hours=3), "5.00"))
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert results[1]["amount"] == "3.00"
    assert balance(client, account) == "94.60"
    meters = client.get(f"{API}/meters", params={"account_id": account}).json()["items"]
    assert sorted(m["meter_no"] for m in meters) == ["000000000102", "000000000201"]
    assert second["id"] in {m["id"] for m in meters}


def test_energy_report_per_meter_account_and_building(client, site):
    read(client, ("000000000101", T0, "10.00"),
         ("000000000101", T0 + timedelta(hours=2), "12.00"),
         ("000000000101", T0 + timedelta(days=1), "15.00"))
    by_day = client.get(f"{API}/reports/energy",
                        params={"group_by": "meter", "period": "day"}).json()["items"]
    assert by_day == [
        {"meter": "000000000101", "period": "2026-03-02", "energy_kwh": "2.00",
         "amount": "1.20"},
        {"meter": "000000000101", "period": "2026-03-03", "energy_kwh": "3.00",
         "amount": "1.80"}]
    by_building = client.get(f"{API}/reports/energy",
                             params={"group_by": "building", "period": "month"}).json()["items"]
    assert by_building == [{"building": "A", "period": "2026-03", "energy_kwh": "5.00",
                            "amount": "3.00"}]
    csv_text = client.get(f"{API}/reports/energy",
                          params={"group_by": "account", "format": "csv"}).text
    assert csv_text.splitlines()[0] == "account,period,energy_kwh,amount"
    assert len(csv_text.splitlines()) == 3
    xlsx = client.get(f"{API}/reports/energy", headers={
        "Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    assert xlsx.content[:2] == b"PK"


def test_metering_bad_input_is_refused(client, site):
    cases = [
        ("post", "/meters", {"meter_no": "000000000101", "kind": "electricity",
                             "mode": "prepaid", "address": 3}, 409),  # exists
        ("post", "/meters", {"meter_no": "0001", "kind": "electricity", "mode": "prepaid",
                             "address": 3}, 422),
        ("post", "/meters", {"meter_no": "000000000301", "kind": "gas", "mode": "prepaid",
                             "address": 3}, 422),
        ("post", "/meters", {"meter_no": "000000000301", "kind": "electricity",
                             "mode": "prepaid", "address": 300}, 422),
        ("post", "/meters", {"meter_no": "000000000301", "kind": "electricity",
                             "mode": "prepaid", "address": 3,
                             "gateway_id": str(uuid.uuid4())}, 404),
        ("post", "/tariffs", {"name": "x", "kind": "flat", "price": "0.00001",
                              "effective_from": "2026-01-01T00:00:00+08:00"}, 422),
        ("post", "/tariffs", {"name": "x", "kind": "tou", "effective_from":
                              "2026-01-01T00:00:00+08:00", "schedule": []}, 422),
        ("post", f"/tariffs/{site['tariff']['id']}/versions",
         {"kind": "flat", "price": "1", "effective_from": "2025-01-01T00:00:00+08:00"}, 422),
        ("post", "/sites", {"name": "x", "timezone": "Mars/Olympus"}, 422),
        ("post", "/gateways", {"name": "g", "host": "h", "port": 70000,
                               "site_id": site["site"]["id"]}, 422),
    ]
    for method, path, body, status in cases:
        response = getattr(client, method)(f"{API}{path}", json=body)
        assert response.status_code == status, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_device_commands_over_the_api(client, site):
    meter = site["meter"]["id"]
    trip = client.post(f"{API}/meters/{meter}/commands", json={"action": "trip",
                                                               "reason": "unpaid rent"},
                       headers={"Idempotency-Key": "trip-1"})
    assert trip.status_code == 202, trip.text
    assert trip.json()["status"] == "issued"
    again = client.post(f"{API}/meters/{meter}/commands", json={"action": "trip",
                                                                "reason": "unpaid rent"},
                        headers={"Idempotency-Key": "trip-1"})
    assert again.json()["id"] == trip.json()["id"]  # the same command, not a second one
    command = client.get(f"{API}/commands/{trip.json()['id']}").json()
    assert command["action"] == "trip" and command["attempts"] == 0
    assert [h["type"] for h in command["history"]] == ["DeviceCommand.Issued"]
    state = client.get(f"{API}/meters/{meter}/state").json()
    assert state["relay_wanted"] == "open" and state["relay_reason"] == "manual"
    assert state["recent_commands"][0]["id"] == trip.json()["id"]

    keep = client.post(f"{API}/meters/{meter}/commands",
                       json={"action": "keep_power", "reason": "cold store",
                             "until": "2026-03-20T00:00:00+08:00"})
    assert keep.status_code == 202
    assert client.get(f"{API}/meters/{meter}/state").json()["keep_power"] is True
    thresholds = client.post(f"{API}/meters/{meter}/commands", json={
        "action": "sync_thresholds", "alarm1": "50.00", "alarm2": "10.00", "overload_kw": 20})
    assert thresholds.status_code == 202
    assert client.get(f"{API}/meters/{meter}/state").json()["thresholds"] == {
        "alarm1": "50.00", "alarm2": "10.00", "overload_w": 20000}
    tariff = client.post(f"{API}/meters/{meter}/commands", json={"action": "sync_tariff"})
    assert tariff.status_code == 202


def test_bad_device_commands_are_refused(client, site, platform):
    meter = site["meter"]["id"]
    before = read_models(platform)
    for body, status in [({"action": "explode"}, 422), ({"action": "keep_power"}, 422),
                         ({"action": "keep_power", "reason": "x",
                           "until": "2020-01-01T00:00:00+08:00"}, 422),
                         ({"action": "release_keep_power"}, 422),
                         ({"action": "sync_thresholds"}, 422)]:
        response = client.post(f"{API}/meters/{meter}/commands", json=body)
        assert response.status_code == status, (body, response.text)
    assert client.post(f"{API}/meters/{uuid.uuid4()}/commands",
                       json={"action": "trip"}).status_code == 404
    assert client.get(f"{API}/commands/{uuid.uuid4()}").status_code == 404
    platform.catch_up()
    assert read_models(platform) == before
