"""A simulated month of a 50-shop site on PostgreSQL: readings, a common-area pool,
property fees, top-ups, arrears and alerts; then the account-period report must balance
on every row and agree with the trial balance."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from domain.tariff import TariffSpec
from ledger.metering import ReadingInput

API = "/api/v1"
START = datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc)  # 1 March 00:00 in Shanghai
SHOPS = 50


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_month_of_a_fifty_shop_site(client, platform, clock):
    ledger = platform.ledger
    clock.now = START + timedelta(days=30, hours=12)  # 31 March, noon: all of it in March
    site = ledger.metering.create_site(name="Mall", actor={})
    tariff = ledger.metering.create_tariff(name="Flat", effective_from=START - timedelta(days=1),
                                           actor={}, spec=TariffSpec.from_dict({"kind": "flat",
                                                                                "price_1e4": 9000}))
    shops, numbers = [], []
    for n in range(SHOPS):
        account = uuid.UUID(ledger.accounts.open_account(name=f"Shop {n:02d}",
                                                         area_m2=f"{40 + n}.00",
                                                         actor={}).result["account_id"])
        # A few shops buy too little and fall into arrears during the month.
        ledger.accounts.top_up(account, amount_fen=3000 if n % 10 == 0 else 80000, channel="cash",
                               actor={}, effective_at=START + timedelta(hours=1))
        ledger.accounts.top_up(account, amount_fen=50000, channel="cash", wallet="property_fee",
                               actor={}, effective_at=START + timedelta(hours=1))
        ledger.property.set_fee_schedule(account_id=account, monthly_fen=None, per_m2_fen=500,
                                         day_of_month=5, actor={})
        meter = ledger.metering.register_meter(meter_no=f"{n + 1:012d}", kind="electricity",
                                               mode="prepaid", gateway_id=None, address=n % 32 + 1,
                                               profile="ref-prepaid-v1", account_id=account,
                                               tariff_id=tariff.id, tariff_from=START,
                                               site_id=site.id,
                                               actor={})
        shops.append(account)
        numbers.append(meter.meter_no)
    common = [ledger.metering.register_meter(meter_no=f"9000000000{n:02d}", kind="electricity",
                                             mode="monitoring", gateway_id=None, address=n + 1,
                                             profile="ref-prepaid-v1", tariff_id=tariff.id,
                                             tariff_from=START, site_id=site.id, actor={})
              for n in range(2)]
    for day in range(31):
        when = START + timedelta(days=day)
        readings = [ReadingInput(no, when, day * (300 + i * 7)) for i, no in enumerate(numbers)]
        readings += [ReadingInput(m.meter_no, when, day * 1000) for m in common]
        answers = ledger.metering.ingest_readings(readings).answers
        assert all(a["status"] == "accepted" for a in answers)
    platform.catch_up()
    pool = ledger.property.create_pool(name="Common areas", site_id=site.id,
                                       meter_ids=[m.id for m in common], method="area",
                                       shares=[{"account_id": str(s)} for s in shops],
                                       period="month",
                                       actor={})
    allocation = ledger.property.allocate_pool(pool.id, "2026-03")
    assert sum(s["amount_fen"] for s in allocation["shares"]) == allocation["total_fen"] > 0
    fees = ledger.property.run_property_fees("2026-03")
    assert len(fees) == SHOPS
    platform.enforce()
    platform.catch_up()

    report = client.get(f"{API}/reports/account-periods", params={"month": "2026-03"}).json()
    kinds = ("top_up", "gift", "consumption", "common_area", "property_fee", "refund",
             "reversal", "adjustment", "settlement")
    closing_by_wallet: dict[str, Decimal] = {}
    for row in report["items"]:
        movements = sum(Decimal(row[k]) for k in kinds)
        assert Decimal(row["opening"]) + movements == Decimal(row["closing"]), row
        closing_by_wallet[f"wallet:{row['account_id']}:{row['wallet']}"] = \
            Decimal(row["closing"])
    tb = client.get(f"{API}/ledger/trial-balance").json()
    assert tb["total_debit"] == tb["total_credit"]
    wallets = {r["ledger_account"]: -Decimal(r["balance"]) for r in tb["accounts"]
               if r["ledger_account"].startswith("wallet:")}
    assert wallets == {k: v for k, v in closing_by_wallet.items() if v or k in wallets}
    for account in shops:
        assert ledger.accounts.get_account(account).balance_fen("electricity") == \
            int(closing_by_wallet[f"wallet:{account}:electricity"] * 100)
    # The shops that bought too little are in arrears, warned and cut off.
    poor = [shops[n] for n in range(0, SHOPS, 10)]
    for account in poor:
        assert ledger.accounts.get_account(account).balance_fen("electricity") <= 0
        levels = {a["level"] for a in client.get(f"{API}/alerts", params={
            "account_id": str(account)}).json()["items"]}
        assert "arrears" in levels
        meter_id = ledger.metering.get_meter_id(numbers[shops.index(account)])
        assert ledger.metering.get_meter(meter_id).desired_relay == "open"
    losses = client.get(f"{API}/reports/losses", params={
        "month": "2026-03", "master_meter_id": str(common[0].id)})
    assert losses.status_code == 200
