"""Logging in, operators, API keys, approvals (maker-checker) and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from adapters.auth import LoginThrottled, new_api_key, password_problem
from api import render
from api.auth import Me, allow
from api.deps import actor, aware, page_limit, parse_id
from api.problems import ApiProblem
from api.schemas import Strict, _require_aware
from api.services import Access, AccessReads, Auth, CatchUp, Config, EventLog, Queries, \
    ReadModels
from domain.access import AUTHENTICATED, PUBLIC
from ledger.access import AccessService
from ledger.chain import verify_chain
from ledger.commands import (
    Approve,
    ChangeOperator,
    Command,
    IssueApiKey,
    Reject,
    RegisterOperator,
    RequestApproval,
    RevokeApiKey,
)
from ledger.config import Settings
from projections.access.queries import AccessQueries

router = APIRouter(tags=["access"])
Actor = Annotated[dict, Depends(actor)]

RoleName = Literal["admin", "finance", "operator", "auditor", "tenant"]
Username = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
ShortId = Annotated[str, Field(min_length=1, max_length=64)]

# The permission the requested action itself needs; the approver must hold it too.
ACTION_PERMISSION = {"reversal": "money.reverse", "adjustment": "money.adjust",
                     "refund": "money.refund", "keep_power": "devices.keep_power"}


# -- logging in ----------------------------------------------------------------------------

def credentials_finder(access):
    """What a login checks a password against: (id, hash, active, version) or None."""
    def find(name: str):
        operator = access.find_operator(name) if name else None
        return None if operator is None else (operator.id, operator.password_hash,
                                              operator.active, operator.version)
    return find


@router.post("/auth/token", summary="Log in (OAuth2 password flow) for a bearer token",
             **allow(PUBLIC))
def token(request: Request, access: Access, auth: Auth,
          username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=128)]) -> JSONResponse:
    find = credentials_finder(access)
    # Behind a reverse proxy the address is the one it forwards (uvicorn reads
    # X-Forwarded-For from the addresses in FORWARDED_ALLOW_IPS, 127.0.0.1 by default).
    address = request.client.host if request.client else "unknown"
    try:
        access_token, lifetime = auth.login(username, password, find, address)
    except LoginThrottled as error:
        return JSONResponse(
            {"type": "/problems/too-many-attempts", "title": "Too many attempts",
             "status": 429, "detail": str(error)}, status_code=429,
            media_type="application/problem+json",
            headers={"Retry-After": str(error.retry_after_s)})
    except PermissionError:
        return JSONResponse(
            {"type": "/problems/bad-credentials", "title": "Bad credentials", "status": 401,
             "detail": "wrong username or password"}, status_code=401,
            media_type="application/problem+json", headers={"WWW-Authenticate": "Bearer"})
    return JSONResponse({"access_token": access_token, "token_type": "bearer",
                         "expires_in": lifetime}, headers={"Cache-Control": "no-store"})


@router.get("/me", summary="Who I am: roles, sites, accounts, permissions",
            **allow(AUTHENTICATED))
def me(who: Me) -> dict[str, Any]:
    return {"kind": who.kind, "id": who.id, "name": who.name, "roles": sorted(who.roles),
            "site_ids": None if who.site_ids is None else sorted(who.site_ids),
            "account_ids": None if who.account_ids is None else sorted(who.account_ids),
            "permissions": sorted(who.permissions)}


@router.get("/me/accounts", summary="The accounts I may see, with balances",
            **allow("accounts.read", "list"))
def my_accounts(queries: Queries, catch_up: ReadModels, who: Me,
                limit: Annotated[int, Depends(page_limit)]) -> dict:
    catch_up()
    page = queries.list_accounts(limit=limit, cursor=None, site_ids=who.site_ids,
                                   account_ids=who.account_ids)
    items = []
    for row in page.items:
        wallets = {w: render.yuan(b["balance_fen"])
                   for w, b in queries.wallet_balances(row["id"]).items()}
        items.append({"id": row["id"], "name": row["name"], "site_id": row["site_id"],
                      "unit": row["unit"], "status": row["status"],
                      "balance": wallets.get("electricity", "0.00"), "wallets": wallets})
    return {"items": items}


# -- operators -----------------------------------------------------------------------------

class OperatorIn(Strict):
    username: Username
    password: Password
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=5)]
    site_ids: Annotated[list[ShortId], Field(max_length=500)] = []
    account_ids: Annotated[list[UUID], Field(max_length=500)] = []


class OperatorChange(Strict):
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=5)] | None = None
    site_ids: Annotated[list[ShortId], Field(max_length=500)] | None = None
    account_ids: Annotated[list[UUID], Field(max_length=500)] | None = None
    active: bool | None = None
    password: Password | None = None


def _operator(row: dict) -> dict[str, Any]:
    split = lambda text: [x for x in text.split(",") if x]  # noqa: E731
    return {"id": row["id"], "username": row["username"], "roles": split(row["roles"]),
            "site_ids": split(row["site_ids"]), "account_ids": split(row["account_ids"]),
            "active": row["active"], "created_at": render.iso(row["created_at"]),
            "changed_at": render.iso(row["changed_at"])}


def check_password(settings: Settings, password: str, roles, username: str) -> None:
    problem = password_problem(password, roles, username, settings)
    if problem:
        raise ApiProblem(422, "weak-password", problem)


@router.post("/operators", status_code=201, summary="Create an operator or a tenant login",
             **allow("operators.manage", "global"))
def create_operator(body: OperatorIn, access: Access, access_reads: AccessReads, auth: Auth,
                    config: Config, catch_up: ReadModels, who: Actor) -> JSONResponse:
    check_password(config, body.password, body.roles, body.username)
    outcome = access.carry_out_registration(RegisterOperator(
        body.username, auth.hash_password(body.password), tuple(dict.fromkeys(body.roles)),
        tuple(dict.fromkeys(body.site_ids)),
        tuple(str(a) for a in dict.fromkeys(body.account_ids))), who)
    catch_up(outcome.position)
    return JSONResponse(_operator(access_reads.operator(outcome.result["id"])),
                        status_code=201)


@router.get("/operators", summary="Every operator and tenant login",
            **allow("operators.manage", "global"))
def list_operators(access_reads: AccessReads, catch_up: ReadModels) -> dict[str, Any]:
    catch_up()
    return {"items": [_operator(row) for row in access_reads.operators()]}


def _operator_row(access_reads: AccessQueries, operator_id: str) -> dict:
    parse_id(operator_id, "operator")
    row = access_reads.operator(operator_id)
    if row is None:
        raise ApiProblem(404, "operator-not-found", f"operator {operator_id} does not exist")
    return row


@router.get("/operators/{operator_id}", summary="One operator",
            **allow("operators.manage", "global"))
def get_operator(operator_id: str, access_reads: AccessReads,
                 catch_up: ReadModels) -> dict[str, Any]:
    catch_up()
    return _operator(_operator_row(access_reads, operator_id))


@router.patch("/operators/{operator_id}",
              summary="Change roles, sites, accounts, password; deactivate or reactivate",
              **allow("operators.manage", "global"))
def change_operator(operator_id: str, body: OperatorChange, access: Access,
                    access_reads: AccessReads, auth: Auth, config: Config,
                    catch_up: ReadModels, who: Actor) -> dict[str, Any]:
    the_id = parse_id(operator_id, "operator")
    if body.password is not None:
        operator = access.get_operator(the_id)
        check_password(config, body.password,
                       body.roles if body.roles is not None else operator.roles,
                       operator.username)
    outcome = access.carry_out_change(ChangeOperator(
        the_id, roles=None if body.roles is None else tuple(body.roles),
        site_ids=None if body.site_ids is None else tuple(body.site_ids),
        account_ids=None if body.account_ids is None else tuple(str(a)
                                                                for a in body.account_ids),
        active=body.active,
        password_hash=None if body.password is None else auth.hash_password(body.password)),
        who)
    catch_up(outcome.position)
    return _operator(_operator_row(access_reads, operator_id))


# -- API keys ------------------------------------------------------------------------------

class ApiKeyIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    roles: Annotated[list[Literal["admin", "finance", "operator", "auditor"]],
                     Field(min_length=1, max_length=4)]
    site_ids: Annotated[list[ShortId], Field(max_length=500)] = []
    expires_at: datetime | None = None

    _aware = field_validator("expires_at")(lambda v: v if v is None else _require_aware(v))


def _api_key(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"],
            "roles": [x for x in row["roles"].split(",") if x],
            "site_ids": [x for x in row["site_ids"].split(",") if x],
            "expires_at": render.iso(row["expires_at"]), "revoked": row["revoked"],
            "issued_at": render.iso(row["issued_at"]), "issued_by": row["issued_by"]}


@router.post("/api-keys", status_code=201,
             summary="Issue an API key for an integration (the key is shown only here)",
             **allow("api_keys.manage", "global"))
def issue_api_key(body: ApiKeyIn, access: Access, catch_up: ReadModels,
                  who: Actor) -> JSONResponse:
    key_id = uuid4()
    presented, secret_hash = new_api_key(key_id)
    outcome = access.carry_out_issue(IssueApiKey(
        key_id, body.name, secret_hash, roles=tuple(dict.fromkeys(body.roles)),
        site_ids=tuple(dict.fromkeys(body.site_ids)), expires_at=body.expires_at), who)
    catch_up(outcome.position)
    return JSONResponse({"id": str(key_id), "key": presented, "name": body.name,
                         "roles": list(dict.fromkeys(body.roles))}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get("/api-keys", summary="Issued API keys (never the keys themselves)",
            **allow("api_keys.manage", "global"))
def list_api_keys(access_reads: AccessReads, catch_up: ReadModels) -> dict[str, Any]:
    catch_up()
    return {"items": [_api_key(row) for row in access_reads.api_keys()]}


@router.delete("/api-keys/{key_id}", summary="Revoke an API key",
               **allow("api_keys.manage", "global"))
def revoke_api_key(key_id: str, access: Access, catch_up: ReadModels,
                   who: Actor) -> dict[str, Any]:
    outcome = access.carry_out_revocation(RevokeApiKey(parse_id(key_id, "api-key")), who)
    catch_up(outcome.position)
    return {"id": key_id, "revoked": True}


# -- approvals -----------------------------------------------------------------------------

class Decision(Strict):
    note: Annotated[str, Field(max_length=1000)] | None = None


def render_approval(approval) -> dict[str, Any]:
    return {"id": str(approval.id), "action": approval.action, "target": approval.target,
            "summary": approval.summary, "status": approval.status,
            "site_id": approval.site_id, "params": render.in_yuan(approval.params),
            "requested_by": approval.requested_by, "decided_by": approval.decided_by,
            "note": approval.note, "result": _approval_result(approval.result)}


def _approval_result(result: dict | None) -> dict | None:
    """What the approved action answered, as it would have answered without approval."""
    money = {"transaction_id", "amount_fen", "balances_after_fen"}
    if result is not None and money <= set(result):
        return render.money_result(result)
    return render.in_yuan(result)


@router.get("/approvals", summary="Requests waiting for (or given) a second person's approval",
            **allow("approvals.read", "list"))
def list_approvals(access_reads: AccessReads, catch_up: ReadModels, who: Me,
                   limit: Annotated[int, Depends(page_limit)],
                   status: Annotated[str | None,
                                     Query(pattern="^(pending|approved|rejected)$")] = None
                   ) -> dict[str, Any]:
    catch_up()
    rows = access_reads.approvals(status=status, site_ids=who.site_ids, limit=limit)
    return {"items": [{"id": r["id"], "action": r["action"], "target": r["target"],
                       "summary": r["summary"], "status": r["status"],
                       "site_id": r["site_id"], "requested_by": r["requested_by"],
                       "requested_at": render.iso(r["requested_at"]),
                       "decided_by": r["decided_by"], "decided_at": render.iso(r["decided_at"]),
                       "note": r["note"]} for r in rows]}


@router.get("/approvals/{approval_id}", summary="One approval request",
            **allow("approvals.read"))
def get_approval(approval_id: str, access: Access) -> dict[str, Any]:
    return render_approval(access.get_approval(parse_id(approval_id, "approval")))


def _may_decide(access: AccessService, who, approval_id: str):
    approval = access.get_approval(parse_id(approval_id, "approval"))
    needed = ACTION_PERMISSION.get(approval.action)
    if needed and not who.can(needed):
        raise ApiProblem(403, "forbidden", f"approving a {approval.action} needs {needed}")
    return approval


@router.post("/approvals/{approval_id}/approve", summary="Approve and carry out the request",
             **allow("approvals.decide"))
def approve(approval_id: str, access: Access, catch_up: ReadModels, who: Me, acting: Actor,
            body: Decision | None = None) -> dict:
    approval = _may_decide(access, who, approval_id)
    outcome = access.carry_out_approval(Approve(approval.id, body.note if body else None),
                                        acting)
    catch_up(outcome.position)
    return render_approval(access.get_approval(approval.id))


@router.post("/approvals/{approval_id}/reject", summary="Reject the request",
             **allow("approvals.decide"))
def reject(approval_id: str, access: Access, catch_up: ReadModels, who: Me, acting: Actor,
           body: Decision | None = None) -> dict:
    approval = _may_decide(access, who, approval_id)
    outcome = access.carry_out_rejection(Reject(approval.id, body.note if body else None),
                                         acting)
    catch_up(outcome.position)
    return render_approval(access.get_approval(approval.id))


def pending_command(access: AccessService, catch_up: CatchUp, command: Command, *,
                    site_id: str | None, summary: str, who: dict) -> JSONResponse:
    """Store ``command`` for a second person's approval (202 with where to follow it)."""
    outcome = access.carry_out_request(RequestApproval.of(
        command, idempotency_key=command.idempotency_key or str(uuid4()), site_id=site_id,
        summary=summary), who)
    catch_up(outcome.position)
    approval_id = outcome.result["id"]
    status = access.get_approval(UUID(approval_id)).status
    return JSONResponse({"approval_id": approval_id, "status": f"{status}_approval"
                         if status == "pending" else status,
                         "detail": "a second person must approve this "
                                   f"(POST /api/v1/approvals/{approval_id}/approve)"},
                        status_code=202,
                        headers={"Location": f"/api/v1/approvals/{approval_id}"})


# -- audit ---------------------------------------------------------------------------------

@router.get("/audit/log", summary="What operators, tenants and API keys did, oldest first",
            **allow("audit.read", "global"))
def audit_log(access_reads: AccessReads, catch_up: ReadModels,
              limit: Annotated[int, Depends(page_limit)], cursor: str | None = None,
              actor_id: Annotated[str | None, Query(max_length=64)] = None,
              actor_kind: Annotated[str | None,
                                    Query(pattern="^(operator|tenant|api_key|console)$")] = None,
              action: Annotated[str | None, Query(max_length=80)] = None,
              aggregate_id: Annotated[str | None, Query(max_length=36)] = None,
              request_id: Annotated[str | None, Query(max_length=100)] = None,
              from_: Annotated[datetime | None, Query(alias="from")] = None,
              to: datetime | None = None) -> dict[str, Any]:
    catch_up()
    try:
        page = access_reads.audit_log(
            limit=limit, cursor=cursor, actor_id=actor_id, actor_kind=actor_kind,
            action=action, aggregate_id=aggregate_id, request_id=request_id,
            from_=aware(from_, "from"), to=aware(to, "to"))
    except ValueError as error:
        raise ApiProblem(400, "bad-cursor", str(error)) from None
    return {"items": [{"position": r["position"], "recorded_at": render.iso(r["recorded_at"]),
                       "actor": {"kind": r["actor_kind"], "id": r["actor_id"],
                                 "name": r["actor_name"]},
                       "request_id": r["request_id"], "approved_by": r["approved_by"],
                       "action": r["action"], "aggregate_id": r["aggregate_id"],
                       "aggregate_version": r["aggregate_version"]} for r in page.items],
            "next_cursor": page.next_cursor}


@router.get("/audit/verify",
            summary="Recompute the hash chain over the event log; report the first break",
            **allow("audit.read", "global"))
def audit_verify(event_log: EventLog,
                 anchor_position: Annotated[int | None, Query(ge=1)] = None,
                 anchor_hash: Annotated[str | None,
                                        Query(pattern="^[0-9a-fA-F]{64}$")] = None
                 ) -> dict[str, Any]:
    """``anchor_position`` and ``anchor_hash``: a head kept from an earlier verification,
    which the chain must still hold (this catches the newest events being removed)."""
    if (anchor_position is None) != (anchor_hash is None):
        raise ApiProblem(422, "validation-error",
                         "give anchor_position and anchor_hash together")
    anchor = None if anchor_position is None else (anchor_position, anchor_hash)
    return verify_chain(event_log, anchor=anchor)
