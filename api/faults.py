"""Database faults as a client sees them: 503 with ``Retry-After``, fast, while the database
cannot be reached; health endpoints that say whether it can."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import sqlalchemy.exc
from eventsourcing import persistence
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from adapters.db_faults import DatabaseWatch
from api import problems
from api.auth import allow
from domain.access import PUBLIC

log = logging.getLogger(__name__)

# What a lost, refused or timed-out database connection raises, through each layer.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    persistence.OperationalError,
    persistence.InterfaceError,
    sqlite3.OperationalError,
)
# Never answered by the fast 503: the process itself is alive.
ALWAYS_ANSWERED = {"/health/live"}

UNAVAILABLE_DETAIL = ("the database cannot be reached just now. A write may or may not "
                      "have been stored: repeat it with the same Idempotency-Key (it is "
                      "done at most once), never with a new one")


def unavailable(retry_after_s: int) -> JSONResponse:
    response = problems.problem(503, "database-unavailable", "Database unavailable",
                                UNAVAILABLE_DETAIL)
    response.headers["Retry-After"] = str(retry_after_s)
    return response


class DatabaseGate:
    """While the database is known to be down, answer 503 at once instead of letting each
    request wait for a connection that will not come."""

    def __init__(self, app, *, watch: DatabaseWatch, retry_after_s: int) -> None:
        self.app = app
        self.watch = watch
        self.retry_after_s = retry_after_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.watch.down and \
                scope["path"] not in ALWAYS_ANSWERED:
            await unavailable(self.retry_after_s)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, watch: DatabaseWatch, retry_after_s: int) -> None:
    """The 503 answer for database errors, the fast gate, and the health endpoints."""

    async def _database_error(_: Request, error: Exception) -> JSONResponse:
        log.warning("database error: %s", error)
        watch.failed()
        return unavailable(retry_after_s)

    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database_error)
    app.add_middleware(DatabaseGate, watch=watch, retry_after_s=retry_after_s)

    async def ready() -> JSONResponse:
        if await run_in_threadpool(watch.reachable):
            return JSONResponse({"status": "ok", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503, headers={"Retry-After": str(retry_after_s)})

    app.add_api_route("/health", ready, methods=["GET"], tags=["operations"],
                      summary="Ready: the process answers and the database is reachable",
                      **allow(PUBLIC))
    app.add_api_route("/api/v1/health", ready, methods=["GET"], tags=["operations"],
                      summary="Ready (as /health, under the API prefix)", **allow(PUBLIC))
    # /health/ready (with the schema, read-model lag and device checks) and /health/live
    # are the operations routes (api/routes/ops.py).
