"""What a route is handed: the one service or query object it uses, not the platform.

A route names its collaborators in its signature, typed: ``accounts: Accounts`` is the
ledger's ``AccountService``, ``reports: Reports`` the report queries. Every provider is
``async def`` and only looks up an attribute (see ``api/deps.py``: a plain ``def``
dependency is run in a worker thread, a hop that costs more than a small request).

A feature that becomes a service of the ledger (``ledger.<name>``) is one line here:
``Name = Annotated[NameService, Depends(service("name"))]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from ledger.accounts import AccountService
from ledger.commands import ApprovalPolicy
from ledger.config import Settings
from ledger.cutoff import CutoffService
from ledger.metering import MeteringService
from ledger.periods import PeriodService
from projections.access.queries import AccessQueries
from projections.accounts.queries import LedgerQueries
from projections.metering.queries import MeteringQueries
from projections.report_queries import ReportQueries

Provider = Callable[[Request], Awaitable[Any]]


def service(name: str) -> Provider:
    """A dependency that hands a route the ledger's service ``name`` (``ledger.<name>``)."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state.platform.ledger, name)

    provide.__name__ = provide.__qualname__ = f"{name}_service"
    return provide


def part(name: str) -> Provider:
    """A dependency that hands a route what the platform holds as ``name``: a query
    object, the approval policy, the settings."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state.platform, name)

    provide.__name__ = provide.__qualname__ = name
    return provide


class CatchUp(Protocol):
    """Read-your-writes: bring the read models up to ``position`` (or the end of the log);
    after a stored write a failure here is logged, not raised (``Platform.catch_up``)."""

    def __call__(self, position: int | None = None) -> None: ...


# -- the write side: services of the ledger -------------------------------------------------
Accounts = Annotated[AccountService, Depends(service("accounts"))]
Periods = Annotated[PeriodService, Depends(service("periods"))]
Cutoff = Annotated[CutoffService, Depends(service("cutoff"))]
Metering = Annotated[MeteringService, Depends(service("metering"))]

# -- the read side: query objects, and catching the read models up -----------------------
Queries = Annotated[LedgerQueries, Depends(part("queries"))]
Reports = Annotated[ReportQueries, Depends(part("reports"))]
MeteringReads = Annotated[MeteringQueries, Depends(part("metering_queries"))]
AccessReads = Annotated[AccessQueries, Depends(part("access_queries"))]
ReadModels = Annotated[CatchUp, Depends(part("catch_up"))]

# -- policy and configuration ---------------------------------------------------------------
Approvals = Annotated[ApprovalPolicy, Depends(part("approvals"))]
Config = Annotated[Settings, Depends(part("settings"))]
