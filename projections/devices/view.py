"""The device commands read model: each command's status, attempts and next attempt.

A command given up is also a meter alert: the one row this view writes to a table of
another feature's (``meter_alerts`` of ``projections/metering/``), where a meter's other
alerts are, after the metering view has written the batch's own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select

from domain.device_command import DeviceCommand
from projections.batch import RowBatch
from projections.bulk import insert_rows
from projections.devices.tables import VIEW_TABLES, device_commands
from projections.metering.tables import meter_alerts


class _Batch(RowBatch):
    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[dict] = []
        self.given_up: list[tuple[str, str, Any, int]] = []


class DeviceView:
    name = "devices"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        batch = _Batch()
        batch.gather(events, _HANDLERS)
        self._flush(conn, batch)

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        batch.insert_new(conn)
        batch.apply_changes(conn)
        for command_id, reason, at, position in batch.given_up:
            meter_id = conn.execute(select(device_commands.c.meter_id).where(
                device_commands.c.id == command_id)).scalar()
            batch.alerts.append({"position": position, "meter_id": meter_id,
                                 "kind": "command_given_up", "read_at": None,
                                 "reason": reason, "raised_at": at})
        insert_rows(conn, meter_alerts, batch.alerts)


def _command_issued(batch: _Batch, position: int, e: Any) -> None:
    batch.create(device_commands, str(e.originator_id), {
        "id": str(e.originator_id), "meter_id": str(e.meter_id),
        "gateway_id": _text(e.gateway_id), "action": e.action, "status": "issued",
        "attempts": 0, "next_attempt_at": e.issued_at, "issued_at": e.issued_at,
        "position": position})


def _command_sent(batch: _Batch, position: int, e: Any) -> None:
    batch.change(device_commands, str(e.originator_id), status="sent", attempts=e.attempt,
                 next_attempt_at=None)


def _command_status(status: str):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        batch.change(device_commands, str(e.originator_id), status=status,
                     next_attempt_at=getattr(e, "retry_at", None))
    return handle


def _command_given_up(batch: _Batch, position: int, e: Any) -> None:
    _command_status("given_up")(batch, position, e)
    batch.given_up.append((str(e.originator_id), e.reason, e.timestamp, position))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_HANDLERS = {
    DeviceCommand.Issued: _command_issued,
    DeviceCommand.Sent: _command_sent,
    DeviceCommand.Acknowledged: _command_status("acknowledged"),
    DeviceCommand.Failed: _command_status("failed"),
    DeviceCommand.GivenUp: _command_given_up,
}
