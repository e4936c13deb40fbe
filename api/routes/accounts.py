"""Accounts and their money: open, top up, refund, gift, adjust, close; balance, statement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api import render
from api.auth import Me, allow, require_site
from api.routes.access import pending_command
from api.deps import actor, aware, idempotency_key, page_limit, parse_id, \
    required_idempotency_key
from api.problems import ApiProblem
from api.services import Access, Accounts, Approvals, Cutoff, Queries, ReadModels
from api.schemas import Adjustment, Close, Gift, OpenAccount, Refund, TopUp
from ledger import commands
from ledger.commands import Adjust
from ledger.commands import Refund as RefundCommand
from ledger.outcome import Outcome

router = APIRouter(tags=["accounts"])

Actor = Annotated[dict, Depends(actor)]
MoneyKey = Annotated[str, Depends(required_idempotency_key)]


def created(body: dict[str, Any], outcome: Outcome) -> JSONResponse:
    headers = {} if outcome.created else {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=201, headers=headers)


def money_answer(catch_up: ReadModels, outcome: Outcome) -> JSONResponse:
    catch_up(outcome.position)
    return created(render.money_result(outcome.result), outcome)


@router.post("/accounts", status_code=201, summary="Open an account for a shop",
             **allow("accounts.open"))
def open_account(request: Request, body: OpenAccount, accounts: Accounts,
                 catch_up: ReadModels, who: Actor,
                 key: Annotated[str | None, Depends(idempotency_key)]) -> JSONResponse:
    require_site(request, body.site_id)
    fields = body.model_dump()
    fields["area_m2"] = None if body.area_m2 is None else f"{body.area_m2:.2f}"
    outcome = accounts.carry_out_open(commands.OpenAccount(**fields, idempotency_key=key),
                                      who)
    catch_up(outcome.position)
    return created(render.opened(outcome.result, fields), outcome)


@router.get("/accounts", summary="List accounts",
             **allow("accounts.read", "list"))
def list_accounts(queries: Queries, catch_up: ReadModels, me: Me,
                  limit: Annotated[int, Depends(page_limit)],
                  cursor: str | None = None, site_id: str | None = None,
                  status: str | None = None) -> dict[str, Any]:
    catch_up()
    page = _page(lambda: queries.list_accounts(limit=limit, cursor=cursor, site_id=site_id,
                                               status=status, site_ids=me.site_ids,
                                               account_ids=me.account_ids))
    items = []
    for row in page.items:
        balances = queries.wallet_balances(row["id"])
        wallets = {w: render.yuan(b["balance_fen"]) for w, b in balances.items()}
        items.append({"id": row["id"], "name": row["name"], "site_id": row["site_id"],
                      "unit": row["unit"], "status": row["status"],
                      "balance": wallets.get("electricity", "0.00"), "wallets": wallets,
                      "opened_at": render.iso(row["opened_at"]),
                      "closed_at": render.iso(row["closed_at"])})
    return {"items": items, "next_cursor": page.next_cursor}


@router.get("/accounts/{account_id}", summary="An account with its wallet balances",
             **allow("accounts.read"))
def get_account(account_id: str, accounts: Accounts, cutoff: Cutoff) -> dict[str, Any]:
    from api.routes.cutoff import render_arrears

    the_id = parse_id(account_id, "account")
    # the grace state of each wallet in arrears (docs/cutoff.md)
    return {**render.account(accounts.get_account(the_id)),
            "arrears": render_arrears(cutoff.account_cutoff_state(the_id)["wallets"])}


@router.post("/accounts/{account_id}/top-ups", status_code=201, summary="Sell credit",
             **allow("money.top_up"))
def top_up(account_id: str, body: TopUp, accounts: Accounts, catch_up: ReadModels,
           who: Actor, key: MoneyKey) -> JSONResponse:
    command = commands.TopUp(parse_id(account_id, "account"), amount_fen=body.amount,
                             channel=body.channel, wallet=body.wallet,
                             reference=body.reference, effective_at=body.effective_at,
                             idempotency_key=key)
    outcome = accounts.carry_out_money(command, who)
    return money_answer(catch_up, outcome)


@router.post("/accounts/{account_id}/refunds", status_code=201,
             summary="Refund unused credit (退电)",
             **allow("money.refund"))
def refund(account_id: str, body: Refund, accounts: Accounts, approvals: Approvals,
           access: Access, catch_up: ReadModels, who: Actor,
           key: MoneyKey) -> JSONResponse:
    command = RefundCommand(parse_id(account_id, "account"), amount_fen=body.amount,
                            channel=body.channel, wallet=body.wallet, reason=body.reason,
                            reference=body.reference, effective_at=body.effective_at,
                            idempotency_key=key)
    if approvals.needs_second_person(command):
        account = accounts.get_account(command.account_id)
        return pending_command(
            access, catch_up, command, site_id=account.site_id, who=who,
            summary=f"refund {render.yuan(body.amount)} from {account.name} ({body.wallet}) "
                    f"by {body.channel}")
    outcome = accounts.carry_out_money(command, who)
    return money_answer(catch_up, outcome)


@router.post("/accounts/{account_id}/gifts", status_code=201,
             summary="Gift or subsidy credit, kept apart from paid money",
             **allow("money.top_up"))
def gift(account_id: str, body: Gift, accounts: Accounts, catch_up: ReadModels, who: Actor,
         key: MoneyKey) -> JSONResponse:
    command = commands.Gift(parse_id(account_id, "account"), amount_fen=body.amount,
                            reason=body.reason, wallet=body.wallet, reference=body.reference,
                            effective_at=body.effective_at, idempotency_key=key)
    outcome = accounts.carry_out_money(command, who)
    return money_answer(catch_up, outcome)


@router.post("/accounts/{account_id}/adjustments", status_code=201,
             summary="Manual adjustment with a mandatory reason",
             **allow("money.adjust"))
def adjust(account_id: str, body: Adjustment, accounts: Accounts, approvals: Approvals,
           access: Access, catch_up: ReadModels, who: Actor,
           key: MoneyKey) -> JSONResponse:
    command = Adjust(parse_id(account_id, "account"), delta_fen=body.amount,
                     reason=body.reason, wallet=body.wallet, force=body.force,
                     effective_at=body.effective_at, idempotency_key=key)
    if approvals.needs_second_person(command):
        account = accounts.get_account(command.account_id)
        return pending_command(
            access, catch_up, command, site_id=account.site_id, who=who,
            summary=f"adjust {account.name} ({body.wallet}) by {render.yuan(body.amount)}: "
                    f"{body.reason}")
    outcome = accounts.carry_out_money(command, who)
    return money_answer(catch_up, outcome)


@router.post("/accounts/{account_id}/close", status_code=201,
             summary="Close the account (销户) with a final settlement",
             **allow("accounts.open"))
def close(account_id: str, body: Close, accounts: Accounts, catch_up: ReadModels, who: Actor,
          key: MoneyKey) -> JSONResponse:
    command = commands.CloseAccount(parse_id(account_id, "account"),
                                    settlement=body.settlement, channel=body.channel,
                                    reason=body.reason, idempotency_key=key)
    outcome = accounts.carry_out_money(command, who)
    catch_up(outcome.position)
    body_out = render.money_result(outcome.result)
    body_out["settlement"] = body.settlement
    return created(body_out, outcome)


@router.get("/accounts/{account_id}/balance", summary="Balance now or at any past instant",
             **allow("accounts.read"))
def balance(account_id: str, accounts: Accounts, queries: Queries, catch_up: ReadModels,
            as_of: datetime | None = None,
            known_at: datetime | None = None) -> dict[str, Any]:
    the_id = parse_id(account_id, "account")
    account = accounts.get_account(the_id)
    if as_of is None and known_at is None:
        wallets = dict(account.balances_fen)
    else:
        catch_up()
        as_of = aware(as_of, "as_of") or accounts.clock()
        wallets = queries.balance_as_of(str(the_id), as_of, aware(known_at, "known_at"))
    return {"account_id": str(the_id), "as_of": render.iso(as_of),
            "known_at": render.iso(known_at), "balance": render.yuan(wallets["electricity"]),
            "wallets": {w: render.yuan(f) for w, f in wallets.items()}}


@router.get("/accounts/{account_id}/statement", summary="Entries with running balance",
             **allow("accounts.read"))
def statement(account_id: str, accounts: Accounts, queries: Queries, catch_up: ReadModels,
              limit: Annotated[int, Depends(page_limit)],
              cursor: str | None = None, wallet: str | None = None,
              from_: Annotated[datetime | None, Query(alias="from")] = None,
              to: datetime | None = None) -> dict[str, Any]:
    the_id = parse_id(account_id, "account")
    accounts.get_account(the_id)
    catch_up()
    page = _page(lambda: queries.statement(str(the_id), limit=limit, cursor=cursor,
                                           wallet=wallet, from_=aware(from_, "from"),
                                           to=aware(to, "to")))
    return {"account_id": str(the_id),
            "items": [render.statement_entry(row) for row in page.items],
            "next_cursor": page.next_cursor}


@router.get("/accounts/{account_id}/events", summary="The raw immutable event history",
             **allow("events.read"))
def events(account_id: str, accounts: Accounts) -> dict[str, Any]:
    history = accounts.account_events(parse_id(account_id, "account"))
    return {"account_id": account_id, "events": [render.event(e) for e in history]}


def _page(run):
    try:
        return run()
    except ValueError as error:
        raise ApiProblem(400, "bad-cursor", str(error)) from None

