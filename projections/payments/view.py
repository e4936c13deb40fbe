"""The payments read models: payment orders and rejected provider notifications."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table

from domain.payment import PaymentOrder, RejectedNotification
from projections.batch import RowBatch
from projections.payments.tables import VIEW_TABLES, payment_orders, rejected_notifications

_Batch = RowBatch  # the rows are all there is to gather


class PaymentView:
    name = "payments"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        batch = _Batch()
        batch.gather(events, _HANDLERS)
        batch.insert_new(conn)
        batch.apply_changes(conn)


def _order_created(batch: _Batch, position: int, e: Any) -> None:
    batch.create(payment_orders, e.out_trade_no, {
        "out_trade_no": e.out_trade_no, "id": str(e.originator_id),
        "account_id": str(e.account_id), "channel": e.channel, "scene": e.scene,
        "amount_fen": e.amount_fen, "status": "created", "provider_transaction_id": None,
        "paid_at": None,
        "created_at": e.created_at, "expires_at": e.expires_at, "position": position})


def _order_status(status: str):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        values: dict[str, Any] = {"status": status}
        if getattr(e, "provider_transaction_id", None):
            values.update(provider_transaction_id=e.provider_transaction_id, paid_at=e.paid_at)
        # Grouped with the other changes of the batch into one executemany.
        batch.change(payment_orders, str(e.originator_id), **values)
    return handle


def _notification_rejected(batch: _Batch, position: int, e: Any) -> None:
    batch.create(rejected_notifications, str(e.originator_id), {
        "id": str(e.originator_id), "provider": e.provider, "reason": e.reason,
        "received_at": e.received_at, "position": position})


_HANDLERS = {
    PaymentOrder.Created: _order_created,
    PaymentOrder.PaidAndCredited: _order_status("credited"),
    PaymentOrder.Closed: _order_status("closed"),
    PaymentOrder.RefundRequested: _order_status("refunding"),
    PaymentOrder.RefundSucceeded: _order_status("refunded"),
    PaymentOrder.RefundFailed: _order_status("credited"),
    RejectedNotification.Recorded: _notification_rejected,
}
