"""The sales report's figures against a plain computation over the same statement rows:
every row read in Python, bucketed by its local time, summed per period, channel,
operator and building. Both backends; the zone with daylight saving takes the report's
other path (bucketing in Python)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from projections.reports import sales
from projections.accounts.tables import statement_entries
from projections.metering.tables import meters

KINDS = ("top_up", "refund", "reversal", "gift", "consumption", "adjustment", "settlement")
START = datetime(2025, 12, 30, tzinfo=timezone.utc)


def write_rows(platform) -> list[dict]:
    pick = random.Random(18)
    accounts = [f"acct-{n}" for n in range(12)]
    meter_rows = []
    for n, account in enumerate(accounts[:9]):  # three accounts have no meter
        for m in range(1 + n % 2):  # some have two, in different buildings: the first counts
            meter_rows.append({
                "id": str(uuid.uuid4()), "meter_no": f"M{n:02d}{m}", "kind": "electricity",
                "mode": "prepaid", "address": n * 2 + m, "profile": "p", "ct_ratio": 1,
                "building": None if n == 4 else f"B{(n + m) % 3}", "account_id": account,
                "status": "active", "position": n})
    rows = []
    for n in range(1500):
        # Around the local midnights and the year's end, so that the day a row falls on
        # depends on the zone.
        at = START + timedelta(days=pick.randrange(0, 400), hours=pick.choice((15, 16, 23)),
                               minutes=pick.randrange(0, 120))
        rows.append({
            "position": n, "account_id": pick.choice(accounts), "wallet": "electricity",
            "transaction_id": str(uuid.uuid4()), "kind": pick.choice(KINDS),
            "amount_fen": pick.randrange(-5000, 20000), "balance_after_fen": 0,
            "effective_at": at, "recorded_at": at + timedelta(hours=pick.choice((0, 0, 200))),
            "actor": pick.choice(("operator:a", "operator:b", None)),
            "channel": pick.choice(("cash", "wechat", None))})
    with platform.engines.writer.begin() as conn:
        conn.execute(insert(meters), meter_rows)
        conn.execute(insert(statement_entries), rows)
    return rows, meter_rows


def plain_sales(rows, meter_rows, period, from_, to, zone, known_at=None):
    building = {}
    for meter in meter_rows:
        if meter["building"] is not None:
            current = building.get(meter["account_id"])
            building[meter["account_id"]] = min(current or meter["building"], meter["building"])
    fmt = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[period]
    sums = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row["kind"] not in ("top_up", "refund", "reversal", "gift"):
            continue
        if not from_ <= row["effective_at"] < to:
            continue
        if known_at is not None and row["recorded_at"] > known_at:
            continue
        key = (row["effective_at"].astimezone(zone).strftime(fmt), row["channel"] or "-",
               row["actor"] or "-", building.get(row["account_id"]) or "-")
        sums[key][row["kind"]] += row["amount_fen"]
    return [{"period": p, "channel": c, "operator": o, "building": b,
             "top_ups_fen": k["top_up"], "refunds_fen": -k["refund"],
             "reversals_fen": k["reversal"], "gifts_fen": k["gift"],
             "net_paid_fen": k["top_up"] + k["refund"] + k["reversal"]}
            for (p, c, o, b), k in sorted(sums.items())]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
def test_sales_report_equals_a_plain_sum_of_the_statement_rows(platform, zone):
    rows, meter_rows = write_rows(platform)
    zone = ZoneInfo(zone)
    ranges = [(datetime(2026, 1, 1, tzinfo=zone), datetime(2027, 1, 1, tzinfo=zone)),
              (datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)),
              (datetime(2026, 3, 5, 16, tzinfo=timezone.utc), datetime(2026, 3, 9, tzinfo=timezone.utc))]
    for period in ("day", "month", "year"):
        for from_, to in ranges:
            for known_at in (None, START + timedelta(days=150)):
                got = sales(platform.engines.reader, period, from_, to, zone, known_at)
                assert got == plain_sales(rows, meter_rows, period, from_, to, zone, known_at)
    yearly = sales(platform.engines.reader, "year", *ranges[1], zone)
    assert {r["period"] for r in yearly} == {"2025", "2026", "2027"}
    assert sum(r["top_ups_fen"] for r in yearly) == sum(
        r["amount_fen"] for r in rows if r["kind"] == "top_up")
