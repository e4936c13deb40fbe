"""Reports built from the read models."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import render
from api.schemas import RealDay, RealMonth
from api.auth import allow, require_site
from api.deps import aware
from api.formats import ZONE, report_format, report_response
from api.services import MeteringReads, Periods, ReadModels, Reports

router = APIRouter(tags=["reports"])
DAY = r"^\d{4}-\d{2}-\d{2}$"


@router.get("/reports/energy",
            summary="Consumption per meter, account or building, per day or month",
             **allow("reports.read", "list"))
def energy(request: Request, metering_reads: MeteringReads, catch_up: ReadModels,
           group_by: Annotated[str, Query(pattern="^(meter|account|building)$")] = "meter",
           period: Annotated[str, Query(pattern="^(day|month)$")] = "day",
           from_: Annotated[str | None, Query(alias="from", pattern=DAY), RealDay] = None,
           to: Annotated[str | None, Query(pattern=DAY), RealDay] = None,
           site_id: str | None = None, format: str | None = None) -> Response:
    """Days are the site's local days (``from`` inclusive, ``to`` exclusive). An interval
    between two readings counts on the day in which it ends."""
    require_site(request, site_id)
    fmt = report_format(request, format)
    catch_up()
    rows = [{group_by: r["key"], "period": r["period"], "energy_kwh": render.kwh(r["energy_wh"]),
             "amount": render.yuan(r["charge_fen"])}
            for r in metering_reads.energy(group_by=group_by, period=period, from_day=from_,
                                           to_day=to, site_id=site_id)]
    return report_response("energy", [group_by, "period", "energy_kwh", "amount"], rows, fmt,
                           {"group_by": group_by, "period": period, "from": from_, "to": to})


@router.get("/reports/account-periods",
            summary="Per account and wallet: opening, movements and closing for a month",
             **allow("reports.read", "global"))
def account_periods(request: Request, reports: Reports, periods: Periods,
                    catch_up: ReadModels,
                    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$"), RealMonth],
                    known_at: datetime | None = None, format: str | None = None) -> Response:
    """``known_at`` reproduces the report as the books stood then."""
    from projections.reports import MOVEMENTS

    fmt = report_format(request, format)
    catch_up()
    # A closed month is reported as it stood at its close, unless asked otherwise.
    known_at = known_at or periods.period_closed_at(month)
    rows = [{"account_id": r["account_id"], "name": r["name"], "wallet": r["wallet"],
             "opening": render.yuan(r["opening"]),
             **{k: render.yuan(r[k]) for k in MOVEMENTS}, "closing": render.yuan(r["closing"]),
             "consumption_kwh": render.kwh(r["consumption_wh"])}
            for r in reports.account_periods(month, ZONE, aware(known_at, "known_at"))]
    columns = ["account_id", "name", "wallet", "opening", *MOVEMENTS, "closing",
               "consumption_kwh"]
    return report_response("account-periods", columns, rows, fmt,
                           {"month": month, "known_at": render.iso(known_at),
                            "closed": periods.period_closed_at(month) is not None})


@router.get("/reports/sales", summary="Sales by day, month or year, channel and operator",
             **allow("reports.read", "global"))
def sales(request: Request, reports: Reports, catch_up: ReadModels,
          period: Annotated[str, Query(pattern="^(day|month|year)$")] = "day",
          from_: Annotated[datetime | None, Query(alias="from")] = None,
          to: datetime | None = None, known_at: datetime | None = None,
          format: str | None = None) -> Response:
    fmt = report_format(request, format)
    catch_up()
    start = aware(from_, "from") or datetime(2000, 1, 1, tzinfo=timezone.utc)
    end = aware(to, "to") or datetime(9999, 1, 1, tzinfo=timezone.utc)
    rows = [{"period": r["period"], "channel": r["channel"], "operator": r["operator"],
             "building": r["building"],
             "top_ups": render.yuan(r["top_ups_fen"]), "refunds": render.yuan(r["refunds_fen"]),
             "reversals": render.yuan(r["reversals_fen"]), "gifts": render.yuan(r["gifts_fen"]),
             "net_paid": render.yuan(r["net_paid_fen"])}
            for r in reports.sales(period, start, end, ZONE, aware(known_at, "known_at"))]
    return report_response("sales", ["period", "channel", "operator", "building", "top_ups",
                                     "refunds",
                                     "reversals", "gifts", "net_paid"], rows, fmt,
                           {"period": period})
