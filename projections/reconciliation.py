"""Reconciling a provider's daily bill with the orders this platform credited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from projections.payments.queries import credited_orders, orders_by_number

CREDITED = ("credited", "refunding", "refunded")


def reconcile(engine: Engine, channel: str, lines: Sequence[Any]) -> dict[str, Any]:
    """Match bill payments to orders by out_trade_no (and transaction id).

    - matched: paid on the bill, credited here, same amount;
    - paid_not_credited: on the bill, but unknown here or never credited;
    - amount_differs: on both, with different amounts;
    - credited_unknown_to_provider: credited here on a day the bill covers, not on it.
    """
    payments = [line for line in lines if line.kind == "payment"]
    orders = orders_by_number(engine, [line.out_trade_no for line in payments])
    report: dict[str, list] = {"matched": [], "paid_not_credited": [], "amount_differs": [],
                               "credited_unknown_to_provider": []}
    for line in payments:
        order = orders.get(line.out_trade_no)
        row = {"out_trade_no": line.out_trade_no, "transaction_id": line.transaction_id,
               "bill_amount_fen": line.amount_fen, "paid_at": line.at.isoformat(),
               "order_amount_fen": order["amount_fen"] if order else None,
               "order_status": order["status"] if order else None}
        if order is None or order["status"] not in CREDITED:
            report["paid_not_credited"].append(row)
        elif order["amount_fen"] != line.amount_fen:
            report["amount_differs"].append(row)
        else:
            report["matched"].append(row)
    days = sorted({line.at.date() for line in lines})
    on_bill = {line.out_trade_no for line in payments}
    for day in days:
        zone = lines[0].at.tzinfo
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        for order in credited_orders(engine, channel, start, start + timedelta(days=1)):
            if order["out_trade_no"] not in on_bill:
                report["credited_unknown_to_provider"].append({
                    "out_trade_no": order["out_trade_no"],
                    "transaction_id": order["provider_transaction_id"],
                    "bill_amount_fen": None, "order_amount_fen": order["amount_fen"],
                    "paid_at": order["paid_at"].isoformat() if order["paid_at"] else None,
                    "order_status": order["status"]})
    return {"channel": channel, "days": [d.isoformat() for d in days],
            "bill_payments": len(payments),
            "bill_refunds": sum(1 for line in lines if line.kind == "refund"), **report}
