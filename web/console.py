"""The staff console at ``/console``: overview, accounts, meters, approvals, reports, audit.

Each page resolves the operator from the session cookie, runs the API's own permission
check for what it shows or does, and calls the same route functions as the REST API.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from adapters.auth import LoginThrottled
from api.deps import parse_id
from api.routes import access as access_routes
from api.routes import accounts as account_routes
from api.routes import alerts as alert_routes
from api.routes import devices as device_routes
from api.routes import ledger as ledger_routes
from api.routes import periods as period_routes
from api.routes import reports as report_routes
from api.schemas import Close, Gift, OpenAccount, Refund, Reversal, TopUp
from domain.access import Principal
from ledger import tenant_links
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


def console_app(platform) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.platform = platform
    install_errors(app, "console/error.html", "/console/login")

    # -- session -------------------------------------------------------------------------

    def session(request: Request) -> str | None:
        return request.cookies.get(COOKIE)

    async def operator(request: Request) -> Principal:
        token = session(request)
        who = await threaded(platform.auth.from_token, token) if token else None
        if who is None or who.kind == "tenant":
            raise Refused(401, "Your session has expired; log in again", login=True)
        request.state.principal = who
        return who

    async def posted(request: Request) -> tuple[Principal, Any]:
        who = await operator(request)
        form = await request.form()
        check_csrf(request, session(request), form)
        return who, form

    def page(request: Request, template: str, who: Principal, status: int = 200,
             **context: Any) -> HTMLResponse:
        return render(request, template, status=status, who=who,
                      csrf=csrf_token(request, session(request) or ""),
                      can=who.can, **context)

    def back_to(path: str, **params: str) -> RedirectResponse:
        from urllib.parse import urlencode

        query = urlencode({k: v for k, v in params.items() if v})
        return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)

    # -- logging in ------------------------------------------------------------------------

    @app.get("/login")
    async def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
        return render(request, "console/login.html", next=_local(next), error=None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username, password = str(form.get("username", ""))[:64], \
            str(form.get("password", ""))[:128]
        target = _local(str(form.get("next", "/console/")))

        # The same lookup, throttling by name and address, and checks as /auth/token.
        address = request.client.host if request.client else "unknown"
        try:
            find = access_routes.credentials_finder(platform.ledger.access)
            token, lifetime = await threaded(platform.auth.login, username, password, find,
                                             address)
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

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await posted(request)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/lang")
    async def lang(request: Request, to: str = "en", next: str = "/console/") -> Response:
        return set_language(request, to, next)

    # -- overview --------------------------------------------------------------------------

    def overview_context(who: Principal, request: Request) -> dict[str, Any]:
        q = request.query_params
        platform.catch_up()
        every = views.tiles(platform, who)
        shown = views.filtered(every, building=q.get("building", ""),
                               floor=q.get("floor", ""), q=q.get("q", ""),
                               state=q.get("state", ""), site=q.get("site", ""))
        sites = platform.metering_queries.list_sites(
            frozenset() if who.account_ids is not None else who.site_ids)
        return {"tiles": shown, "counts": views.counts(shown), "states": views.STATES,
                "buildings": sorted({t["building"] for t in every if t["building"]}),
                "floors": sorted({t["floor"] for t in every if t["floor"]}),
                "sites": sites, "query": dict(q), "query_string": request.url.query}

    @app.get("/")
    async def overview(request: Request) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "accounts.read", "list")
        context = await threaded(overview_context, who, request)
        if len(context["tiles"]) == 1 and request.query_params.get("q") and \
                context["tiles"][0]["account_id"] and request.query_params.get("go"):
            return RedirectResponse(f"/console/accounts/{context['tiles'][0]['account_id']}",
                                    status_code=303)
        return page(request, "console/overview.html", who, **context)

    @app.get("/tiles")
    async def tiles_fragment(request: Request) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "accounts.read", "list")
        context = await threaded(overview_context, who, request)
        return page(request, "console/_tiles.html", who, **context)

    @app.post("/accounts")
    async def open_account(request: Request) -> Response:
        who, form = await posted(request)
        await guard(request, who, "accounts.open", "list")
        key = form_key(form)
        try:
            body = OpenAccount(name=str(form.get("name", "")),
                               unit=str(form.get("unit", "")) or None,
                               site_id=str(form.get("site_id", "")) or None,
                               phone=str(form.get("phone", "")) or None)
        except ValidationError as error:
            raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
        answer = await threaded(account_routes.open_account, request, body,
                                platform.ledger.accounts, platform.catch_up,
                                who.actor(request.state.request_id), key)
        return back_to(f"/console/accounts/{body_of(answer)['id']}")

    # -- accounts --------------------------------------------------------------------------

    def account_context(who: Principal, account_id: str) -> dict[str, Any]:
        the_id = parse_id(account_id, "account")
        account = account_routes.get_account(account_id, platform.ledger.accounts,
                                             platform.ledger.cutoff)
        platform.catch_up()
        aggregate = platform.ledger.get_account(the_id)
        wallets = []
        for wallet, fen in aggregate.balances_fen.items():
            wallets.append({"wallet": wallet, "balance": fen, "days_left":
                            views.days_left(platform, account_id, fen)
                            if wallet != "property_fee" else None})
        link = tenant_links.current(platform.ledger, the_id)
        meters = platform.metering_queries.list_meters(limit=50, cursor=None,
                                                       account_id=account_id).items
        statement = views.statement_tail(platform, account_id)
        # Requests about this account: on the account itself, or on one of its entries.
        targets = {account_id} | {row["transaction_id"] for row in statement}
        approvals = [a for a in platform.access_queries.approvals(
            status="pending", site_ids=who.site_ids, limit=100) if a["target"] in targets]
        return {"account": account, "wallets": wallets,
                "zone": views.zone_of(platform, account["site_id"]),
                "statement": statement,
                "levels": views.thresholds(platform, account_id),
                "link": link, "meters": meters, "presets": PRESETS,
                "pending": approvals,
                "alerts": platform.alert_queries.alerts(level=None, account_id=account_id,
                                                        limit=10, account_ids=None,
                                                        site_ids=who.site_ids)}

    @app.get("/accounts/{account_id}")
    async def account_page(request: Request, account_id: str) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "accounts.read")
        context = await threaded(account_context, who, account_id)
        q = request.query_params
        link_url = None
        if context["link"] is not None and context["link"].active and who.can("accounts.open"):
            from web.tenant import link_token

            link_url = str(request.base_url).rstrip("/") + "/t/l/" + link_token(
                request, account_id, context["link"].link_version)
        return page(request, "console/account.html", who, done=q.get("done"),
                    replayed=q.get("replayed"), waiting=q.get("waiting"),
                    link_url=link_url, link_qr=charts.qr_svg(link_url) if link_url else None,
                    **context)

    async def money(request: Request, account_id: str, permission: str, build, call):
        who, form = await posted(request)
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

    @app.post("/accounts/{account_id}/top-up")
    async def top_up(request: Request, account_id: str) -> Response:
        return await money(
            request, account_id, "money.top_up",
            lambda f: TopUp(amount=amount_of(f), channel=str(f.get("channel", "cash")),
                            wallet=str(f.get("wallet", "electricity")),
                            reference=str(f.get("reference", "")) or None),
            lambda r, body, actor, key: account_routes.top_up(
                account_id, body, platform.ledger.accounts, platform.catch_up, actor, key))

    @app.post("/accounts/{account_id}/gift")
    async def gift(request: Request, account_id: str) -> Response:
        return await money(
            request, account_id, "money.top_up",
            lambda f: Gift(amount=amount_of(f), reason=str(f.get("reason", "")),
                           wallet=str(f.get("wallet", "electricity"))),
            lambda r, body, actor, key: account_routes.gift(
                account_id, body, platform.ledger.accounts, platform.catch_up, actor, key))

    @app.post("/accounts/{account_id}/refund")
    async def refund(request: Request, account_id: str) -> Response:
        return await money(
            request, account_id, "money.refund",
            lambda f: Refund(amount=amount_of(f), channel=str(f.get("channel", "cash")),
                             reason=str(f.get("reason", "")) or None,
                             wallet=str(f.get("wallet", "electricity"))),
            lambda r, body, actor, key: account_routes.refund(
                account_id, body, platform.ledger.accounts, platform.approvals,
                platform.ledger.access, platform.catch_up, actor, key))

    @app.post("/accounts/{account_id}/close")
    async def close(request: Request, account_id: str) -> Response:
        return await money(
            request, account_id, "accounts.open",
            lambda f: Close(settlement=str(f.get("settlement", "refund")),
                            reason=str(f.get("reason", "")) or None,
                            channel=str(f.get("channel", "cash"))),
            lambda r, body, actor, key: account_routes.close(
                account_id, body, platform.ledger.accounts, platform.catch_up, actor, key))

    @app.post("/accounts/{account_id}/alert-levels")
    async def alert_levels(request: Request, account_id: str) -> Response:
        who, form = await posted(request)
        await guard(request, who, "accounts.open")
        try:
            body = alert_routes.ThresholdsIn(wallet=str(form.get("wallet", "electricity")),
                                             alarm1=str(form.get("alarm1", "")),
                                             alarm2=str(form.get("alarm2", "")))
        except ValidationError as error:
            raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
        await threaded(alert_routes.set_thresholds, account_id, body, platform.ledger.alerts,
                       who.actor(request.state.request_id))
        return back_to(f"/console/accounts/{account_id}")

    @app.post("/accounts/{account_id}/link")
    async def tenant_link(request: Request, account_id: str) -> Response:
        who, form = await posted(request)
        await guard(request, who, "accounts.open")
        the_id = parse_id(account_id, "account")
        actor = who.actor(request.state.request_id)
        if form.get("action") == "revoke":
            await threaded(tenant_links.revoke, platform.ledger, the_id, actor)
        else:
            await threaded(tenant_links.issue, platform.ledger, the_id, actor)
        return back_to(f"/console/accounts/{account_id}")

    @app.post("/transactions/{transaction_id}/reverse")
    async def reverse(request: Request, transaction_id: str) -> Response:
        who, form = await posted(request)
        await guard(request, who, "money.reverse")
        key = form_key(form)
        try:
            body = Reversal(reason=str(form.get("reason", "")))
        except ValidationError as error:
            raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
        transaction = await threaded(platform.ledger.get_transaction,
                                     parse_id(transaction_id, "transaction"))
        answer = await threaded(ledger_routes.reverse, transaction_id, body,
                                platform.ledger.accounts, platform.approvals,
                                platform.ledger.access, platform.catch_up,
                                who.actor(request.state.request_id), key)
        data = body_of(answer)
        target = f"/console/accounts/{transaction.account_id}"
        if answer.status_code == 202:
            return back_to(target, waiting=data["approval_id"])
        return back_to(target, done=data["transaction_id"])

    @app.get("/transactions/{transaction_id}/receipt")
    async def receipt(request: Request, transaction_id: str, format: str = "html") -> Response:
        who = await operator(request)
        await guard(request, who, "accounts.read")
        if format not in ("html", "pdf"):
            raise Refused(404, "Not found")
        return await threaded(ledger_routes.receipt, transaction_id, platform.ledger.accounts,
                              platform.ledger.metering, platform.access_queries,
                              platform.settings, format)

    # -- meters ----------------------------------------------------------------------------

    def meter_context(meter_id: str) -> dict[str, Any]:
        platform.catch_up()
        state = device_routes.meter_state(meter_id, platform.ledger.metering,
                                          platform.metering_queries, platform.device_queries,
                                          platform.ledger.cutoff)
        meter = platform.ledger.get_meter(parse_id(meter_id, "meter"))
        readings = platform.metering_queries.readings(str(meter.id), limit=60, cursor=None,
                                                      from_=None, to=None,
                                                      newest_first=True).items
        readings = list(reversed(readings))
        zone = views.zone_of(platform, meter.site_id)
        steps = []
        for before, after in zip(readings, readings[1:]):
            steps.append((local_time(after["read_at"], zone)[5:],
                          max(after["total"] - before["total"], 0) / 100))
        commands = [{**c, **_command(c["id"])} for c in state["recent_commands"]]
        return {"state": state, "meter": meter, "readings": readings[-20:],
                "zone": zone,
                "chart": charts.bars(steps, unit="kWh", label="consumption"),
                "commands": commands}

    def _command(command_id: str) -> dict[str, Any]:
        full = device_routes.get_command(command_id, platform.ledger.devices)
        return {"history": [e.get("type", "") for e in full["history"]],
                "last_error": full["last_error"]}

    @app.get("/meters/{meter_id}")
    async def meter_page(request: Request, meter_id: str) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "meters.read")
        context = await threaded(meter_context, meter_id)
        return page(request, "console/meter.html", who, sent=request.query_params.get("sent"),
                    **context)

    @app.get("/meters/{meter_id}/commands")
    async def meter_commands(request: Request, meter_id: str) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "meters.read")
        context = await threaded(meter_context, meter_id)
        return page(request, "console/_commands.html", who, **context)

    @app.post("/meters/{meter_id}/command")
    async def meter_command(request: Request, meter_id: str) -> Response:
        who, form = await posted(request)
        action = str(form.get("action", ""))
        await guard(request, who, "devices.keep_power" if action == "keep_power"
                    else "devices.command")
        key = form_key(form)
        try:
            body = device_routes.CommandIn(action=action,
                                           reason=str(form.get("reason", "")) or None)
        except ValidationError as error:
            raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
        answer = await threaded(device_routes.command, meter_id, body,
                                platform.ledger.devices, platform.ledger.metering,
                                platform.approvals, platform.ledger.access, platform.catch_up,
                                who, who.actor(request.state.request_id), key)
        data = body_of(answer)
        return back_to(f"/console/meters/{meter_id}", sent=data.get("id") or
                       data.get("approval_id", ""))

    # -- approvals -------------------------------------------------------------------------

    @app.get("/approvals")
    async def approvals(request: Request) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "approvals.read", "list")

        def load():
            platform.catch_up()
            return {"pending": platform.access_queries.approvals(
                        status="pending", site_ids=who.site_ids, limit=200),
                    "decided": [a for a in platform.access_queries.approvals(
                        status=None, site_ids=who.site_ids, limit=50)
                        if a["status"] != "pending"]}

        return page(request, "console/approvals.html", who, **(await threaded(load)))

    @app.post("/approvals/{approval_id}/{decision}")
    async def decide(request: Request, approval_id: str, decision: str) -> Response:
        who, form = await posted(request)
        if decision not in ("approve", "reject"):
            raise Refused(404, "Not found")
        await guard(request, who, "approvals.decide")
        body = access_routes.Decision(note=str(form.get("note", ""))[:1000] or None)
        call = access_routes.approve if decision == "approve" else access_routes.reject
        await threaded(call, approval_id, access=platform.ledger.access,
                       catch_up=platform.catch_up, who=who,
                       acting=who.actor(request.state.request_id), body=body)
        return back_to("/console/approvals")

    # -- reports ---------------------------------------------------------------------------

    @app.get("/reports")
    async def reports(request: Request) -> Response:
        who = await operator(request)
        await guard(request, who, "reports.read", "global")
        q = request.query_params
        name = q.get("name", "sales-day")
        fmt = q.get("format", "html")
        if name not in REPORTS or fmt not in ("html", "csv", "xlsx"):
            raise Refused(404, "Not found")
        answer = await threaded(REPORTS[name], request, platform, q,
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
        return page(request, "console/reports.html", who, name=name, rows=rows,
                    columns=columns, chart=chart, export=export, names=list(REPORTS),
                    query=dict(q))

    # -- audit -----------------------------------------------------------------------------

    @app.get("/audit")
    async def audit(request: Request) -> HTMLResponse:
        who = await operator(request)
        await guard(request, who, "audit.read", "global")
        q = request.query_params
        kind = q.get("actor_kind") or None
        if kind not in (None, "operator", "tenant", "api_key", "console"):
            kind = None
        data = await threaded(
            access_routes.audit_log, platform.access_queries, platform.catch_up, 100,
            q.get("cursor") or None,
            (q.get("actor_id") or None), kind, (q.get("action") or "")[:80] or None,
            (q.get("aggregate_id") or "")[:36] or None, None, None, None)
        return page(request, "console/audit.html", who, items=data["items"],
                    next_cursor=data["next_cursor"], query=dict(q))

    return app


def _local(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") \
        and "\\" not in target else "/console/"


def _sales(period: str):
    def run(request, p, q, fmt):
        return report_routes.sales(request, p.reports, p.catch_up, period=period, from_=None,
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
    "account-periods": lambda request, p, q, fmt: report_routes.account_periods(
        request, p.reports, p.ledger.periods, p.catch_up, month=_month(q), known_at=None,
        format=fmt),
    "energy": lambda request, p, q, fmt: report_routes.energy(
        request, p.metering_queries, p.catch_up, group_by="building",
        period=q.get("period") if q.get("period") in ("day", "month") else "day",
        from_=None, to=None, site_id=None, format=fmt),
    "alarms": lambda request, p, q, fmt: period_routes.alarms(request, p.reports, p.catch_up,
                                                              format=fmt),
    "offline": lambda request, p, q, fmt: period_routes.offline(request, p.reports,
                                                                p.catch_up, format=fmt),
    "losses": lambda request, p, q, fmt: period_routes.losses(
        request, p.reports, p.ledger.metering, p.catch_up, month=_month(q),
        master_meter_id=q.get("master_meter_id", ""), format=fmt),
}
