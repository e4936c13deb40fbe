"""Operations: metrics, liveness and readiness, the collection report."""

from __future__ import annotations

import hmac
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.auth import allow, require_principal
from api.formats import report_format, report_response
from api import problems
from api.problems import ApiProblem
from api.schemas import RealDay
from api.services import CollectionReport, Config, Health, Metrics
from domain.access import PUBLIC

router = APIRouter(tags=["operations"])
reports_router = APIRouter(tags=["reports"])
DAY = r"^\d{4}-\d{2}-\d{2}$"


@router.get("/metrics", include_in_schema=False, **allow(PUBLIC))
async def metrics(request: Request, config: Config, exposition: Metrics) -> Response:
    """Prometheus text format, for the bearer of ``PREPAID_METRICS_TOKEN`` (unset: 404)."""
    token = config.metrics_token
    if token is None or not token.get_secret_value():
        raise ApiProblem(404, "not-found", "Not found")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(),
                               f"Bearer {token.get_secret_value()}".encode()):
        refused = problems.problem(401, "unauthorized", "Unauthorized",
                                   "metrics need their bearer token")
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    body, content_type = await run_in_threadpool(exposition)
    return Response(body, media_type=content_type)


@router.get("/health/live", **allow(PUBLIC))
async def live() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/health/ready", **allow(PUBLIC))
async def ready(readiness: Health) -> JSONResponse:
    """Database reachable, schema current, read models within the configured lag, device
    runtime alive: 200, else 503 with the failing checks."""
    ok, checks = await run_in_threadpool(readiness)
    return JSONResponse({"status": "ready" if ok else "unready", "checks": checks},
                        status_code=200 if ok else 503)


COLLECTION_COLUMNS = ["day", "site", "gateway", "gateway_id", "polls", "meter_polls",
                      "answered", "success_rate", "longest_gap_s", "longest_gap_meter_id"]


@reports_router.get("/reports/collection",
                    summary="Data collection per gateway and day: polls, answers, success "
                            "rate, longest gap", **allow("reports.read", "list"))
def collection(request: Request, collection_report: CollectionReport,
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
    rows = collection_report(first, last, who.site_ids)
    return report_response("collection", COLLECTION_COLUMNS, rows, fmt,
                           {"from": from_, "to": to})
