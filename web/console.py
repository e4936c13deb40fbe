"""The staff console at ``/console``: overview, accounts, meters, approvals, reports, audit.

Each page resolves the operator from the session cookie, runs the API's own permission
check for what it shows or does, and calls the same route functions as the REST API.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import State

from adapters.auth import Authenticator, LoginThrottled
from api.deps import parse_id
from api.routes import access as access_routes
from api.routes import accounts as account_routes
from api.routes import alerts as alert_routes
from api.routes import devices as device_routes
from api.routes import ledger as ledger_routes
from api.routes import periods as period_routes
from api.routes import reports as report_routes
from api.schemas import Close, Gift, OpenAccount, Refund, Reversal, TopUp
from api.services import (
    Access,
    AccessReads,
    Accounts,
    AlertReads,
    Alerts,
    Approvals,
    Auth,
    CatchUp,
    Config,
    Cutoff,
    DaysLeft,
    DeviceReads,
    Devices,
    ForecastsDays,
    Metering,
    MeteringReads,
    Periods,
    Queries,
    ReadModels,
    Reports,
    TenantLinks,
)
from domain.access import Principal
from ledger.accounts import AccountService
from ledger.alerts import AlertService
from ledger.config import Settings
from ledger.cutoff import CutoffService
from ledger.devices import DeviceService
from ledger.metering import MeteringService
from ledger.periods import PeriodService
from ledger.tenant_links import TenantLinkBook
from projections.access.queries import AccessQueries
from projections.accounts.queries import LedgerQueries
from projections.alerts.queries import AlertQueries
from projections.devices.queries import DeviceQueries
from projections.metering.queries import MeteringQueries
from projections.report_queries import ReportQueries
from web import charts, views
from web.common import (
    Refused,
    body_of,
    check_csrf,
    csrf_token,
    form_key,
    guard,
    install_errors,
    local_time,
    render,
    secure,
    set_language,
    threaded,
)

COOKIE = "prepaid_console"
PRESETS = ("50.00", "100.00", "200.00", "500.00")


router = APIRouter()


def console_app(state: State) -> FastAPI:
    """The console's app, mounted on the API's: it shares the API app's state, where the
    dependencies of ``api/services.py`` find what they hand the pages."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state = state
    install_errors(app, "console/error.html", "/console/login")
    app.include_router(router)
    return app


# -- session -------------------------------------------------------------------------------

def session(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


async def operator(request: Request, auth: Authenticator) -> Principal:
    token = session(request)
    who = await threaded(auth.from_token, token) if token else None
    if who is None or who.kind == "tenant":
        raise Refused(401, "Your session has expired; log in again", login=True)
    request.state.principal = who
    return who


async def posted(request: Request, auth: Authenticator) -> tuple[Principal, Any]:
    who = await operator(request, auth)
    form = await request.form()
    check_csrf(auth, session(request), form)
    return who, form


def page(request: Request, auth: Authenticator, template: str, who: Principal,
         status: int = 200, **context: Any) -> HTMLResponse:
    return render(request, template, status=status, who=who,
                  csrf=csrf_token(auth, session(request) or ""),
                  can=who.can, **context)


def back_to(path: str, **params: str) -> RedirectResponse:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


# -- logging in ----------------------------------------------------------------------------

@router.get("/login")
async def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
    return render(request, "console/login.html", next=_local(next), error=None)


@router.post("/login")
async def login(request: Request, auth: Auth, access: Access) -> Response:
    form = await request.form()
    username, password = str(form.get("username", ""))[:64], \
        str(form.get("password", ""))[:128]
    target = _local(str(form.get("next", "/console/")))

    # The same lookup, throttling by name and address, and checks as /auth/token.
    address = request.client.host if request.client else "unknown"
    try:
        find = access_routes.credentials_finder(access)
        token, lifetime = await threaded(auth.login, username, password, find, address)
    except LoginThrottled:
        return render(request, "console/login.html", status=429, next=target,
                      error="Too many attempts; try again later")
    except PermissionError:
        return render(request, "console/login.html", status=401, next=target,
                      error="Wrong username or password")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, max_age=lifetime, httponly=True, samesite="strict",
                        secure=secure(request), path="/")
    return response


@router.post("/logout")
async def logout(request: Request, auth: Auth) -> Response:
    await posted(request, auth)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/lang")
async def lang(request: Request, to: str = "en", next: str = "/console/") -> Response:
    return set_language(request, to, next)


# -- overview ------------------------------------------------------------------------------

def overview_context(who: Principal, request: Request, catch_up: CatchUp,
                     queries: LedgerQueries, metering_reads: MeteringQueries,
                     metering: MeteringService, alerts: AlertService,
                     settings: Settings) -> dict[str, Any]:
    q = request.query_params
    catch_up()
    every = views.tiles(who, queries, metering_reads, metering, alerts,
                        settings.page_size_max)
    shown = views.filtered(every, building=q.get("building", ""),
                           floor=q.get("floor", ""), q=q.get("q", ""),
                           state=q.get("state", ""), site=q.get("site", ""))
    sites = metering_reads.list_sites(
        frozenset() if who.account_ids is not None else who.site_ids)
    return {"tiles": shown, "counts": views.counts(shown), "states": views.STATES,
            "buildings": sorted({t["building"] for t in every if t["building"]}),
            "floors": sorted({t["floor"] for t in every if t["floor"]}),
            "sites": sites, "query": dict(q), "query_string": request.url.query}


@router.get("/")
async def overview(request: Request, auth: Auth, catch_up: ReadModels, queries: Queries,
                   metering_reads: MeteringReads, metering: Metering, alerts: Alerts,
                   settings: Config) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "accounts.read", "list")
    context = await threaded(overview_context, who, request, catch_up, queries,
                             metering_reads, metering, alerts, settings)
    if len(context["tiles"]) == 1 and request.query_params.get("q") and \
            context["tiles"][0]["account_id"] and request.query_params.get("go"):
        return RedirectResponse(f"/console/accounts/{context['tiles'][0]['account_id']}",
                                status_code=303)
    return page(request, auth, "console/overview.html", who, **context)


@router.get("/tiles")
async def tiles_fragment(request: Request, auth: Auth, catch_up: ReadModels,
                         queries: Queries, metering_reads: MeteringReads,
                         metering: Metering, alerts: Alerts,
                         settings: Config) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "accounts.read", "list")
    context = await threaded(overview_context, who, request, catch_up, queries,
                             metering_reads, metering, alerts, settings)
    return page(request, auth, "console/_tiles.html", who, **context)


@router.post("/accounts")
async def open_account(request: Request, auth: Auth, accounts: Accounts,
                       catch_up: ReadModels) -> Response:
    who, form = await posted(request, auth)
    await guard(request, who, "accounts.open", "list")
    key = form_key(form)
    try:
        body = OpenAccount(name=str(form.get("name", "")),
                           unit=str(form.get("unit", "")) or None,
                           site_id=str(form.get("site_id", "")) or None,
                           phone=str(form.get("phone", "")) or None)
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    answer = await threaded(account_routes.open_account, request, body, accounts, catch_up,
                            who.actor(request.state.request_id), key)
    return back_to(f"/console/accounts/{body_of(answer)['id']}")


# -- accounts ------------------------------------------------------------------------------

def account_context(who: Principal, account_id: str, *, accounts: AccountService,
                    cutoff: CutoffService, catch_up: CatchUp, days_left: ForecastsDays,
                    links: TenantLinkBook, queries: LedgerQueries,
                    metering_reads: MeteringQueries, access_reads: AccessQueries,
                    alert_reads: AlertQueries, metering: MeteringService,
                    alerts: AlertService, settings: Settings) -> dict[str, Any]:
    the_id = parse_id(account_id, "account")
    account = account_routes.get_account(account_id, accounts, cutoff)
    catch_up()
    aggregate = accounts.get_account(the_id)
    wallets = []
    for wallet, fen in aggregate.balances_fen.items():
        wallets.append({"wallet": wallet, "balance": fen, "days_left":
                        days_left(the_id, fen) if wallet != "property_fee" else None})
    link = links.current(the_id)
    meters = metering_reads.list_meters(limit=50, cursor=None, account_id=account_id).items
    statement = views.statement_tail(queries, account_id, settings.page_size_max)
    # Requests about this account: on the account itself, or on one of its entries.
    targets = {account_id} | {row["transaction_id"] for row in statement}
    approvals = [a for a in access_reads.approvals(
        status="pending", site_ids=who.site_ids, limit=100) if a["target"] in targets]
    return {"account": account, "wallets": wallets,
            "zone": views.zone_of(metering, account["site_id"]),
            "statement": statement,
            "levels": views.thresholds(alerts, account_id),
            "link": link, "meters": meters, "presets": PRESETS,
            "pending": approvals,
            "alerts": alert_reads.alerts(level=None, account_id=account_id, limit=10,
                                         account_ids=None, site_ids=who.site_ids)}


@router.get("/accounts/{account_id}")
async def account_page(request: Request, account_id: str, auth: Auth, accounts: Accounts,
                       cutoff: Cutoff, catch_up: ReadModels, days_left: DaysLeft,
                       links: TenantLinks, queries: Queries, metering_reads: MeteringReads,
                       access_reads: AccessReads, alert_reads: AlertReads,
                       metering: Metering, alerts: Alerts, settings: Config) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "accounts.read")
    context = await threaded(
        account_context, who, account_id, accounts=accounts, cutoff=cutoff,
        catch_up=catch_up, days_left=days_left, links=links, queries=queries,
        metering_reads=metering_reads, access_reads=access_reads, alert_reads=alert_reads,
        metering=metering, alerts=alerts, settings=settings)
    q = request.query_params
    link_url = None
    if context["link"] is not None and context["link"].active and who.can("accounts.open"):
        from web.tenant import link_token

        link_url = str(request.base_url).rstrip("/") + "/t/l/" + link_token(
            auth, account_id, context["link"].link_version)
    return page(request, auth, "console/account.html", who, done=q.get("done"),
                replayed=q.get("replayed"), waiting=q.get("waiting"),
                link_url=link_url, link_qr=charts.qr_svg(link_url) if link_url else None,
                **context)


async def money(request: Request, auth: Authenticator, account_id: str, permission: str,
                build, call):
    who, form = await posted(request, auth)
    await guard(request, who, permission)
    key = form_key(form)
    try:
        body = build(form)
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    answer = await threaded(call, request, body, who.actor(request.state.request_id), key)
    data = body_of(answer)
    if answer.status_code == 202:
        return back_to(f"/console/accounts/{account_id}", waiting=data["approval_id"])
    return back_to(f"/console/accounts/{account_id}", done=data.get("transaction_id", ""),
                   replayed="1" if answer.headers.get("Idempotent-Replayed") else "")


def amount_of(form) -> str:
    return str(form.get("preset") or form.get("amount") or "")


@router.post("/accounts/{account_id}/top-up")
async def top_up(request: Request, account_id: str, auth: Auth, accounts: Accounts,
                 catch_up: ReadModels) -> Response:
    return await money(
        request, auth, account_id, "money.top_up",
        lambda f: TopUp(amount=amount_of(f), channel=str(f.get("channel", "cash")),
                        wallet=str(f.get("wallet", "electricity")),
                        reference=str(f.get("reference", "")) or None),
        lambda r, body, actor, key: account_routes.top_up(
            account_id, body, accounts, catch_up, actor, key))


@router.post("/accounts/{account_id}/gift")
async def gift(request: Request, account_id: str, auth: Auth, accounts: Accounts,
               catch_up: ReadModels) -> Response:
    return await money(
        request, auth, account_id, "money.top_up",
        lambda f: Gift(amount=amount_of(f), reason=str(f.get("reason", "")),
                       wallet=str(f.get("wallet", "electricity"))),
        lambda r, body, actor, key: account_routes.gift(
            account_id, body, accounts, catch_up, actor, key))


@router.post("/accounts/{account_id}/refund")
async def refund(request: Request, account_id: str, auth: Auth, accounts: Accounts,
                 approvals: Approvals, access: Access, catch_up: ReadModels) -> Response:
    return await money(
        request, auth, account_id, "money.refund",
        lambda f: Refund(amount=amount_of(f), channel=str(f.get("channel", "cash")),
                         reason=str(f.get("reason", "")) or None,
                         wallet=str(f.get("wallet", "electricity"))),
        lambda r, body, actor, key: account_routes.refund(
            account_id, body, accounts, approvals, access, catch_up, actor, key))


@router.post("/accounts/{account_id}/close")
async def close(request: Request, account_id: str, auth: Auth, accounts: Accounts,
                catch_up: ReadModels) -> Response:
    return await money(
        request, auth, account_id, "accounts.open",
        lambda f: Close(settlement=str(f.get("settlement", "refund")),
                        reason=str(f.get("reason", "")) or None,
                        channel=str(f.get("channel", "cash"))),
        lambda r, body, actor, key: account_routes.close(
            account_id, body, accounts, catch_up, actor, key))


@router.post("/accounts/{account_id}/alert-levels")
async def alert_levels(request: Request, account_id: str, auth: Auth,
                       alerts: Alerts) -> Response:
    who, form = await posted(request, auth)
    await guard(request, who, "accounts.open")
    try:
        body = alert_routes.ThresholdsIn(wallet=str(form.get("wallet", "electricity")),
                                         alarm1=str(form.get("alarm1", "")),
                                         alarm2=str(form.get("alarm2", "")))
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    await threaded(alert_routes.set_thresholds, account_id, body, alerts,
                   who.actor(request.state.request_id))
    return back_to(f"/console/accounts/{account_id}")


@router.post("/accounts/{account_id}/link")
async def tenant_link(request: Request, account_id: str, auth: Auth,
                      links: TenantLinks) -> Response:
    who, form = await posted(request, auth)
    await guard(request, who, "accounts.open")
    the_id = parse_id(account_id, "account")
    actor = who.actor(request.state.request_id)
    if form.get("action") == "revoke":
        await threaded(links.revoke, the_id, actor)
    else:
        await threaded(links.issue, the_id, actor)
    return back_to(f"/console/accounts/{account_id}")


@router.post("/transactions/{transaction_id}/reverse")
async def reverse(request: Request, transaction_id: str, auth: Auth, accounts: Accounts,
                  approvals: Approvals, access: Access, catch_up: ReadModels) -> Response:
    who, form = await posted(request, auth)
    await guard(request, who, "money.reverse")
    key = form_key(form)
    try:
        body = Reversal(reason=str(form.get("reason", "")))
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    transaction = await threaded(accounts.get_transaction,
                                 parse_id(transaction_id, "transaction"))
    answer = await threaded(ledger_routes.reverse, transaction_id, body, accounts, approvals,
                            access, catch_up, who.actor(request.state.request_id), key)
    data = body_of(answer)
    target = f"/console/accounts/{transaction.account_id}"
    if answer.status_code == 202:
        return back_to(target, waiting=data["approval_id"])
    return back_to(target, done=data["transaction_id"])


@router.get("/transactions/{transaction_id}/receipt")
async def receipt(request: Request, transaction_id: str, auth: Auth, accounts: Accounts,
                  metering: Metering, access_reads: AccessReads, settings: Config,
                  format: str = "html") -> Response:
    who = await operator(request, auth)
    await guard(request, who, "accounts.read")
    if format not in ("html", "pdf"):
        raise Refused(404, "Not found")
    return await threaded(ledger_routes.receipt, transaction_id, accounts, metering,
                          access_reads, settings, format)


# -- meters --------------------------------------------------------------------------------

def meter_context(meter_id: str, *, catch_up: CatchUp, metering: MeteringService,
                  metering_reads: MeteringQueries, device_reads: DeviceQueries,
                  cutoff: CutoffService, devices: DeviceService) -> dict[str, Any]:
    catch_up()
    state = device_routes.meter_state(meter_id, metering, metering_reads, device_reads,
                                      cutoff)
    meter = metering.get_meter(parse_id(meter_id, "meter"))
    readings = metering_reads.readings(str(meter.id), limit=60, cursor=None, from_=None,
                                       to=None, newest_first=True).items
    readings = list(reversed(readings))
    zone = views.zone_of(metering, meter.site_id)
    steps = []
    for before, after in zip(readings, readings[1:]):
        steps.append((local_time(after["read_at"], zone)[5:],
                      max(after["total"] - before["total"], 0) / 100))
    commands = [{**c, **_command(c["id"], devices)} for c in state["recent_commands"]]
    return {"state": state, "meter": meter, "readings": readings[-20:],
            "zone": zone,
            "chart": charts.bars(steps, unit="kWh", label="consumption"),
            "commands": commands}


def _command(command_id: str, devices: DeviceService) -> dict[str, Any]:
    full = device_routes.get_command(command_id, devices)
    return {"history": [e.get("type", "") for e in full["history"]],
            "last_error": full["last_error"]}


@router.get("/meters/{meter_id}")
async def meter_page(request: Request, meter_id: str, auth: Auth, catch_up: ReadModels,
                     metering: Metering, metering_reads: MeteringReads,
                     device_reads: DeviceReads, cutoff: Cutoff,
                     devices: Devices) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "meters.read")
    context = await threaded(meter_context, meter_id, catch_up=catch_up, metering=metering,
                             metering_reads=metering_reads, device_reads=device_reads,
                             cutoff=cutoff, devices=devices)
    return page(request, auth, "console/meter.html", who,
                sent=request.query_params.get("sent"), **context)


@router.get("/meters/{meter_id}/commands")
async def meter_commands(request: Request, meter_id: str, auth: Auth, catch_up: ReadModels,
                         metering: Metering, metering_reads: MeteringReads,
                         device_reads: DeviceReads, cutoff: Cutoff,
                         devices: Devices) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "meters.read")
    context = await threaded(meter_context, meter_id, catch_up=catch_up, metering=metering,
                             metering_reads=metering_reads, device_reads=device_reads,
                             cutoff=cutoff, devices=devices)
    return page(request, auth, "console/_commands.html", who, **context)


@router.post("/meters/{meter_id}/command")
async def meter_command(request: Request, meter_id: str, auth: Auth, devices: Devices,
                        metering: Metering, approvals: Approvals, access: Access,
                        catch_up: ReadModels) -> Response:
    who, form = await posted(request, auth)
    action = str(form.get("action", ""))
    await guard(request, who, "devices.keep_power" if action == "keep_power"
                else "devices.command")
    key = form_key(form)
    try:
        body = device_routes.CommandIn(action=action,
                                       reason=str(form.get("reason", "")) or None)
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    answer = await threaded(device_routes.command, meter_id, body, devices, metering,
                            approvals, access, catch_up, who,
                            who.actor(request.state.request_id), key)
    data = body_of(answer)
    return back_to(f"/console/meters/{meter_id}", sent=data.get("id") or
                   data.get("approval_id", ""))


# -- approvals -----------------------------------------------------------------------------

@router.get("/approvals")
async def approvals(request: Request, auth: Auth, catch_up: ReadModels,
                    access_reads: AccessReads) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "approvals.read", "list")

    def load():
        catch_up()
        return {"pending": access_reads.approvals(
                    status="pending", site_ids=who.site_ids, limit=200),
                "decided": [a for a in access_reads.approvals(
                    status=None, site_ids=who.site_ids, limit=50)
                    if a["status"] != "pending"]}

    return page(request, auth, "console/approvals.html", who, **(await threaded(load)))


@router.post("/approvals/{approval_id}/{decision}")
async def decide(request: Request, approval_id: str, decision: str, auth: Auth,
                 access: Access, catch_up: ReadModels) -> Response:
    who, form = await posted(request, auth)
    if decision not in ("approve", "reject"):
        raise Refused(404, "Not found")
    await guard(request, who, "approvals.decide")
    body = access_routes.Decision(note=str(form.get("note", ""))[:1000] or None)
    call = access_routes.approve if decision == "approve" else access_routes.reject
    await threaded(call, approval_id, access=access, catch_up=catch_up, who=who,
                   acting=who.actor(request.state.request_id), body=body)
    return back_to("/console/approvals")


# -- reports -------------------------------------------------------------------------------

class ReportSources(NamedTuple):
    """What the reports of the reports page run over."""

    reports: ReportQueries
    periods: PeriodService
    metering_reads: MeteringQueries
    metering: MeteringService
    catch_up: CatchUp


@router.get("/reports")
async def reports(request: Request, auth: Auth, reports: Reports, periods: Periods,
                  metering_reads: MeteringReads, metering: Metering,
                  catch_up: ReadModels) -> Response:
    who = await operator(request, auth)
    await guard(request, who, "reports.read", "global")
    q = request.query_params
    name = q.get("name", "sales-day")
    fmt = q.get("format", "html")
    if name not in REPORTS or fmt not in ("html", "csv", "xlsx"):
        raise Refused(404, "Not found")
    sources = ReportSources(reports, periods, metering_reads, metering, catch_up)
    answer = await threaded(REPORTS[name], request, sources, q,
                            "json" if fmt == "html" else fmt)
    if fmt != "html":
        return answer
    data = body_of(answer)
    rows = data.get("items", [])
    chart = None
    if name.startswith("sales"):
        totals: dict[str, float] = {}
        for row in rows:
            totals[row["period"]] = totals.get(row["period"], 0) + float(row["net_paid"])
        chart = charts.bars(sorted(totals.items()), unit="yuan", label=name)
    elif name == "energy":
        totals = {}
        for row in rows:
            totals[row["period"]] = totals.get(row["period"], 0) + float(row["energy_kwh"])
        chart = charts.bars(sorted(totals.items()), unit="kWh", label=name)
    columns = list(rows[0]) if rows else []
    export = {f: request.url.include_query_params(format=f) for f in ("csv", "xlsx")}
    return page(request, auth, "console/reports.html", who, name=name, rows=rows,
                columns=columns, chart=chart, export=export, names=list(REPORTS),
                query=dict(q))


# -- audit ---------------------------------------------------------------------------------

@router.get("/audit")
async def audit(request: Request, auth: Auth, access_reads: AccessReads,
                catch_up: ReadModels) -> HTMLResponse:
    who = await operator(request, auth)
    await guard(request, who, "audit.read", "global")
    q = request.query_params
    kind = q.get("actor_kind") or None
    if kind not in (None, "operator", "tenant", "api_key", "console"):
        kind = None
    data = await threaded(
        access_routes.audit_log, access_reads, catch_up, 100,
        q.get("cursor") or None,
        (q.get("actor_id") or None), kind, (q.get("action") or "")[:80] or None,
        (q.get("aggregate_id") or "")[:36] or None, None, None, None)
    return page(request, auth, "console/audit.html", who, items=data["items"],
                next_cursor=data["next_cursor"], query=dict(q))


def _local(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") \
        and "\\" not in target else "/console/"


def _sales(period: str):
    def run(request, s: ReportSources, q, fmt):
        return report_routes.sales(request, s.reports, s.catch_up, period=period, from_=None,
                                   to=None, known_at=None, format=fmt)
    return run


def _month(q) -> str:
    import re

    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    month = q.get("month") or datetime.now(timezone.utc).astimezone(
        ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    if not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", month):
        raise Refused(422, "Month: YYYY-MM")
    return month


REPORTS = {
    "sales-day": _sales("day"),
    "sales-month": _sales("month"),
    "account-periods": lambda request, s, q, fmt: report_routes.account_periods(
        request, s.reports, s.periods, s.catch_up, month=_month(q), known_at=None,
        format=fmt),
    "energy": lambda request, s, q, fmt: report_routes.energy(
        request, s.metering_reads, s.catch_up, group_by="building",
        period=q.get("period") if q.get("period") in ("day", "month") else "day",
        from_=None, to=None, site_id=None, format=fmt),
    "alarms": lambda request, s, q, fmt: period_routes.alarms(request, s.reports, s.catch_up,
                                                              format=fmt),
    "offline": lambda request, s, q, fmt: period_routes.offline(request, s.reports,
                                                                s.catch_up, format=fmt),
    "losses": lambda request, s, q, fmt: period_routes.losses(
        request, s.reports, s.metering, s.catch_up, month=_month(q),
        master_meter_id=q.get("master_meter_id", ""), format=fmt),
}
