"""The tenant's phone page at ``/t/``: balances, usage, statement, alerts, receipts, paying.

Reached by a tenant login, or by the signed link of one account (``/t/l/<token>``,
printed as a QR code). The link names the account and the link version recorded for it
(``domain/tenant_link.py``), signed with the platform's key: revoking or reissuing it
records a new version, and the old link opens nothing from that moment on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from Crypto.Cipher import AES
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import State

from adapters.auth import Authenticator, LoginThrottled
from adapters.payments.config import PaymentSettings
from adapters.payments.oauth import WechatOAuth, masked, oauth_from
from adapters.payments.providers import ProviderError
from api.deps import parse_id
from api.routes import accounts as account_routes
from api.routes import ledger as ledger_routes
from api.routes import payments as payment_routes
from api.services import (
    Access,
    AccessReads,
    Accounts,
    AlertReads,
    Auth,
    CatchUp,
    Config,
    Cutoff,
    DaysLeft,
    ForecastsDays,
    Metering,
    MeteringReads,
    Payments,
    Queries,
    ReadModels,
    TenantLinks,
)
from domain.access import Principal, Role, permissions_of
from ledger.accounts import AccountService
from ledger.config import Settings
from ledger.cutoff import CutoffService
from ledger.metering import MeteringService
from ledger.payments import PaymentService
from ledger.tenant_links import TenantLinkBook
from projections.accounts.queries import LedgerQueries
from projections.alerts.queries import AlertQueries
from projections.metering.queries import MeteringQueries
from web import charts, views
from web.common import (
    Refused,
    body_of,
    check_csrf,
    csrf_token,
    form_key,
    guard,
    install_errors,
    mac,
    render,
    secure,
    set_language,
    signing_key,
    threaded,
)

log = logging.getLogger(__name__)

LOGIN_COOKIE = "prepaid_tenant"
LINK_COOKIE = "prepaid_tenant_link"
AMOUNTS = ("20.00", "50.00", "100.00", "200.00")
FINAL = ("credited", "closed", "expired", "failed", "refunded")
# Inside WeChat's browser: the payer's openid (sealed, bound to the session), and a mark
# that the authorisation failed a moment ago (the page then offers the QR code).
OPENID_COOKIE = "prepaid_wx_openid"
OAUTH_FAILED_COOKIE = "prepaid_wx_failed"
# The nonce of the authorisation under way, kept by the browser that started it.
OAUTH_STATE_COOKIE = "prepaid_wx_state"
OPENID_LIFETIME_S = 30 * 86400


def in_wechat(request: Request) -> bool:
    return "micromessenger" in request.headers.get("user-agent", "").lower()


def _openid_cipher(auth: Authenticator, nonce: bytes, session: str):
    key = hashlib.sha256(b"wechat-openid|" + signing_key(auth)).digest()
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(hashlib.sha256(session.encode()).digest())
    return cipher


def seal_openid(auth: Authenticator, session: str, openid: str) -> str:
    """The openid for a cookie: encrypted, and opened only with the same session."""
    nonce = secrets.token_bytes(12)
    sealed, tag = _openid_cipher(auth, nonce, session).encrypt_and_digest(openid.encode())
    return base64.urlsafe_b64encode(nonce + sealed + tag).decode()


def open_openid(request: Request, auth: Authenticator, session: str) -> str | None:
    value = request.cookies.get(OPENID_COOKIE, "")
    if not value or not session or len(value) > 400:
        return None
    try:
        data = base64.urlsafe_b64decode(value.encode())
        cipher = _openid_cipher(auth, data[:12], session)
        return cipher.decrypt_and_verify(data[12:-16], data[-16:]).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def oauth_state(auth: Authenticator, session: str, account_id: str, nonce: str = "") -> str:
    """A state naming this session and account: a code brought back in another session
    (or for another account) is refused."""
    nonce = nonce or secrets.token_hex(8)
    return nonce + mac(auth, "wechat-oauth", f"{session}|{account_id}|{nonce}")[:32]


def link_token(auth: Authenticator, account_id: str, version: int) -> str:
    return f"{account_id}.{version}.{mac(auth, 'tenant-link', f'{account_id}:{version}')[:32]}"


def link_principal(auth: Authenticator, links: TenantLinkBook, token: str) -> Principal | None:
    """The account a link opens, if it is signed here and still its current version."""
    account_id, _, rest = token.partition(".")
    version, _, signature = rest.partition(".")
    try:
        the_id, number = UUID(account_id), int(version)
    except ValueError:
        return None
    expected = mac(auth, "tenant-link", f"{the_id}:{number}")[:32]
    if not hmac.compare_digest(signature, expected):
        return None
    link = links.current(the_id)
    if link is None or not link.valid(number):
        return None
    return Principal(kind="tenant", id=f"link:{the_id}", name=f"link {the_id}",
                     roles=frozenset({Role.TENANT.value}), account_ids=frozenset({str(the_id)}),
                     permissions=permissions_of({Role.TENANT.value}))


router = APIRouter()


def tenant_app(state: State) -> FastAPI:
    """The tenant page's app, mounted on the API's: it shares the API app's state, where
    the dependencies of ``api/services.py`` find what they hand the pages."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state = state
    # WeChat web authorisation when it is configured: the settings as the page is mounted.
    state.wechat_oauth = oauth_from(PaymentSettings())
    install_errors(app, "tenant/error.html", "/t/")
    app.include_router(router)
    return app


async def wechat_authorisation(request: Request) -> WechatOAuth | None:
    return request.app.state.wechat_oauth


WechatSignIn = Annotated[WechatOAuth | None, Depends(wechat_authorisation)]


def session(request: Request) -> str:
    return request.cookies.get(LOGIN_COOKIE) or request.cookies.get(LINK_COOKIE) or ""


async def tenant(request: Request, auth: Authenticator, links: TenantLinkBook,
                 required: bool = True) -> Principal | None:
    who = None
    login_token = request.cookies.get(LOGIN_COOKIE)
    if login_token:
        who = await threaded(auth.from_token, login_token)
        if who is not None and who.kind != "tenant":
            who = None
    if who is None and request.cookies.get(LINK_COOKIE):
        who = await threaded(link_principal, auth, links, request.cookies[LINK_COOKIE])
        if who is None and required:
            raise Refused(403, "This link is no longer valid")
    if who is None and required:
        raise Refused(401, "Your session has expired; log in again", login=True)
    if who is not None:
        request.state.principal = who
    return who


def page(request: Request, auth: Authenticator, template: str, who: Principal | None,
         status: int = 200, **context: Any) -> HTMLResponse:
    return render(request, template, status=status, who=who,
                  csrf=csrf_token(auth, session(request)), **context)


@router.get("/")
async def home(request: Request, auth: Auth, links: TenantLinks, catch_up: ReadModels,
               queries: Queries) -> Response:
    who = await tenant(request, auth, links, required=False)
    if who is None:
        return page(request, auth, "tenant/login.html", None, error=None)
    ids = sorted(who.account_ids or ())
    if len(ids) == 1:
        return RedirectResponse(f"/t/a/{ids[0]}", status_code=303)
    await guard(request, who, "accounts.read", "list")

    def load():
        catch_up()
        return queries.list_accounts(limit=100, cursor=None,
                                     account_ids=who.account_ids).items

    return page(request, auth, "tenant/accounts.html", who, accounts=await threaded(load))


@router.post("/login")
async def login(request: Request, auth: Auth, access: Access) -> Response:
    form = await request.form()
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:128]

    def find(name: str):
        found = access.find_operator(name) if name else None
        if found is None or "tenant" not in found.roles:
            return None
        return found.id, found.password_hash, found.active, found.version

    # Throttled by name and address, exactly as /auth/token.
    address = request.client.host if request.client else "unknown"
    try:
        token, lifetime = await threaded(auth.login, username, password, find, address)
    except LoginThrottled:
        return page(request, auth, "tenant/login.html", None, status=429,
                    error="Too many attempts; try again later")
    except PermissionError:
        return page(request, auth, "tenant/login.html", None, status=401,
                    error="Wrong username or password")
    response = RedirectResponse("/t/", status_code=303)
    response.set_cookie(LOGIN_COOKIE, token, max_age=lifetime, httponly=True,
                        samesite="lax", secure=secure(request), path="/t")
    response.delete_cookie(LINK_COOKIE, path="/t")
    return response


@router.post("/logout")
async def logout(request: Request, auth: Auth) -> Response:
    form = await request.form()
    check_csrf(auth, session(request), form)
    response = RedirectResponse("/t/", status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/t")
    response.delete_cookie(LINK_COOKIE, path="/t")
    return response


@router.get("/lang")
async def lang(request: Request, to: str = "en", next: str = "/t/") -> Response:
    return set_language(request, to, next)


@router.get("/l/{token}")
async def open_link(request: Request, token: str, auth: Auth,
                    links: TenantLinks) -> Response:
    who = await threaded(link_principal, auth, links, token[:200])
    if who is None:
        raise Refused(403, "This link is no longer valid")
    account_id = next(iter(who.account_ids))
    response = RedirectResponse(f"/t/a/{account_id}", status_code=303)
    # Lax: the link is opened from a scan or another app, a top-level navigation.
    response.set_cookie(LINK_COOKIE, token, max_age=365 * 86400, httponly=True,
                        samesite="lax", secure=secure(request), path="/t")
    response.delete_cookie(LOGIN_COOKIE, path="/t")
    return response


def account_context(who: Principal, account_id: str, *, accounts: AccountService,
                    cutoff: CutoffService, catch_up: CatchUp, days_left: ForecastsDays,
                    queries: LedgerQueries, metering_reads: MeteringQueries,
                    alert_reads: AlertQueries, metering: MeteringService,
                    settings: Settings) -> dict[str, Any]:
    account = account_routes.get_account(account_id, accounts, cutoff)
    catch_up()
    the_id = parse_id(account_id, "account")
    aggregate = accounts.get_account(the_id)
    wallets = [{"wallet": w, "balance": fen,
                "days_left": days_left(the_id, fen) if w != "property_fee" else None}
               for w, fen in aggregate.balances_fen.items()
               if fen or w == "electricity"]
    usage = views.daily_usage(metering_reads, accounts.clock, account_id)
    statement = views.statement_tail(queries, account_id, settings.page_size_max, keep=30)
    return {"account": account, "wallets": wallets,
            "zone": views.zone_of(metering, account["site_id"]),
            "chart": charts.bars([(d[5:], v) for d, v in usage], unit="kWh",
                                 label="usage", height=180, width=360),
            "statement": statement,
            "receipts": [s for s in statement if s["kind"] in ("top_up", "refund",
                                                               "gift", "payment")][:10],
            "alerts": alert_reads.alerts(
                level=None, account_id=account_id, limit=10,
                account_ids=who.account_ids, site_ids=who.site_ids),
            "amounts": AMOUNTS}


def wechat_openid(request: Request, auth: Authenticator,
                  oauth: WechatOAuth | None) -> str | None:
    """The payer's openid when the page can pay by JSAPI, else None."""
    if oauth is None or not in_wechat(request):
        return None
    return open_openid(request, auth, session(request))


def oauth_redirect_uri(request: Request, oauth: WechatOAuth, account_id: str) -> str:
    base = oauth.redirect_base or (f"{'https' if secure(request) else request.url.scheme}"
                                   f"://{request.url.netloc}")
    return f"{base}/t/wx/oauth/{account_id}"


@router.get("/a/{account_id}")
async def account_page(request: Request, account_id: str, auth: Auth, links: TenantLinks,
                       oauth: WechatSignIn, accounts: Accounts, cutoff: Cutoff,
                       catch_up: ReadModels, days_left: DaysLeft, queries: Queries,
                       metering_reads: MeteringReads, alert_reads: AlertReads,
                       metering: Metering, settings: Config, wx: str = "") -> Response:
    who = await tenant(request, auth, links)
    await guard(request, who, "accounts.read")
    # Inside WeChat, first learn the payer's openid (snsapi_base: no question asked),
    # once a session; ``wx`` marks the way back, so a browser without cookies does not
    # go round for ever.
    if (oauth is not None and in_wechat(request) and not wx and
            who.can("payments.create") and
            not request.cookies.get(OAUTH_FAILED_COOKIE) and
            wechat_openid(request, auth, oauth) is None):
        parse_id(account_id, "account")
        state = oauth_state(auth, session(request), account_id)
        response = RedirectResponse(oauth.authorize_url(
            oauth_redirect_uri(request, oauth, account_id), state), status_code=303)
        response.set_cookie(OAUTH_STATE_COOKIE, state[:16], max_age=600, httponly=True,
                            samesite="lax", secure=secure(request), path="/t")
        return response
    context = await threaded(
        account_context, who, account_id, accounts=accounts, cutoff=cutoff,
        catch_up=catch_up, days_left=days_left, queries=queries,
        metering_reads=metering_reads, alert_reads=alert_reads, metering=metering,
        settings=settings)
    return page(request, auth, "tenant/account.html", who, **context)


@router.get("/wx/oauth/{account_id}")
async def wechat_oauth(request: Request, account_id: str, auth: Auth, links: TenantLinks,
                       oauth: WechatSignIn, code: str = "", state: str = "") -> Response:
    """Where WeChat sends the payer back with the authorisation code."""
    who = await tenant(request, auth, links)
    await guard(request, who, "accounts.read")
    if oauth is None:
        raise Refused(404, "Not found")
    # The state must be the one made for this session, account and browser.
    nonce = state[:16]
    if len(state) != 48 or not hmac.compare_digest(
            request.cookies.get(OAUTH_STATE_COOKIE, ""), nonce) or \
            not hmac.compare_digest(state, oauth_state(auth, session(request),
                                                       account_id, nonce)):
        raise Refused(403, "The WeChat sign-in has expired; please try again")
    response = RedirectResponse(f"/t/a/{account_id}?wx=1", status_code=303)
    response.delete_cookie(OAUTH_STATE_COOKIE, path="/t")
    try:
        if not code or len(code) > 256:
            raise ProviderError("no authorisation code")
        openid = await threaded(oauth.openid, code)
    except ProviderError as error:
        log.warning("WeChat authorisation failed: %s; the page offers the QR code", error)
        response.set_cookie(OAUTH_FAILED_COOKIE, "1", max_age=600, httponly=True,
                            samesite="lax", secure=secure(request), path="/t")
        return response
    log.info("WeChat payer %s authorised for account %s", masked(openid), account_id)
    response.set_cookie(OPENID_COOKIE, seal_openid(auth, session(request), openid),
                        max_age=OPENID_LIFETIME_S, httponly=True, samesite="lax",
                        secure=secure(request), path="/t")
    return response


@router.get("/a/{account_id}/balance")
async def balance_fragment(request: Request, account_id: str, auth: Auth,
                           links: TenantLinks, accounts: Accounts, cutoff: Cutoff,
                           catch_up: ReadModels, days_left: DaysLeft, queries: Queries,
                           metering_reads: MeteringReads, alert_reads: AlertReads,
                           metering: Metering, settings: Config) -> HTMLResponse:
    who = await tenant(request, auth, links)
    await guard(request, who, "accounts.read")
    context = await threaded(
        account_context, who, account_id, accounts=accounts, cutoff=cutoff,
        catch_up=catch_up, days_left=days_left, queries=queries,
        metering_reads=metering_reads, alert_reads=alert_reads, metering=metering,
        settings=settings)
    return page(request, auth, "tenant/_wallets.html", who, **context)


@router.post("/a/{account_id}/pay")
async def pay(request: Request, account_id: str, auth: Auth, links: TenantLinks,
              oauth: WechatSignIn, payments: Payments, catch_up: ReadModels) -> Response:
    who = await tenant(request, auth, links)
    form = await request.form()
    check_csrf(auth, session(request), form)
    await guard(request, who, "payments.create")
    key = form_key(form)
    channel = str(form.get("channel", "wechat"))
    scene = {"wechat": "native", "alipay": "wap"}.get(channel)
    if scene is None:
        raise Refused(422, "Pay")
    # Inside WeChat with the payer's openid: JSAPI; elsewhere the QR code.
    openid = wechat_openid(request, auth, oauth) if channel == "wechat" else None
    if openid:
        scene = "jsapi"
    try:
        body = payment_routes.OrderIn(account_id=account_id,
                                      amount=str(form.get("preset") or
                                                 form.get("amount") or ""),
                                      channel=channel, scene=scene,
                                      wallet=str(form.get("wallet", "electricity")),
                                      payer_openid=openid)
    except ValidationError as error:
        raise Refused(422, "; ".join(e["msg"] for e in error.errors())) from None
    answer = await threaded(payment_routes.create_order, request, body, payments, catch_up,
                            who.actor(request.state.request_id), key)
    order = body_of(answer)
    return RedirectResponse(f"/t/o/{order['out_trade_no']}", status_code=303)


def order_context(out_trade_no: str, *, payments: PaymentService, accounts: AccountService,
                  catch_up: CatchUp) -> dict[str, Any]:
    order = payment_routes.get_order(out_trade_no, payments)
    context: dict[str, Any] = {"order": order, "final": order["status"] in FINAL}
    provider = payments.providers.get("wechat")
    if (order["scene"] == "jsapi" and order.get("prepay_id") and not context["final"]
            and provider is not None):
        context["wxpay"] = provider.jsapi_params(order["prepay_id"])
    if order["status"] == "credited":
        catch_up()
        account = accounts.get_account(UUID(order["account_id"]))
        context["balance"] = account.balance_fen(order["wallet"])
    if order.get("code_url"):
        context["qr"] = charts.qr_svg(order["code_url"], scale=5)
    return context


async def order_view(template: str, request: Request, out_trade_no: str, auth: Auth,
                     links: TenantLinks, payments: Payments, accounts: Accounts,
                     catch_up: ReadModels) -> HTMLResponse:
    """An order, as the whole page or as the status fragment the page polls."""
    who = await tenant(request, auth, links)
    await guard(request, who, "payments.read")
    context = await threaded(order_context, out_trade_no, payments=payments,
                             accounts=accounts, catch_up=catch_up)
    return page(request, auth, template, who, **context)


@router.get("/o/{out_trade_no}")
async def order_page(request: Request, out_trade_no: str, auth: Auth, links: TenantLinks,
                     payments: Payments, accounts: Accounts,
                     catch_up: ReadModels) -> HTMLResponse:
    return await order_view("tenant/order.html", request, out_trade_no, auth, links,
                            payments, accounts, catch_up)


@router.get("/o/{out_trade_no}/status")
async def order_status(request: Request, out_trade_no: str, auth: Auth, links: TenantLinks,
                       payments: Payments, accounts: Accounts,
                       catch_up: ReadModels) -> HTMLResponse:
    return await order_view("tenant/_order_status.html", request, out_trade_no, auth, links,
                            payments, accounts, catch_up)


@router.get("/receipts/{transaction_id}")
async def receipt(request: Request, transaction_id: str, auth: Auth, links: TenantLinks,
                  accounts: Accounts, metering: Metering, access_reads: AccessReads,
                  settings: Config) -> Response:
    who = await tenant(request, auth, links)
    await guard(request, who, "accounts.read")
    return await threaded(ledger_routes.receipt, transaction_id, accounts, metering,
                          access_reads, settings, "html")
