"""Reports built from the read models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import render
from api.deps import platform
from api.formats import report_format, report_response
from adapters.platform import Platform

router = APIRouter(tags=["reports"])
Plat = Annotated[Platform, Depends(platform)]
DAY = r"^\d{4}-\d{2}-\d{2}$"


@router.get("/reports/energy",
            summary="Consumption per meter, account or building, per day or month")
def energy(request: Request, p: Plat,
           group_by: Annotated[str, Query(pattern="^(meter|account|building)$")] = "meter",
           period: Annotated[str, Query(pattern="^(day|month)$")] = "day",
           from_: Annotated[str | None, Query(alias="from", pattern=DAY)] = None,
           to: Annotated[str | None, Query(pattern=DAY)] = None,
           site_id: str | None = None, format: str | None = None) -> Response:
    """Days are the site's local days (``from`` inclusive, ``to`` exclusive). An interval
    between two readings counts on the day in which it ends."""
    fmt = report_format(request, format)
    p.catch_up()
    rows = [{group_by: r["key"], "period": r["period"], "energy_kwh": render.kwh(r["energy_wh"]),
             "amount": render.yuan(r["charge_fen"])}
            for r in p.metering_queries.energy(group_by=group_by, period=period, from_day=from_,
                                               to_day=to, site_id=site_id)]
    return report_response("energy", [group_by, "period", "energy_kwh", "amount"], rows, fmt,
                           {"group_by": group_by, "period": period, "from": from_, "to": to})
