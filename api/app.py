"""The FastAPI application."""

from __future__ import annotations

import re
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from api import problems
from api.auth import allow, check_every_route_guarded
from domain.access import PUBLIC
from adapters.platform import Platform
from api.routes import (
    access,
    accounts,
    alerts,
    devices,
    ledger,
    metering,
    payments,
    periods,
    property,
    reports,
)
from ledger.config import Settings

API_PREFIX = "/api/v1"
# A caller's own request id is kept when it is short and plain; otherwise one is made.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
# Batches of readings and imported sheets may be large; everything else is small.
BULK_PATHS = {f"{API_PREFIX}/readings", f"{API_PREFIX}/meters/import",
              f"{API_PREFIX}/payments/reconciliations"}


def create_app(platform: Platform | None = None, *, settings: Settings | None = None,
               background: bool = True) -> FastAPI:
    """Build the app around a platform (made from settings when not given).

    ``background`` starts the projection polling thread: events written by other
    processes reach the read models within ``PREPAID_PROJECTION_POLL_INTERVAL_S``.
    """
    owned = platform is None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if background:
            app.state.platform.start_background()
        yield
        if owned:
            app.state.platform.close()

    app = FastAPI(title="Prepaid energy ledger", version="0.1.0", lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs")
    app.state.platform = platform or Platform(settings)
    max_body = app.state.platform.settings.max_body_bytes
    max_bulk_body = app.state.platform.settings.max_bulk_body_bytes
    problems.install(app)

    @app.middleware("http")
    async def request_context(request: Request, call_next):
        given = request.headers.get("X-Request-Id", "")
        request.state.request_id = given if REQUEST_ID.match(given) else str(uuid.uuid4())
        length = request.headers.get("content-length")
        limit = max_bulk_body if request.url.path in BULK_PATHS else max_body
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problems.problem(413, "body-too-large", "Body too large",
                                    f"request bodies here may be at most {limit} bytes")
        response = await call_next(request)
        response.headers["X-Request-Id"] = request.state.request_id
        return response

    @app.get("/health", tags=["operations"], **allow(PUBLIC))
    def health() -> dict:
        return {"status": "ok"}

    app.include_router(accounts.router, prefix=API_PREFIX)
    app.include_router(ledger.router, prefix=API_PREFIX)
    app.include_router(metering.router, prefix=API_PREFIX)
    app.include_router(reports.router, prefix=API_PREFIX)
    app.include_router(devices.router, prefix=API_PREFIX)
    app.include_router(payments.router, prefix=API_PREFIX)
    app.include_router(property.router, prefix=API_PREFIX)
    app.include_router(alerts.router, prefix=API_PREFIX)
    app.include_router(periods.router, prefix=API_PREFIX)
    app.include_router(access.router, prefix=API_PREFIX)
    check_every_route_guarded(app)
    return app
