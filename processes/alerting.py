"""The alert policy: each money event's resulting balance is observed once, with a
forecast of the days it lasts (run by a ``processes/follower.py:PolicyProcessor``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from domain.account import Account
from ledger.commands import ObserveBalances

ALERTED_WALLETS = ("electricity", "water", "property_fee")
FORECAST_DAYS = 7
POLICY = {"kind": "policy", "id": "alerts"}


class AlertPolicy:
    """Balance warnings: each money event's resulting balance is observed once."""

    name = "alerts"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def act(self, observations: list) -> None:
        self.ledger.execute(ObserveBalances.of(observations), POLICY)

    def decide(self, conn: Connection, events: list[tuple[int, Any]]) -> list:
        latest: dict[tuple[UUID, str], tuple[int, str]] = {}
        for _, event in events:
            if isinstance(event, Account.MoneyEvent) and event.wallet in ALERTED_WALLETS:
                latest[(event.originator_id, event.wallet)] = (
                    event.balance_after_fen, str(event.transaction_id))
        return [(account_id, wallet, balance, cause,
                 days_left(conn, account_id, balance) if wallet != "property_fee" else None)
                for (account_id, wallet), (balance, cause) in latest.items()]


def days_left(conn: Connection, account_id: UUID, balance_fen: int) -> int | None:
    """How long the balance lasts at the last week's average daily charge."""
    from sqlalchemy import func

    from projections.metering.tables import consumption_daily

    rows = conn.execute(select(consumption_daily.c.day,
                               func.sum(consumption_daily.c.charge_fen))
                        .where(consumption_daily.c.account_id == str(account_id))
                        .group_by(consumption_daily.c.day)
                        .order_by(consumption_daily.c.day.desc()).limit(FORECAST_DAYS)).all()
    spent = sum(int(r[1]) for r in rows)
    if not rows or spent <= 0:
        return None
    return max(balance_fen, 0) * len(rows) // spent
