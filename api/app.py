"""The FastAPI application."""

from __future__ import annotations

import gc
import re
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import docs, faults, limits, problems
from api.auth import allow, check_every_route_guarded
from api.headers import SecurityHeaders
from domain.access import PUBLIC
from bootstrap import Platform
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


class RequestContext:
    """Give every request an id (the caller's own when plain), echo it in the answer's
    ``X-Request-Id``, and refuse bodies that declare more than the path allows.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs each request through
    an extra task and a streamed response, about a third of the cost of a small request.
    """

    def __init__(self, app, *, max_body: int, max_bulk_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_bulk_body = max_bulk_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, length = "", None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        limit = self.max_bulk_body if scope["path"] in BULK_PATHS else self.max_body
        if length is not None and (not length.isdigit() or int(length) > limit):
            await limits.refuse(scope, receive, send_with_id, limit)
            return
        # Whatever the headers said (chunked, or no length): count the bytes as they come.
        receive, send_with_id = limits.limited(scope, receive, send_with_id, limit)
        await self.app(scope, receive, send_with_id)


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

    platform = platform or Platform(settings)
    public_docs = platform.settings.public_docs
    app = FastAPI(title="Prepaid energy ledger", version="0.1.0", lifespan=lifespan,
                  openapi_url=docs.OPENAPI_URL if public_docs else None, docs_url=None,
                  redoc_url=None)
    app.state.platform = platform
    max_body = app.state.platform.settings.max_body_bytes
    max_bulk_body = app.state.platform.settings.max_bulk_body_bytes
    problems.install(app)

    faults.install(app, app.state.platform.database_watch,
                   app.state.platform.settings.database_retry_after_s)
    from api.observe import Observe

    app.add_middleware(Observe)  # inside RequestContext: sees the request id
    app.add_middleware(RequestContext, max_body=max_body, max_bulk_body=max_bulk_body)
    # Outside everything, the framework's own error layer too: every answer, 413 and 500
    # included, carries the headers.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build_stack())
    if public_docs:
        docs.install(app)

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
    from api.routes import ops

    app.include_router(ops.router)
    app.include_router(ops.reports_router, prefix=API_PREFIX)
    check_every_route_guarded(app)
    from web import install as install_web

    # The console (/console, where / leads) and the tenant page (/t/).
    install_web(app)
    return app


def create_default_app() -> FastAPI:
    """The app on settings from the environment: what ``prepaid serve --workers N`` runs
    in each of its processes."""
    settings = Settings()
    app = create_app(settings=settings)
    tune_gc(settings.gc_thresholds)
    return app


def tune_gc(thresholds: str) -> None:
    """For a serving process (and ``prepaid projections rebuild``/``run``): set aside what
    start-up made and collect cycles less often.

    The committer keeps tens of thousands of aggregates in memory. With the default
    thresholds a full collection walks all of them every few seconds under load and
    stops every thread for tens of milliseconds: that, not the work, was the slowest
    percentile of payment notifications (docs/benchmarks.md). A rebuild makes and drops
    a million small objects a minute; with the defaults about a fifth of its time went to
    collections walking the platform's own start-up objects.
    """
    gc.freeze()
    gc.set_threshold(*(int(part) for part in thresholds.split(",")))
