"""Financial reports from the ledger read models: the account-period report (期初期末)
and sales. Both can be reproduced as the books stood at an instant (``known_at``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, case, func, select

from projections.tables import accounts, consumption_daily, meters, statement_entries

MOVEMENTS = ("top_up", "gift", "consumption", "common_area", "property_fee", "refund",
             "reversal", "adjustment", "settlement")
SALES_KINDS = ("top_up", "refund", "reversal", "gift")


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def account_periods(engine: Engine, month: str, zone: ZoneInfo,
                    known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Per account and wallet: opening, each kind of movement, closing, where
    opening + movements = closing on every row."""
    start, end = month_bounds(month, zone)
    e = statement_entries
    known = e.c.recorded_at <= known_at if known_at else True
    columns = [func.sum(case((e.c.effective_at < start, e.c.amount_fen), else_=0))
               .label("opening")]
    for kind in MOVEMENTS:
        columns.append(func.sum(case((and_(e.c.effective_at >= start, e.c.effective_at < end,
                                            e.c.kind == kind), e.c.amount_fen), else_=0))
                       .label(kind))
    query = (select(e.c.account_id, e.c.wallet, accounts.c.name, *columns)
             .select_from(e.join(accounts, accounts.c.id == e.c.account_id))
             .where(e.c.effective_at < end, known)
             .group_by(e.c.account_id, e.c.wallet, accounts.c.name)
             .order_by(accounts.c.name, e.c.wallet))
    first_day = start.astimezone(zone).date().isoformat()
    last_day = (end.astimezone(zone).date()).isoformat()
    energy_query = (select(consumption_daily.c.account_id, meters.c.kind,
                           func.sum(consumption_daily.c.energy_wh))
                    .select_from(consumption_daily.join(
                        meters, meters.c.id == consumption_daily.c.meter_id))
                    .where(consumption_daily.c.day >= first_day,
                           consumption_daily.c.day < last_day,
                           consumption_daily.c.account_id.is_not(None))
                    .group_by(consumption_daily.c.account_id, meters.c.kind))
    rows = []
    with engine.connect() as conn:
        energy = {(a, k): int(e) for a, k, e in conn.execute(energy_query)}
        for row in conn.execute(query):
            values = dict(row._mapping)
            values = {k: (int(v) if k in MOVEMENTS or k == "opening" else v)
                      for k, v in values.items()}
            values["closing"] = values["opening"] + sum(values[k] for k in MOVEMENTS)
            values["consumption_wh"] = energy.get((values["account_id"], values["wallet"]), 0)
            rows.append(values)
    return rows


def sales(engine: Engine, period: str, from_: datetime, to: datetime, zone: ZoneInfo,
          known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Top-ups, refunds, reversals and gifts per period, channel and operator; gifts are
    kept apart from paid money."""
    e = statement_entries
    query = select(e.c.kind, e.c.amount_fen, e.c.channel, e.c.actor, e.c.effective_at).where(
        e.c.kind.in_(SALES_KINDS), e.c.effective_at >= from_, e.c.effective_at < to)
    if known_at:
        query = query.where(e.c.recorded_at <= known_at)
    fmt = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[period]
    query = query.add_columns(e.c.account_id)
    sums: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SALES_KINDS, 0))
    with engine.connect() as conn:
        building = {a: b for a, b in conn.execute(
            select(meters.c.account_id, func.min(meters.c.building))
            .where(meters.c.account_id.is_not(None)).group_by(meters.c.account_id))}
        for kind, amount, channel, actor, effective_at, account_id in conn.execute(query):
            bucket = effective_at.astimezone(zone).strftime(fmt)
            key = (bucket, channel or "-", actor or "-", building.get(account_id) or "-")
            sums[key][kind] += int(amount)
    out = []
    for (bucket, channel, operator, building_), kinds in sorted(sums.items()):
        paid = kinds["top_up"] + kinds["refund"] + kinds["reversal"]
        out.append({"period": bucket, "channel": channel, "operator": operator,
                    "building": building_,
                    "top_ups_fen": kinds["top_up"], "refunds_fen": -kinds["refund"],
                    "reversals_fen": kinds["reversal"], "gifts_fen": kinds["gift"],
                    "net_paid_fen": paid})
    return out
