"""Operations: metrics, liveness and readiness, the collection report."""

from __future__ import annotations

import hmac
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from bootstrap import Platform
from api.auth import allow, require_principal
from api.deps import platform
from api.formats import report_format, report_response
from api import problems
from api.problems import ApiProblem
from api.schemas import RealDay
from domain.access import PUBLIC

router = APIRouter(tags=["operations"])
reports_router = APIRouter(tags=["reports"])
Plat = Annotated[Platform, Depends(platform)]
DAY = r"^\d{4}-\d{2}-\d{2}$"


@router.get("/metrics", include_in_schema=False, **allow(PUBLIC))
async def metrics(request: Request, p: Plat) -> Response:
    """Prometheus text format, for the bearer of ``PREPAID_METRICS_TOKEN`` (unset: 404)."""
    from adapters.metrics import render

    token = p.settings.metrics_token
    if token is None or not token.get_secret_value():
        raise ApiProblem(404, "not-found", "Not found")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(),
                               f"Bearer {token.get_secret_value()}".encode()):
        refused = problems.problem(401, "unauthorized", "Unauthorized",
                                   "metrics need their bearer token")
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    body, content_type = await run_in_threadpool(render, p)
    return Response(body, media_type=content_type)


@router.get("/health/live", **allow(PUBLIC))
async def live() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/health/ready", **allow(PUBLIC))
async def ready(p: Plat) -> JSONResponse:
    """Database reachable, schema current, read models within the configured lag, device
    runtime alive: 200, else 503 with the failing checks."""
    from adapters.health import readiness

    ok, checks = await run_in_threadpool(readiness, p)
    return JSONResponse({"status": "ready" if ok else "unready", "checks": checks},
                        status_code=200 if ok else 503)


COLLECTION_COLUMNS = ["day", "site", "gateway", "gateway_id", "polls", "meter_polls",
                      "answered", "success_rate", "longest_gap_s", "longest_gap_meter_id"]


@reports_router.get("/reports/collection",
                    summary="Data collection per gateway and day: polls, answers, success "
                            "rate, longest gap", **allow("reports.read", "list"))
def collection(request: Request, p: Plat,
               from_: Annotated[str, Query(alias="from", pattern=DAY), RealDay],
               to: Annotated[str, Query(pattern=DAY), RealDay],
               format: str | None = None) -> Response:
    """Days are the site's local days, ``from`` and ``to`` inclusive."""
    fmt = report_format(request, format)
    first, last = date.fromisoformat(from_), date.fromisoformat(to)
    if last < first:
        raise ApiProblem(422, "validation-error", "to is before from")
    if (last - first).days > 366:
        raise ApiProblem(422, "validation-error", "at most 366 days at once")
    who = require_principal(request)
    rows = p.collection_report(first, last, who.site_ids)
    return report_response("collection", COLLECTION_COLUMNS, rows, fmt,
                           {"from": from_, "to": to})
