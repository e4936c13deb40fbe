"""The ``Transaction`` record every money command stores beside its money events: what
was posted, and the answer a repeat of the request gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from domain.account import Account, MoneyContext
from domain.transaction import Transaction


def transaction_record(kind: str, account: Account, ctx: MoneyContext,
                       events: Sequence[Account.MoneyEvent], digest: str,
                       corrects: UUID | None = None) -> Transaction:
    postings = [posting for event in events for posting in event.postings]
    wallets = {event.wallet for event in events}
    wallet = wallets.pop() if len(wallets) == 1 else None
    amount_fen = sum(event.amount_fen for event in events)
    result: dict[str, Any] = {
        "transaction_id": str(ctx.transaction_id), "account_id": str(account.id),
        "kind": kind, "wallet": wallet, "amount_fen": amount_fen,
        "balance_after_fen": events[-1].balance_after_fen if wallet else None,
        "balances_after_fen": dict(account.balances_fen),
        "channel": events[0].channel if events else None,
        "reference": events[0].reference if events else None,
        "effective_at": ctx.effective_at.isoformat(),
        "recorded_at": ctx.recorded_at.isoformat(),
        "corrects": str(corrects) if corrects else None,
        "status": account.status,
    }
    return Transaction.record(
        transaction_id=ctx.transaction_id, account_id=account.id, kind=kind, wallet=wallet,
        amount_fen=amount_fen, postings=postings, effective_at=ctx.effective_at,
        recorded_at=ctx.recorded_at, actor=ctx.actor, idempotency_key=ctx.idempotency_key,
        request_fingerprint=digest, corrects=corrects, result=result)
