"""What the pages show, assembled from the API's queries and aggregates (no SQL here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.access import Principal
from ledger.alerts import AlertService
from ledger.metering import MeteringService
from projections.accounts.queries import LedgerQueries
from projections.metering.queries import MeteringQueries

STATES = ("open", "alarm1", "alarm2", "arrears", "not_opened", "offline", "keep_power",
          "closed")


def all_pages(fetch, limit: int) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        items += page.items
        cursor = page.next_cursor
        if not cursor:
            return items


def thresholds(alerts: AlertService, account_id: str,
               wallet: str = "electricity") -> dict[str, int]:
    return alerts.thresholds_of(UUID(account_id), wallet)


def money_state(balance_fen: int, levels: dict[str, int]) -> str:
    if balance_fen <= 0:
        return "arrears"
    if balance_fen <= levels["alarm2"]:
        return "alarm2"
    if balance_fen <= levels["alarm1"]:
        return "alarm1"
    return "open"


def tiles(who: Principal, queries: LedgerQueries, metering_reads: MeteringQueries,
          metering: MeteringService, alerts: AlertService,
          limit: int) -> list[dict[str, Any]]:
    """A tile per meter (with its account), and per account without a meter; read
    ``limit`` rows at a time."""
    accounts = {row["id"]: row for row in all_pages(
        lambda **kw: queries.list_accounts(site_ids=who.site_ids,
                                           account_ids=who.account_ids, **kw), limit)}
    meters = all_pages(lambda **kw: metering_reads.list_meters(
        site_ids=who.site_ids, account_ids=who.account_ids, **kw), limit)
    out, metered = [], set()
    for m in meters:
        if m["status"] != "active":
            continue
        account = accounts.get(m["account_id"]) if m["account_id"] else None
        meter = metering.get_meter(UUID(m["id"]))
        tile = _account_tile(queries, alerts, account) if account else {
            "state": "not_opened", "name": "", "account_id": None, "balance": None}
        metered.add(m["account_id"])
        if account and account["status"] != "closed":
            if not meter.online:
                tile["state"] = "offline"
            elif meter.keep_power:
                tile["state"] = "keep_power"
        if account is None:
            tile["state"] = "offline" if not meter.online else "not_opened"
            if not meter.online:
                tile["not_opened"] = True
        tile.update(meter_id=m["id"], meter_no=m["meter_no"], unit=m["unit"] or
                    (account or {}).get("unit") or "", building=m["building"] or "",
                    floor=m["floor"] or "", site_id=m["site_id"] or
                    (account or {}).get("site_id"))
        out.append(tile)
    for account_id, account in accounts.items():
        if account_id not in metered:
            tile = _account_tile(queries, alerts, account)
            tile.update(meter_id=None, meter_no="", unit=account["unit"] or "",
                        building="", floor="", site_id=account["site_id"])
            out.append(tile)
    return sorted(out, key=lambda t: (t["building"], t["floor"], t["unit"], t["name"]))


def _account_tile(queries: LedgerQueries, alerts: AlertService,
                  account: dict[str, Any]) -> dict[str, Any]:
    balances = queries.wallet_balances(account["id"])
    fen = balances.get("electricity", {}).get("balance_fen", 0)
    state = "closed" if account["status"] == "closed" else \
        money_state(fen, thresholds(alerts, account["id"]))
    return {"state": state, "name": account["name"], "account_id": account["id"],
            "balance": fen}


def filtered(items: list[dict[str, Any]], *, building: str = "", floor: str = "",
             q: str = "", state: str = "", site: str = "") -> list[dict[str, Any]]:
    needle = q.strip().casefold()

    def keep(t: dict[str, Any]) -> bool:
        if building and t["building"] != building:
            return False
        if floor and t["floor"] != floor:
            return False
        if site and t["site_id"] != site:
            return False
        if state and t["state"] != state:
            return False
        if needle and not any(needle in (t[k] or "").casefold()
                              for k in ("name", "unit", "meter_no")):
            return False
        return True

    return [t for t in items if keep(t)]


def counts(items: list[dict[str, Any]]) -> dict[str, int]:
    result = dict.fromkeys(STATES, 0)
    for t in items:
        result[t["state"]] += 1
    return result


def statement_tail(queries: LedgerQueries, account_id: str, limit: int,
                   keep: int = 50) -> list[dict[str, Any]]:
    """The last ``keep`` entries, newest first; read ``limit`` rows at a time."""
    rows = all_pages(lambda **kw: queries.statement(account_id, **kw), limit)
    return list(reversed(rows[-keep:]))


def daily_usage(metering_reads: MeteringQueries, clock: Callable[[], datetime],
                account_id: str, days: int = 30) -> list[tuple[str, Decimal]]:
    """kWh per site-local day over the last ``days`` days, from the energy report query."""
    from zoneinfo import ZoneInfo

    today = clock().astimezone(ZoneInfo("Asia/Shanghai")).date()
    first = today - timedelta(days=days - 1)
    rows = metering_reads.energy(group_by="account", period="day",
                                 from_day=first.isoformat(),
                                 to_day=(today + timedelta(days=1)).isoformat(),
                                 site_id=None)
    by_day = {r["period"]: Decimal(r["energy_wh"]) / 1000 for r in rows
              if r["key"] == account_id}
    return [((first + timedelta(days=i)).isoformat(),
             by_day.get((first + timedelta(days=i)).isoformat(), Decimal(0)))
            for i in range(days)]


def zone_of(metering: MeteringService, site_id: str | None) -> str:
    """The site's time zone, for showing times; the default zone without a site."""
    from domain.errors import SiteNotFound

    if site_id:
        try:
            return metering.get_site(UUID(str(site_id))).timezone
        except (ValueError, SiteNotFound):
            pass
    return "Asia/Shanghai"
