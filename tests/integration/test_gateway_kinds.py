"""Registering gateways by protocol and connection kind, and meters by profile, through the
API and the meter sheet; gateways stored before connections had a shape read as Modbus TCP
outbound."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from tests.conftest import login

API = "/api/v1"


@pytest.fixture
def api(backend, make_settings, clock):
    platform = Platform(make_settings(backend, gateway_allowed_networks="127.0.0.0/8"),
                        clock=clock)
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        site = c.post(f"{API}/sites", json={"name": "Mall"}).json()["id"]
        yield platform, c, site
    platform.close()


def test_gateways_of_each_kind_and_their_defaults(api):
    platform, client, site = api
    modbus = client.post(f"{API}/gateways", json={"name": "G1", "host": "127.0.0.1",
                                                  "port": 502, "site_id": site})
    assert modbus.status_code == 201, modbus.text
    assert modbus.json() | {"id": None} == {
        "id": None, "site_id": site, "name": "G1", "host": "127.0.0.1", "port": 502,
        "protocol": "modbus-tcp", "connect": "outbound", "registration_id": None,
        "heartbeat": None, "baud": 9600}
    serial = client.post(f"{API}/gateways", json={
        "name": "Shaft", "host": "127.0.0.1", "port": 4001, "protocol": "dlt645-tcp",
        "site_id": site}).json()
    assert (serial["protocol"], serial["connect"], serial["baud"]) == (
        "dlt645-tcp", "outbound", 2400)
    dtu = client.post(f"{API}/gateways", json={
        "name": "DTU", "protocol": "modbus-rtu-tcp", "connect": "inbound",
        "registration_id": "860000000000001", "heartbeat": "www.usr.cn", "site_id": site})
    assert dtu.status_code == 201, dtu.text
    assert dtu.json()["host"] is None and dtu.json()["baud"] == 9600
    state = client.get(f"{API}/gateways/{dtu.json()['id']}").json()
    assert state["registration_id"] == "860000000000001"
    assert "link" in state  # None: device work runs elsewhere (here: not started)
    listed = {g["name"]: g for g in client.get(f"{API}/gateways").json()["items"]}
    assert listed["DTU"]["connect"] == "inbound" and listed["DTU"]["host"] is None
    assert listed["Shaft"]["baud"] == 2400 and listed["G1"]["protocol"] == "modbus-tcp"


@pytest.mark.parametrize("body, word", [
    ({"connect": "inbound", "protocol": "dlt645-tcp"}, "registration_id"),
    ({"connect": "inbound", "protocol": "modbus-tcp", "registration_id": "X"}, "inbound"),
    ({"connect": "inbound", "protocol": "dlt645-tcp", "registration_id": "X",
      "host": "127.0.0.1", "port": 1}, "host"),
    ({"protocol": "dlt645-tcp"}, "host"),
    ({"protocol": "dlt645-tcp", "host": "127.0.0.1", "port": 1, "baud": 2401}, "baud"),
    ({"host": "127.0.0.1", "port": 1, "registration_id": "X"}, "inbound"),
])
def test_bad_gateways_are_refused_and_change_nothing(api, body, word):
    platform, client, site = api
    answer = client.post(f"{API}/gateways", json={"name": "Bad", "site_id": site, **body})
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert word in answer.text
    assert client.get(f"{API}/gateways").json()["items"] == []


def test_an_outbound_serial_gateway_on_a_refused_network_is_refused(backend, make_settings,
                                                                    clock):
    platform = Platform(make_settings(backend), clock=clock)
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        site = c.post(f"{API}/sites", json={"name": "Mall"}).json()["id"]
        answer = c.post(f"{API}/gateways", json={"name": "S", "host": "127.0.0.1",
                                                 "port": 5432, "protocol": "dlt645-tcp",
                                                 "site_id": site})
        assert answer.status_code == 422, answer.text
        dtu = c.post(f"{API}/gateways", json={"name": "D", "protocol": "dlt645-tcp",
                                              "connect": "inbound", "registration_id": "A1",
                                              "site_id": site})
        assert dtu.status_code == 201  # an inbound DTU has no host to refuse
    platform.close()


def test_meters_by_profile_need_the_matching_gateway(api):
    platform, client, site = api
    dlt = client.post(f"{API}/gateways", json={
        "name": "Shaft", "host": "127.0.0.1", "port": 4001, "protocol": "dlt645-tcp",
        "site_id": site}).json()["id"]
    meter = client.post(f"{API}/meters", json={
        "meter_no": "123456789012", "kind": "electricity", "mode": "prepaid",
        "gateway_id": dlt, "profile": "dlt645-2007"})
    assert meter.status_code == 201, meter.text
    assert meter.json()["profile"] == "dlt645-2007"
    wrong = client.post(f"{API}/meters", json={
        "meter_no": "123456789013", "kind": "electricity", "mode": "prepaid",
        "gateway_id": dlt, "address": 3, "profile": "acrel-ddsy1352"})
    assert wrong.status_code == 422 and "modbus-rtu-tcp" in wrong.text, wrong.text
    no_address = client.post(f"{API}/meters", json={
        "meter_no": "123456789014", "kind": "electricity", "mode": "prepaid"})
    assert no_address.status_code == 422 and "address" in no_address.text


def test_the_sheet_imports_dtus_and_dlt645_meters_and_exports_them_back(api):
    platform, client, site = api
    rows = [
        {"gateway_name": "DTU-1", "gateway_protocol": "dlt645-tcp",
         "gateway_connect": "inbound", "gateway_registration_id": "IMEI1",
         "gateway_heartbeat": "HB", "meter_no": "000000000901", "kind": "electricity",
         "mode": "prepaid", "profile": "dlt645-2007"},
        {"gateway_name": "RTU-1", "gateway_host": "127.0.0.1", "gateway_port": "4002",
         "gateway_protocol": "modbus-rtu-tcp", "gateway_baud": "9600",
         "meter_no": "000000000902", "kind": "electricity", "mode": "prepaid",
         "address": "2", "profile": "acrel-ddsy1352"},
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sorted({k for r in rows for k in r}))
    writer.writeheader()
    writer.writerows(rows)
    answer = client.post(f"{API}/meters/import", params={"site_id": site},
                         content=out.getvalue().encode(), headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["gateways_created"] == 2 and answer.json()["meters_created"] == 2
    exported = client.get(f"{API}/meters/export", params={"site_id": site}).text
    again = client.post(f"{API}/meters/import", params={"site_id": site},
                        content=exported.encode(), headers={"content-type": "text/csv"})
    assert again.status_code == 200, again.text
    assert again.json() == {"gateways_created": 0, "meters_created": 0, "unchanged": 2}
    listed = {g["name"]: g for g in client.get(f"{API}/gateways").json()["items"]}
    assert listed["DTU-1"]["registration_id"] == "IMEI1"


def test_a_gateway_stored_before_connections_reads_as_modbus_tcp_outbound(api):
    """A Registered event alone (as every gateway was stored before) is Modbus TCP,
    outbound, 9600 baud, reachable."""
    platform, client, site = api
    gateway = client.post(f"{API}/gateways", json={"name": "Old", "host": "127.0.0.1",
                                                   "port": 502, "site_id": site}).json()
    from uuid import UUID

    stored = platform.ledger.find(UUID(gateway["id"]))
    assert stored.version == 1  # only the Registered event of the first shape
    assert stored.connection() == {"host": "127.0.0.1", "port": 502, "protocol": "modbus-tcp",
                                   "connect": "outbound", "registration_id": None,
                                   "heartbeat": None, "baud": 9600}
    assert stored.reachable


def test_a_registration_id_names_one_gateway(api):
    platform, client, site = api
    body = {"protocol": "dlt645-tcp", "connect": "inbound", "registration_id": "IMEI7",
            "site_id": site}
    assert client.post(f"{API}/gateways", json={"name": "A", **body}).status_code == 201
    assert client.post(f"{API}/gateways", json={"name": "A", **body}).status_code == 201
    taken = client.post(f"{API}/gateways", json={"name": "B", **body})
    assert taken.status_code == 409, taken.text
    assert [g["name"] for g in client.get(f"{API}/gateways").json()["items"]] == ["A"]
