"""Importing the gateways-and-meters sheet: all rows or none, idempotent, and exported back."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

from adapters.sheets import XLSX_TYPE, read_sheet
from ledger.sheet_import import SHEET_COLUMNS
from tests.conftest import read_models

API = "/api/v1"


def sheet(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SHEET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def mall_rows(account_id: str, tariff_id: str, count: int = 500) -> list[dict]:
    return [{"gateway_name": f"GW-{n // 32:02d}", "gateway_host": f"10.0.{n // 32}.1",
             "gateway_port": "502", "gateway_protocol": "modbus-tcp",
             "meter_no": f"{n + 1:012d}", "kind": "electricity",
             "mode": "prepaid" if n % 10 else "monitoring", "address": str(n % 32 + 1),
             "profile": "ref-prepaid-v1", "ct_ratio": "1",
             "account_id": account_id if n % 10 else "", "tariff_id": tariff_id,
             "building": "A", "floor": str(n // 100 + 1), "unit": f"A-{n:03d}"}
            for n in range(count)]


def setup(client):
    site = client.post(f"{API}/sites", json={"name": "Mall"}).json()
    account = client.post(f"{API}/accounts", json={"name": "Shop"}).json()
    tariff = client.post(f"{API}/tariffs", json={
        "name": "Flat", "kind": "flat", "price": "0.6",
        "effective_from": "2026-01-01T00:00:00+08:00"}).json()
    return site["id"], account["id"], tariff["id"]


def test_one_bad_row_among_500_changes_nothing_and_is_named(client, platform):
    site, account, tariff = setup(client)
    rows = mall_rows(account, tariff)
    rows[250]["gateway_port"] = "five-oh-two"
    before = read_models(platform)
    response = client.post(f"{API}/meters/import", params={"site_id": site},
                           content=sheet(rows), headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [
        (252, "gateway_port")]
    platform.catch_up()
    assert read_models(platform) == before


def test_every_bad_row_is_reported_at_once(client, platform):
    site, account, tariff = setup(client)
    rows = mall_rows(account, tariff)
    rows[321]["address"] = "999"
    rows[402]["kind"] = "steam"
    rows[17]["meter_no"] = rows[16]["meter_no"]
    before = read_models(platform)
    response = client.post(f"{API}/meters/import", params={"site_id": site},
                           content=sheet(rows), headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    # Sheet rows count from the header (row 1): data row n is sheet row n + 2.
    assert {(e["row"], e["column"]) for e in errors} == {
        (323, "address"), (404, "kind"), (19, "meter_no")}
    assert all(e["reason"] for e in errors)
    platform.catch_up()
    assert read_models(platform) == before
    assert client.get(f"{API}/meters").json()["items"] == []
    assert client.get(f"{API}/gateways").json()["items"] == []


def test_a_valid_sheet_imports_whole_again_is_a_no_op_and_exports_back(client):
    site, account, tariff = setup(client)
    data = sheet(mall_rows(account, tariff))
    first = client.post(f"{API}/meters/import", params={"site_id": site}, content=data,
                        headers={"content-type": "text/csv"})
    assert first.status_code == 200, first.text
    assert first.json() == {"gateways_created": 16, "meters_created": 500, "unchanged": 0}
    again = client.post(f"{API}/meters/import", params={"site_id": site}, content=data,
                        headers={"content-type": "text/csv"})
    assert again.json() == {"gateways_created": 0, "meters_created": 0, "unchanged": 500}

    exported = client.get(f"{API}/meters/export", params={"site_id": site, "format": "csv"})
    assert exported.status_code == 200
    given = [r for _, r in read_sheet(data, "csv")]

    def as_given(rows):  # the export adds the gateways' connection columns
        assert {(r["gateway_connect"], r["gateway_baud"]) for r in rows} == {
            ("outbound", "9600")}
        return [{k: r[k] for k in given[0]} for r in rows]

    given = [{**r, "gateway_connect": "outbound", "gateway_baud": "9600"} for r in given]
    assert as_given([r for _, r in read_sheet(exported.content, "csv")]) == given
    xlsx = client.get(f"{API}/meters/export", params={"site_id": site, "format": "xlsx"})
    assert as_given([r for _, r in read_sheet(xlsx.content, "xlsx")]) == given
    # The exported workbook imports as a no-op too.
    third = client.post(f"{API}/meters/import", params={"site_id": site},
                        content=xlsx.content, headers={"content-type": XLSX_TYPE})
    assert third.json()["unchanged"] == 500


def test_xlsx_import_and_a_changed_meter_is_refused(client):
    site, account, tariff = setup(client)
    workbook = Workbook()
    sheet_ = workbook.active
    rows = mall_rows(account, tariff, count=3)
    sheet_.append(list(SHEET_COLUMNS))
    for row in rows:
        sheet_.append([int(row[c]) if c in ("gateway_port", "address", "ct_ratio")
                       else row.get(c, "") for c in SHEET_COLUMNS])
    out = io.BytesIO()
    workbook.save(out)
    response = client.post(f"{API}/meters/import", params={"site_id": site},
                           content=out.getvalue(), headers={"content-type": XLSX_TYPE})
    assert response.json()["meters_created"] == 3
    rows[1]["address"] = "30"
    changed = client.post(f"{API}/meters/import", params={"site_id": site}, content=sheet(rows),
                          headers={"content-type": "text/csv"})
    assert changed.status_code == 422
    assert changed.json()["errors"][0]["row"] == 3
    garbage = client.post(f"{API}/meters/import", params={"site_id": site},
                          content=b"\x00\x01not a workbook", headers={"content-type": XLSX_TYPE})
    assert garbage.status_code == 422
