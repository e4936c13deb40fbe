"""Transactions, reversals and the trial balance: what auditors read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api import render
from api.auth import allow
from api.deps import actor, aware, parse_id, required_idempotency_key
from api.routes.access import pending_command
from api.routes.accounts import money_answer
from api.schemas import Reversal
from api.services import Access, AccessReads, Accounts, Approvals, Config, Metering, Queries, \
    ReadModels
from ledger.commands import Reverse
from ledger.config import Settings
from ledger.metering import MeteringService
from projections.access.queries import AccessQueries

router = APIRouter(tags=["ledger"])


@router.get("/transactions/{transaction_id}", summary="One transaction with its postings",
             **allow("ledger.read"))
def get_transaction(transaction_id: str, accounts: Accounts) -> dict[str, Any]:
    return render.transaction(accounts.get_transaction(parse_id(transaction_id, "transaction")))


@router.post("/transactions/{transaction_id}/reversal", status_code=201,
             summary="Reverse (冲正) a top-up, refund or gift exactly, once",
             **allow("money.reverse"))
def reverse(transaction_id: str, body: Reversal, accounts: Accounts, approvals: Approvals,
            access: Access, catch_up: ReadModels, who: Annotated[dict, Depends(actor)],
            key: Annotated[str, Depends(required_idempotency_key)]) -> JSONResponse:
    command = Reverse(parse_id(transaction_id, "transaction"), reason=body.reason,
                      force=body.force, idempotency_key=key)
    if approvals.needs_second_person(command):
        original = accounts.get_transaction(command.transaction_id)
        original.require_reversible()  # ask a second person only for what can be done
        account = accounts.get_account(original.account_id)
        return pending_command(access, catch_up, command, site_id=account.site_id, who=who,
                               summary=f"reverse the {original.kind} of "
                                       f"{render.yuan(original.amount_fen)} on "
                                       f"{account.name}: {body.reason}")
    outcome = accounts.carry_out_reversal(command, who)
    return money_answer(catch_up, outcome)


@router.get("/ledger/trial-balance", summary="Debit and credit totals per ledger account",
             **allow("ledger.read", "global"))
def trial_balance(queries: Queries, catch_up: ReadModels, as_of: datetime | None = None,
                  known_at: datetime | None = None) -> dict[str, Any]:
    catch_up()
    rows = queries.trial_balance(aware(as_of, "as_of"), aware(known_at, "known_at"))
    total_debit = sum(r["debit_fen"] for r in rows)
    total_credit = sum(r["credit_fen"] for r in rows)
    return {
        "as_of": render.iso(as_of), "known_at": render.iso(known_at),
        "accounts": [{"ledger_account": r["ledger_account"], "debit": render.yuan(r["debit_fen"]),
                      "credit": render.yuan(r["credit_fen"]),
                      "balance": render.yuan(r["debit_fen"] - r["credit_fen"])} for r in rows],
        "total_debit": render.yuan(total_debit), "total_credit": render.yuan(total_credit),
        "balanced": total_debit == total_credit,
    }


@router.get("/transactions/{transaction_id}/receipt",
            summary="A receipt (三联单) for a top-up, refund or other money transaction",
             **allow("accounts.read"))
def receipt(transaction_id: str, accounts: Accounts, metering: Metering,
            operators: AccessReads, settings: Config,
            format: Annotated[str, Query(pattern="^(html|pdf)$")] = "html") -> Response:
    transaction = accounts.get_transaction(parse_id(transaction_id, "transaction"))
    account = accounts.get_account(transaction.account_id)
    result = transaction.result
    return _receipt(settings, format, render.receipt_fields(
        account=account, site=_site_of(metering, account), kind=transaction.kind,
        number=str(transaction.id), wallet=transaction.wallet,
        amount_fen=transaction.amount_fen, balance_after_fen=result.get("balance_after_fen"),
        channel=result.get("channel"), when=transaction.effective_at,
        actor=transaction.actor, username_of=_username_of(operators)))


@router.get("/accounts/{account_id}/receipt",
            summary="The account opening receipt (开户), in three copies",
             **allow("accounts.read"))
def opening_receipt(account_id: str, accounts: Accounts, metering: Metering,
                    operators: AccessReads, settings: Config,
                    format: Annotated[str, Query(pattern="^(html|pdf)$")] = "html") -> Response:
    account = accounts.get_account(parse_id(account_id, "account"))
    return _receipt(settings, format, render.receipt_fields(
        account=account, site=_site_of(metering, account), kind="open", number=str(account.id),
        wallet=None, amount_fen=0, balance_after_fen=0, channel=None,
        when=account.created_on, actor=account.opened_by,
        username_of=_username_of(operators)))


def _receipt(settings: Settings, format: str, fields: dict[str, str]) -> Response:
    from adapters.receipts import receipt_html, receipt_pdf

    if format == "pdf":
        return Response(receipt_pdf(fields), media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="receipt-{fields["transaction_id"]}.pdf"'})
    return HTMLResponse(receipt_html(fields, settings.receipt_template))


def _site_of(metering: MeteringService, account: Any) -> Any | None:
    """The shop's site (for its name and time zone), if the shop names one that exists."""
    from domain.errors import SiteNotFound

    if not account.site_id:
        return None
    try:
        return metering.get_site(UUID(str(account.site_id)))
    except (ValueError, SiteNotFound):
        return None


def _username_of(operators: AccessQueries):
    def lookup(operator_id: str) -> str | None:
        row = operators.operator(operator_id)
        return row["username"] if row else None
    return lookup
