"""What a route is handed: the one service or query object it uses, not the platform.

A route names its collaborators in its signature, typed: ``accounts: Accounts`` is the
ledger's ``AccountService``, ``reports: Reports`` the report queries. Every provider is
``async def`` and only looks up an attribute, or binds one to the function the route
calls (see ``api/deps.py``: a plain ``def`` dependency is run in a worker thread, a hop
that costs more than a small request).

A feature that becomes a service of the ledger (``ledger.<name>``) is one line here:
``Name = Annotated[NameService, Depends(service("name"))]``.

A few routes need something only the composition root can give: the login service
(``Auth``), the event log whose hash chain an auditor verifies (``EventLog``), the sheet
import over the event store (``SheetImport``), the state of a gateway's link as this
process knows it (``LinkState``), the collection report (``CollectionReport``), the
readiness checks (``Health``) and the metrics exposition (``Metrics``). Each is one narrow,
typed thing, never the platform itself: the last two are checks over the whole platform,
so the route is handed the check to run, not what it runs over. The console and tenant
pages (``web/``) are handed theirs the same way, and two more besides: the forecast of the
days a balance lasts (``DaysLeft``) and the signed tenant links (``TenantLinks``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from typing import Annotated, Any, Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from fastapi import Depends, Request

from adapters.auth import Authenticator
from ledger.access import AccessService
from ledger.accounts import AccountService
from ledger.alerts import AlertService
from ledger.commands import ApprovalPolicy
from ledger.config import Settings
from ledger.cutoff import CutoffService
from ledger.devices import DeviceService
from ledger.metering import MeteringService
from ledger.payments import PaymentService
from ledger.periods import PeriodService
from ledger.property import PropertyService
from ledger.sheet_import import ImportReport, import_sheet
from ledger.tenant_links import TenantLinkBook
from projections.access.queries import AccessQueries
from projections.accounts.queries import LedgerQueries
from projections.alerts.queries import AlertQueries
from projections.devices.queries import DeviceQueries
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


class GatewayLink(Protocol):
    """Whether a gateway's link is up, as this process knows it (None: device work runs
    in another process; ``Platform.link_state``)."""

    def __call__(self, gateway: Any) -> dict | None: ...


class CollectionRows(Protocol):
    """The collection report's rows over the read models (``Platform.collection_report``)."""

    def __call__(self, from_day: date, to_day: date,
                 site_ids: frozenset[str] | None) -> list: ...


class ImportsSheet(Protocol):
    """Import the gateways-and-meters sheet's rows into a site: all or none
    (``ledger/sheet_import.py``)."""

    def __call__(self, site_id: UUID, rows: list[tuple[int, dict[str, str]]],
                 actor: dict) -> ImportReport: ...


class ForecastsDays(Protocol):
    """How many days a balance lasts at the last week's average daily charge; None
    without charges to go by (``processes/alerting.py``)."""

    def __call__(self, account_id: UUID, balance_fen: int) -> int | None: ...


class ChecksReadiness(Protocol):
    """The readiness checks (``adapters/health.py``): (ready, checks)."""

    def __call__(self) -> tuple[bool, dict[str, Any]]: ...


class RendersMetrics(Protocol):
    """The Prometheus text exposition (``adapters/metrics.py``): (body, content type)."""

    def __call__(self) -> tuple[bytes, str]: ...


async def event_log(request: Request) -> ApplicationRecorder:
    """The event store's recorder, which the audit chain is verified over."""
    return request.app.state.platform.ledger.recorder


async def sheet_import(request: Request) -> ImportsSheet:
    """The sheet import, bound to the event store it checks and saves in."""
    return partial(import_sheet, request.app.state.platform.ledger)


async def days_left(request: Request) -> ForecastsDays:
    """The forecast, bound to the read models' engine it reads the daily charges from."""
    reader = request.app.state.platform.engines.reader

    def forecast(account_id: UUID, balance_fen: int) -> int | None:
        from processes.alerting import days_left as forecast_days

        with reader.connect() as conn:
            return forecast_days(conn, account_id, balance_fen)

    return forecast


async def tenant_links(request: Request) -> TenantLinkBook:
    """The tenant links, over the event store they are recorded in."""
    return TenantLinkBook(request.app.state.platform.ledger)


async def health(request: Request) -> ChecksReadiness:
    platform = request.app.state.platform

    def check() -> tuple[bool, dict[str, Any]]:
        from adapters.health import readiness

        return readiness(platform)

    return check


async def metrics(request: Request) -> RendersMetrics:
    platform = request.app.state.platform

    def exposition() -> tuple[bytes, str]:
        from adapters.metrics import render

        return render(platform)

    return exposition


# -- the write side: services of the ledger -------------------------------------------------
Accounts = Annotated[AccountService, Depends(service("accounts"))]
Periods = Annotated[PeriodService, Depends(service("periods"))]
Cutoff = Annotated[CutoffService, Depends(service("cutoff"))]
Metering = Annotated[MeteringService, Depends(service("metering"))]
Devices = Annotated[DeviceService, Depends(service("devices"))]
Alerts = Annotated[AlertService, Depends(service("alerts"))]
Payments = Annotated[PaymentService, Depends(service("payments"))]
Property = Annotated[PropertyService, Depends(service("property"))]
Access = Annotated[AccessService, Depends(service("access"))]

# -- the read side: query objects, and catching the read models up -----------------------
Queries = Annotated[LedgerQueries, Depends(part("queries"))]
Reports = Annotated[ReportQueries, Depends(part("reports"))]
MeteringReads = Annotated[MeteringQueries, Depends(part("metering_queries"))]
AccessReads = Annotated[AccessQueries, Depends(part("access_queries"))]
DeviceReads = Annotated[DeviceQueries, Depends(part("device_queries"))]
AlertReads = Annotated[AlertQueries, Depends(part("alert_queries"))]
CollectionReport = Annotated[CollectionRows, Depends(part("collection_report"))]
ReadModels = Annotated[CatchUp, Depends(part("catch_up"))]
DaysLeft = Annotated[ForecastsDays, Depends(days_left)]

# -- policy and configuration ---------------------------------------------------------------
Approvals = Annotated[ApprovalPolicy, Depends(part("approvals"))]
Config = Annotated[Settings, Depends(part("settings"))]

# -- what only the composition root can give ------------------------------------------------
Auth = Annotated[Authenticator, Depends(part("auth"))]
EventLog = Annotated[ApplicationRecorder, Depends(event_log)]
SheetImport = Annotated[ImportsSheet, Depends(sheet_import)]
LinkState = Annotated[GatewayLink, Depends(part("link_state"))]
TenantLinks = Annotated[TenantLinkBook, Depends(tenant_links)]
Health = Annotated[ChecksReadiness, Depends(health)]
Metrics = Annotated[RendersMetrics, Depends(metrics)]
