"""The property read model: each account's property-fee schedule."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table

from domain.property import PropertyFeeSchedule
from projections.batch import RowBatch
from projections.property.tables import VIEW_TABLES, property_fee_schedules

_Batch = RowBatch  # the rows are all there is to gather


class PropertyView:
    name = "property"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        batch = _Batch()
        batch.gather(events, _HANDLERS)
        batch.insert_new(conn)
        batch.apply_changes(conn)


def _fee_schedule(batch: _Batch, position: int, e: Any) -> None:
    batch.create(property_fee_schedules, str(e.account_id), {
        "account_id": str(e.account_id), "day_of_month": e.day_of_month,
        "position": position})


_HANDLERS = {
    PropertyFeeSchedule.Set: _fee_schedule,
}
