"""Financial reports from the ledger read models: the account-period report (期初期末)
and sales. Both can be reproduced as the books stood at an instant (``known_at``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Engine, and_, bindparam, case, cast, func, select, text

from projections.accounts.tables import (
    SALES_KINDS,
    account_month_totals,
    accounts,
    statement_entries,
)
from projections.metering.tables import consumption_daily, meters

MOVEMENTS = ("top_up", "gift", "consumption", "common_area", "property_fee", "refund",
             "reversal", "adjustment", "settlement")


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def account_periods(engine: Engine, month: str, zone: ZoneInfo,
                    known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Per account and wallet: opening, each kind of movement, closing, where
    opening + movements = closing on every row."""
    if known_at is None:
        return _account_periods_from_totals(engine, month, zone)
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


def _fixed_offset_hours(zone: ZoneInfo) -> int | None:
    """The zone's offset in whole hours if it never changes over the year, else None."""
    offsets = {datetime(2026, month, 1, tzinfo=zone).utcoffset() for month in range(1, 13)}
    if len(offsets) != 1:
        return None
    seconds = offsets.pop().total_seconds()
    return int(seconds // 3600) if seconds % 3600 == 0 else None


def _local_day(dialect: str, column, offset_hours: int):
    """The local day of a stored (naive UTC) time: a date on PostgreSQL (cheaper to
    compute and to group by than text), ``YYYY-MM-DD`` text on SQLite."""
    if dialect == "postgresql":
        return cast(column + text(f"INTERVAL '{offset_hours} hours'"), Date)
    return func.strftime("%Y-%m-%d", column, f"{offset_hours:+d} hours")


def _account_periods_from_totals(engine: Engine, month: str,
                                 zone: ZoneInfo) -> list[dict[str, Any]]:
    """The same report from the monthly totals kept by the ledger view (no known_at)."""
    t = account_month_totals
    columns = [func.sum(case((t.c.month < month, t.c.amount_fen), else_=0)).label("opening")]
    for kind in MOVEMENTS:
        columns.append(func.sum(case((and_(t.c.month == month, t.c.kind == kind),
                                      t.c.amount_fen), else_=0)).label(kind))
    query = (select(t.c.account_id, t.c.wallet, accounts.c.name, *columns)
             .select_from(t.join(accounts, accounts.c.id == t.c.account_id))
             .where(t.c.month <= month)
             .group_by(t.c.account_id, t.c.wallet, accounts.c.name)
             .order_by(accounts.c.name, t.c.wallet))
    start, end = month_bounds(month, zone)
    energy = _energy(engine, start, end, zone)
    rows = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            values = {k: (int(v) if k in MOVEMENTS or k == "opening" else v)
                      for k, v in dict(row._mapping).items()}
            values["closing"] = values["opening"] + sum(values[k] for k in MOVEMENTS)
            values["consumption_wh"] = energy.get((values["account_id"], values["wallet"]), 0)
            rows.append(values)
    return rows


def _energy(engine: Engine, start: datetime, end: datetime, zone: ZoneInfo) -> dict:
    first_day = start.astimezone(zone).date().isoformat()
    last_day = end.astimezone(zone).date().isoformat()
    query = (select(consumption_daily.c.account_id, meters.c.kind,
                    func.sum(consumption_daily.c.energy_wh))
             .select_from(consumption_daily.join(meters,
                                                 meters.c.id == consumption_daily.c.meter_id))
             .where(consumption_daily.c.day >= first_day, consumption_daily.c.day < last_day,
                    consumption_daily.c.account_id.is_not(None))
             .group_by(consumption_daily.c.account_id, meters.c.kind))
    with engine.connect() as conn:
        return {(a, k): int(e) for a, k, e in conn.execute(query)}


def sales(engine: Engine, period: str, from_: datetime, to: datetime, zone: ZoneInfo,
          known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Top-ups, refunds, reversals and gifts per period, channel and operator; gifts are
    kept apart from paid money."""
    e = statement_entries
    # The kinds as literals, so that PostgreSQL can prove the query's rows are those of
    # the partial index ix_statement_sales (it cannot from bound parameters).
    kinds = bindparam("sales_kinds", SALES_KINDS, expanding=True, literal_execute=True)
    conditions = [e.c.kind.in_(kinds), e.c.effective_at >= from_, e.c.effective_at < to]
    if known_at:
        conditions.append(e.c.recorded_at <= known_at)
    query = select(e.c.kind, e.c.amount_fen, e.c.channel, e.c.actor,
                   e.c.effective_at).where(*conditions)
    fmt = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[period]
    sums: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SALES_KINDS, 0))
    buildings = (select(meters.c.account_id, func.min(meters.c.building).label("building"))
                 .where(meters.c.account_id.is_not(None)).group_by(meters.c.account_id)
                 .subquery())
    offset = _fixed_offset_hours(zone)
    with engine.connect() as conn:
        if offset is not None:
            # The database sums per local day; Python only merges days into the period.
            if conn.dialect.name == "postgresql":
                # The planner takes every row for its own group (it cannot tell how few
                # days, operators and channels there are), so it would sort them all, on
                # disk, and compile the plan first; hashing the few real groups is cheaper.
                # Both settings end with this connection's transaction.
                conn.execute(text("SET LOCAL enable_sort = off"))
                conn.execute(text("SET LOCAL jit = off"))
            day = _local_day(conn.dialect.name, e.c.effective_at, offset)
            grouped = (select(day.label("day"), e.c.kind, e.c.channel, e.c.actor,
                              buildings.c.building, func.sum(e.c.amount_fen))
                       .select_from(e.outerjoin(buildings,
                                                buildings.c.account_id == e.c.account_id))
                       .where(*conditions)
                       .group_by(day, e.c.kind, e.c.channel, e.c.actor, buildings.c.building))
            for day_value, kind, channel, actor, building, amount in conn.execute(grouped):
                day_text = day_value if isinstance(day_value, str) else day_value.isoformat()
                bucket = {"day": day_text, "month": day_text[:7], "year": day_text[:4]}[period]
                sums[(bucket, channel or "-", actor or "-", building or "-")][kind] += \
                    int(amount)
        else:  # a zone with daylight saving: bucket each row in Python
            building = {a: b for a, b in conn.execute(select(buildings))}
            for kind, amount, channel, actor, effective_at, account_id in conn.execute(
                    query.add_columns(e.c.account_id)):
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
