"""Period close and the operational reports (alarms, offline meters)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api import render
from api.schemas import RealMonth
from api.auth import allow
from api.deps import actor, parse_id
from api.formats import ZONE, report_format, report_response
from api.services import Metering, Periods, ReadModels, Reports
from ledger.commands import ClosePeriod
from projections.reports import month_bounds

router = APIRouter(tags=["reports"])
MONTH = r"^\d{4}-\d{2}$"


@router.post("/periods/{month}/close", status_code=201,
             summary="Close a month: its reports stay as they were at the close",
             **allow("periods.close", "global"))
def close_period(month: Annotated[str, Path(pattern=MONTH), RealMonth], periods: Periods,
                 who: Annotated[dict, Depends(actor)]) -> JSONResponse:
    start, end = month_bounds(month, ZONE)
    period = periods.carry_out_close_period(ClosePeriod(month, start, end), who)
    return JSONResponse({"month": period.month, "closed_at": render.iso(period.closed_at)},
                        status_code=201)


@router.get("/reports/alarms", summary="Balance alerts and meter alarms",
             **allow("reports.read", "global"))
def alarms(request: Request, reports: Reports, catch_up: ReadModels,
           format: str | None = None) -> Response:
    fmt = report_format(request, format)
    catch_up()
    balance = [{"kind": r.level, "subject": r.account_id, "detail":
                f"{r.wallet} balance {render.yuan(r.balance_fen)}",
                "raised_at": render.iso(r.raised_at)}
               for r in reports.balance_alerts()]
    device = [{"kind": r.kind, "subject": r.meter_no, "detail": r.reason,
               "raised_at": render.iso(r.raised_at)}
              for r in reports.meter_alarms()]
    rows = sorted(balance + device, key=lambda r: r["raised_at"] or "", reverse=True)
    return report_response("alarms", ["kind", "subject", "detail", "raised_at"], rows, fmt, {})


@router.get("/reports/offline", summary="Meters offline, and gateways none of whose "
                                        "meters answer",
             **allow("reports.read", "global"))
def offline(request: Request, reports: Reports, catch_up: ReadModels,
            format: str | None = None) -> Response:
    fmt = report_format(request, format)
    catch_up()
    rows = reports.active_meters_by_gateway()
    by_gateway: dict[str, list[bool]] = {}
    for row in rows:
        by_gateway.setdefault(row.name or "-", []).append(row.online)
    items: list[dict[str, Any]] = [
        {"kind": "gateway", "name": name, "detail": f"none of {len(states)} meters answer"}
        for name, states in sorted(by_gateway.items()) if name != "-" and not any(states)]
    items += [{"kind": "meter", "name": row.meter_no,
               "detail": f"behind {row.name or 'no gateway'}"}
              for row in rows if not row.online]
    return report_response("offline", ["kind", "name", "detail"], items, fmt, {})


@router.get("/reports/losses", summary="A master meter against the meters behind it",
             **allow("reports.read", "global"))
def losses(request: Request, reports: Reports, metering: Metering, catch_up: ReadModels,
           month: Annotated[str, Query(pattern=MONTH), RealMonth],
           master_meter_id: str, format: str | None = None) -> Response:
    """Line and metering losses: the master meter's energy against the sum of every other
    active meter of its site, in the month (site local days)."""
    fmt = report_format(request, format)
    catch_up()
    master = metering.get_meter(parse_id(master_meter_id, "meter"))
    first, last = f"{month}-01", f"{month}-31"
    rows = reports.site_energy_by_meter(str(master.site_id), first, last)
    master_wh = sum(e for m, e in rows if m == str(master.id))
    others_wh = sum(e for m, e in rows if m != str(master.id))
    loss_wh = master_wh - others_wh
    loss_per_mille = loss_wh * 1000 // master_wh if master_wh else 0
    row = {"month": month, "master_meter": master.meter_no, "master_kwh": render.kwh(master_wh),
           "sub_meters": len(rows) - 1, "sub_meters_kwh": render.kwh(others_wh),
           "loss_kwh": render.kwh(loss_wh),
           "loss_percent": f"{loss_per_mille // 10}.{abs(loss_per_mille) % 10}"}
    return report_response("losses", list(row), [row], fmt, {})
