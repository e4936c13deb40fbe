"""A gateway cannot point the platform at its own services: registering or importing one
at loopback, link-local or cloud-metadata addresses is refused unless the setting
PREPAID_GATEWAY_ALLOWED_NETWORKS lists them; the refusal changes nothing."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from adapters.platform import Platform
from api.app import create_app
from ledger.sheet_import import SHEET_COLUMNS
from tests.conftest import login, read_models

API = "/api/v1"


@pytest.fixture
def allowing(backend, make_settings, clock):
    """A platform whose settings allow loopback gateways, and its admin client."""
    platform = Platform(make_settings(backend, gateway_allowed_networks="127.0.0.0/8"),
                        clock=clock)
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        yield platform, c
    platform.close()


def gateway(client, site_id: str, host: str, port: int = 5432, name: str = "GW"):
    return client.post(f"{API}/gateways", json={"name": name, "host": host, "port": port,
                                                "site_id": site_id})


def test_a_gateway_at_the_database_port_on_loopback_is_refused(client, platform):
    site = client.post(f"{API}/sites", json={"name": "Mall"}).json()["id"]
    before = read_models(platform)
    for n, host in enumerate(("127.0.0.1", "localhost", "169.254.169.254", "fd00:ec2::254",
                              "metadata.google.internal", "::1")):
        answer = gateway(client, site, host, name=f"GW{n}")
        assert answer.status_code == 422, (host, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "/problems/gateway-host-not-allowed"
        assert "PREPAID_GATEWAY_ALLOWED_NETWORKS" in answer.json()["detail"]
    platform.catch_up()
    assert read_models(platform) == before
    assert client.get(f"{API}/gateways").json()["items"] == []
    # A meter LAN is what gateways are for.
    assert gateway(client, site, "192.168.10.5", 502).status_code == 201


def test_the_setting_allows_the_networks_it_lists(allowing):
    platform, client = allowing
    site = client.post(f"{API}/sites", json={"name": "Mall"}).json()["id"]
    answer = gateway(client, site, "127.0.0.1")
    assert answer.status_code == 201, answer.text
    # Metadata stays refused unless listed by its own address.
    assert gateway(client, site, "169.254.169.254", 80, name="meta").status_code == 422


def sheet(host: str) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SHEET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow({"gateway_name": "GW-1", "gateway_host": host, "gateway_port": "5432",
                     "gateway_protocol": "modbus-tcp", "meter_no": "000000000001",
                     "kind": "electricity", "mode": "monitoring", "address": "1",
                     "profile": "ref-prepaid-v1", "ct_ratio": "1"})
    return out.getvalue().encode()


def test_an_imported_sheet_naming_loopback_is_refused_whole(client, platform):
    site = client.post(f"{API}/sites", json={"name": "Mall"}).json()["id"]
    before = read_models(platform)
    answer = client.post(f"{API}/meters/import", params={"site_id": site},
                         content=sheet("127.0.0.1"), headers={"content-type": "text/csv"})
    assert answer.status_code == 422, answer.text
    assert [(e["row"], e["column"]) for e in answer.json()["errors"]] == [(2, "gateway_host")]
    platform.catch_up()
    assert read_models(platform) == before
    answer = client.post(f"{API}/meters/import", params={"site_id": site},
                         content=sheet("10.1.0.1"), headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
