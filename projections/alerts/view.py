"""The alerts read models: balance alerts, the account and wallet each series of alerts
watches, and the notifications sent for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select

from domain.alerts import BalanceAlerts, Notification
from projections.alerts.tables import VIEW_TABLES, alerts, alerts_owner, notifications
from projections.batch import RowBatch
from projections.bulk import insert_rows


class _Batch(RowBatch):
    def __init__(self) -> None:
        super().__init__()
        self.alert_accounts: dict[str, str] = {}
        self.alert_wallets: dict[str, str] = {}


class AlertView:
    name = "alerts"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        batch = _Batch()
        batch.gather(events, _HANDLERS)
        self._flush(conn, batch)

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        pending_alerts = batch.new.pop(alerts, {})
        batch.insert_new(conn)
        if pending_alerts:
            # An alert names its account; the Started event of an older batch does too.
            missing = {r["_alerts_id"] for r in pending_alerts.values() if not r["account_id"]}
            known = {}
            if missing:
                for alerts_id, account_id, wallet in conn.execute(
                        select(alerts_owner.c.alerts_id, alerts_owner.c.account_id,
                               alerts_owner.c.wallet)
                        .where(alerts_owner.c.alerts_id.in_(missing))):
                    known[alerts_id] = (account_id, wallet)
            rows = []
            for row in pending_alerts.values():
                if not row["account_id"]:
                    row["account_id"], row["wallet"] = known.get(row["_alerts_id"], ("", ""))
                rows.append({k: v for k, v in row.items() if k != "_alerts_id"})
            insert_rows(conn, alerts, rows)
        owners = [{"alerts_id": a, "account_id": acc, "wallet": batch.alert_wallets[a]}
                  for a, acc in batch.alert_accounts.items()]
        insert_rows(conn, alerts_owner, owners)
        batch.apply_changes(conn)


def _alert_raised(batch: _Batch, position: int, e: Any) -> None:
    key = f"{e.originator_id}/{e.originator_version}/{e.level}"
    batch.create(alerts, key, {
        "key": key, "position": position, "account_id": batch.alert_accounts.get(
            str(e.originator_id)) or "", "wallet": batch.alert_wallets.get(
            str(e.originator_id)) or "", "level": e.level, "balance_fen": e.balance_fen,
        "threshold_fen": e.threshold_fen, "days_left": e.days_left, "raised_at": e.timestamp,
        "_alerts_id": str(e.originator_id)})


def _alerts_started(batch: _Batch, position: int, e: Any) -> None:
    batch.alert_accounts[str(e.originator_id)] = str(e.account_id)
    batch.alert_wallets[str(e.originator_id)] = e.wallet


def _notification_queued(batch: _Batch, position: int, e: Any) -> None:
    batch.create(notifications, str(e.originator_id), {
        "id": str(e.originator_id), "alert_key": e.alert_key, "channel": e.channel,
        "status": "queued", "attempts": 0, "next_attempt_at": e.queued_at,
        "position": position})


def _notification_status(status: str):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        batch.change(notifications, str(e.originator_id), status=status,
                     attempts=e.originator_version - 1,
                     next_attempt_at=getattr(e, "retry_at", None))
    return handle


_HANDLERS = {
    BalanceAlerts.Started: _alerts_started,
    BalanceAlerts.AlertRaised: _alert_raised,
    Notification.Queued: _notification_queued,
    Notification.Sent: _notification_status("sent"),
    Notification.Failed: _notification_status("failed"),
    Notification.GivenUp: _notification_status("given_up"),
}
