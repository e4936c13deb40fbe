"""Responses: fen become yuan strings here and nowhere else."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from domain.account import Account
from domain.money import fen_to_yuan_text
from domain.transaction import Transaction


def yuan(fen: int | None) -> str | None:
    return None if fen is None else fen_to_yuan_text(int(fen))


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def money_result(result: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": result["transaction_id"], "transaction_id": result["transaction_id"],
        "account_id": result["account_id"], "kind": result["kind"], "wallet": result["wallet"],
        "amount": yuan(result["amount_fen"]), "balance_after": yuan(result["balance_after_fen"]),
        "balances_after": {w: yuan(f) for w, f in result["balances_after_fen"].items()},
        "channel": result["channel"], "reference": result["reference"],
        "effective_at": result["effective_at"], "recorded_at": result["recorded_at"],
        "corrects": result["corrects"], "account_status": result["status"],
    }
    return body


def account(a: Account) -> dict[str, Any]:
    return {
        "id": str(a.id), "name": a.name, "site_id": a.site_id, "unit": a.unit,
        "contact": a.contact, "phone": a.phone, "area_m2": a.area_m2, "status": a.status,
        "balance": yuan(a.balance_fen("electricity")),
        "wallets": {w: yuan(f) for w, f in a.balances_fen.items()},
        "opened_at": iso(a.created_on), "closed_at": iso(a.closed_at),
    }


def opened(result: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    zero = yuan(0)
    return {"id": result["account_id"], **{k: a.get(k) for k in (
        "name", "site_id", "unit", "contact", "phone", "area_m2")},
        "status": result["status"], "balance": zero,
        "wallets": {"electricity": zero, "water": zero, "property_fee": zero},
        "opened_at": result["opened_at"], "closed_at": None}


def transaction(t: Transaction) -> dict[str, Any]:
    postings = t.posting_list
    return {
        "id": str(t.id), "account_id": str(t.account_id), "kind": t.kind, "wallet": t.wallet,
        "amount": yuan(t.amount_fen), "effective_at": iso(t.effective_at),
        "recorded_at": iso(t.recorded_at), "actor": t.actor,
        "idempotency_key": t.idempotency_key,
        "corrects": str(t.corrects) if t.corrects else None,
        "reversed_by": str(t.reversed_by) if t.reversed_by else None,
        "postings": [{"ledger_account": p.ledger_account, "debit": yuan(p.debit_fen),
                      "credit": yuan(p.credit_fen)} for p in postings],
        "total_debit": yuan(sum(p.debit_fen for p in postings)),
        "total_credit": yuan(sum(p.credit_fen for p in postings)),
    }


def statement_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "transaction_id": row["transaction_id"], "wallet": row["wallet"], "kind": row["kind"],
        "amount": yuan(row["amount_fen"]), "balance_after": yuan(row["balance_after_fen"]),
        "effective_at": iso(row["effective_at"]), "recorded_at": iso(row["recorded_at"]),
        "actor": row["actor"], "channel": row["channel"], "reference": row["reference"],
        "reason": row["reason"], "corrects": row["corrects"],
    }


def event(e: Any) -> dict[str, Any]:
    data = {k: _plain(v) for k, v in vars(e).items()
            if k not in ("originator_id", "originator_version", "timestamp")}
    return {"type": type(e).__qualname__, "version": e.originator_version,
            "timestamp": iso(e.timestamp), "data": data}


def _plain(value: Any) -> Any:
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
