"""Authentication and permission checks on every path.

Each route declares what it needs with ``**allow(permission, scope=...)``; the app refuses
to start if a route does not (``check_every_route_guarded``). The permission also goes
into the OpenAPI document as ``x-permission`` (and ``x-scope``), from which the access
tests are generated.

Scopes:

- ``path`` (default): ids in the path (account, meter, transaction, command, site, pool,
  payment order, approval) must belong to the caller's sites, or to the tenant's own
  accounts; anything else answers 404, as if it did not exist.
- ``list``: the route filters what it returns to the caller's sites or accounts itself.
- ``global``: platform-wide data or actions; callers limited to sites (and tenants) get 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from bootstrap import Platform
from api.problems import ApiProblem
from domain.access import AUTHENTICATED, PERMISSIONS, PUBLIC, Principal
from projections.access.queries import Owner

TOKEN_URL = "/api/v1/auth/token"
SCOPES = ("path", "list", "global")

oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


class NotAuthenticated(ApiProblem):
    def __init__(self, detail: str = "log in (Authorization: Bearer ...) or send X-API-Key"):
        super().__init__(401, "not-authenticated", detail)


async def caller(request: Request, token: Annotated[str | None, Depends(oauth2)],
                 api_key: Annotated[str | None, Depends(api_key_header)]
                 ) -> Principal | None:
    """Who calls, or None when nothing was presented. A bad credential is a 401."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    auth = request.app.state.platform.auth
    principal = None
    if token:
        principal = await run_in_threadpool(auth.from_token, token)  # reads the grant
        if principal is None:
            raise NotAuthenticated("the access token is invalid or has expired")
    elif api_key:
        principal = await run_in_threadpool(auth.from_api_key, api_key)
        if principal is None:
            raise NotAuthenticated("the API key is unknown, revoked or expired")
    request.state.principal = principal
    return principal


Caller = Annotated[Principal | None, Depends(caller)]


def _owner_lookups(p: Platform) -> dict[str, tuple[str, Callable[[str], Owner]]]:
    q = p.access_queries
    return {
        "account_id": ("account", q.account_owner),
        "meter_id": ("meter", q.meter_owner),
        "transaction_id": ("transaction", q.transaction_owner),
        "command_id": ("command", q.command_owner),
        "out_trade_no": ("payment-order", q.order_owner),
        "approval_id": ("approval", q.approval_owner),
        "site_id": ("site", lambda value: Owner(True, value)),
        "pool_id": ("pool", lambda value: _pool_owner(p, value)),
    }


def _pool_owner(p: Platform, value: str) -> Owner:
    try:
        pool = p.ledger.find(UUID(value))
    except ValueError:
        return Owner(False)
    site_id = getattr(pool, "site_id", None)
    return Owner(False) if site_id is None else Owner(True, str(site_id))


def visible(p: Platform, who: Principal, what: str, owner: Owner) -> bool:
    if not who.is_restricted:
        return True
    if not owner.found:
        return False
    if what == "site":
        return who.sees_site(owner.site_id)
    return who.sees_account(owner.account_id, owner.site_id)


def check_path(request: Request, who: Principal) -> None:
    if not who.is_restricted:
        return
    p: Platform = request.app.state.platform
    lookups = _owner_lookups(p)
    for name, value in request.path_params.items():
        if name not in lookups:
            continue
        what, lookup = lookups[name]
        owner = lookup(value)
        if not owner.found:
            p.catch_up()  # written a moment ago by another process?
            owner = lookup(value)
        if not visible(p, who, what, owner):
            raise ApiProblem(404, f"{what}-not-found", f"{what} {value} does not exist")


class Guard:
    def __init__(self, permission: str, scope: str) -> None:
        assert permission in PERMISSIONS or permission in (PUBLIC, AUTHENTICATED), permission
        assert scope in SCOPES, scope
        self.permission, self.scope = permission, scope

    async def __call__(self, request: Request, who: Caller) -> None:
        if who is None:
            raise NotAuthenticated()
        if not who.can(self.permission):
            raise ApiProblem(403, "forbidden",
                             f"{', '.join(sorted(who.roles))} may not do this "
                             f"(needs {self.permission})")
        if self.scope == "global" and who.is_restricted:
            raise ApiProblem(403, "forbidden",
                             "this covers every site; it needs a login not limited to sites")
        if self.scope == "path" and who.is_restricted:
            await run_in_threadpool(check_path, request, who)  # reads who owns the ids


class OpenToAll(Guard):
    """``allow(PUBLIC)``: no credential is read at all (health, provider callbacks)."""

    async def __call__(self) -> None:
        return None


def allow(permission: str, scope: str = "path",
          openapi_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for a route decorator: the check and its OpenAPI mark."""
    guard = OpenToAll(permission, scope) if permission == PUBLIC else Guard(permission, scope)
    return {"dependencies": [Depends(guard)],
            "openapi_extra": {**(openapi_extra or {}), "x-permission": permission,
                              "x-scope": scope}}


def require_principal(request: Request) -> Principal:
    who = getattr(request.state, "principal", None)
    if who is None:
        raise NotAuthenticated()
    return who


async def _me(request: Request) -> Principal:
    return require_principal(request)


Me = Annotated[Principal, Depends(_me)]


def check_every_route_guarded(app: FastAPI) -> None:
    """Fail at start-up if any API route forgot to say who may call it."""
    for route in app.routes:
        if isinstance(route, APIRoute) and not any(
                isinstance(d.dependency, Guard) for d in route.dependencies):
            raise RuntimeError(f"route {sorted(route.methods)} {route.path} has no allow(...)")


# -- checks on ids in request bodies -------------------------------------------------------

def require_site(request: Request, site_id: str | None) -> None:
    """A site named in a body: limited callers must name one of theirs."""
    who = require_principal(request)
    if who.site_ids is None and who.account_ids is None:
        return
    if site_id is None or not who.sees_site(str(site_id)):
        raise ApiProblem(403, "forbidden", "that site is not one of yours")


def require_account(request: Request, account_id: str | UUID | None) -> None:
    """An account named in a body: it must be one the caller may see."""
    who = require_principal(request)
    if not who.is_restricted or account_id is None:
        return
    p: Platform = request.app.state.platform
    owner = p.access_queries.account_owner(str(account_id))
    if not owner.found:
        p.catch_up()
        owner = p.access_queries.account_owner(str(account_id))
    if not visible(p, who, "account", owner):
        raise ApiProblem(404, "account-not-found", f"account {account_id} does not exist")


def require_gateway(request: Request, gateway_id: str | UUID | None) -> None:
    who = require_principal(request)
    if who.site_ids is None or gateway_id is None:
        return
    owner = request.app.state.platform.access_queries.gateway_owner(str(gateway_id))
    if not owner.found or not who.sees_site(owner.site_id):
        raise ApiProblem(404, "gateway-not-found", f"gateway {gateway_id} does not exist")


def require_meter(request: Request, meter_id: str | UUID | None) -> None:
    who = require_principal(request)
    if not who.is_restricted or meter_id is None:
        return
    p: Platform = request.app.state.platform
    if not visible(p, who, "meter", p.access_queries.meter_owner(str(meter_id))):
        raise ApiProblem(404, "meter-not-found", f"meter {meter_id} does not exist")
