"""Read queries over payment orders: those still pending, and what reconciliation matches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from projections.payments.tables import payment_orders


class PaymentQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pending(self, limit: int = 500) -> list[dict[str, Any]]:
        """Orders not yet paid, and orders with refunds still with the provider."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(payment_orders).where(payment_orders.c.status.in_(("created",
                                                                          "refunding")))
                .order_by(payment_orders.c.position).limit(limit))]


def credited_orders(engine: Engine, channel: str, start: datetime, end: datetime
                    ) -> list[dict[str, Any]]:
    """Orders of a channel credited (paid) between start and end."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(payment_orders).where(payment_orders.c.channel == channel,
                                         payment_orders.c.paid_at >= start,
                                         payment_orders.c.paid_at < end))]


def orders_by_number(engine: Engine, numbers: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for start in range(0, len(numbers), 500):
            chunk = numbers[start:start + 500]
            for row in conn.execute(select(payment_orders).where(
                    payment_orders.c.out_trade_no.in_(chunk))):
                found[row.out_trade_no] = dict(row._mapping)
    return found
