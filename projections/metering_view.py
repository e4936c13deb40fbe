"""The metering read models: sites, gateways, tariffs, meters, daily consumption, alerts.

Like the ledger view, a batch is accumulated in memory first: rows created in the batch
take later changes in place, changes to older rows are grouped into one executemany per
set of columns, and daily consumption is added as per-batch deltas with an upsert.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, update

from domain.alerts import BalanceAlerts, Notification
from domain.device_command import DeviceCommand
from domain.meter import Meter
from domain.payment import PaymentOrder, RejectedNotification
from domain.property import PropertyFeeSchedule
from domain.site import DEFAULT_BAUD, Gateway, Site
from domain.tariff import Tariff
from projections.bulk import insert_rows, upsert_add
from projections.tables import (
    METERING_VIEW_TABLES,
    alerts,
    alerts_owner,
    notifications,
    consumption_daily,
    device_commands,
    gateways,
    meter_alerts,
    meters,
    payment_orders,
    property_fee_schedules,
    rejected_notifications,
    site_units,
    sites,
    tariffs,
)


class _Batch:
    def __init__(self) -> None:
        self.new: dict[Table, dict[str, dict]] = defaultdict(dict)
        self.changes: dict[tuple[Table, tuple[str, ...]], dict[str, dict]] = defaultdict(dict)
        self.alerts: list[dict] = []
        self.given_up: list[tuple[str, str, Any, int]] = []
        self.alert_accounts: dict[str, str] = {}
        self.alert_wallets: dict[str, str] = {}
        self.daily: dict[tuple[str, str], list] = {}

    def create(self, table: Table, key: str, row: dict) -> None:
        self.new[table][key] = row

    def change(self, table: Table, key: str, **values: Any) -> None:
        pending = self.new[table].get(key)
        if pending is not None:
            pending.update(values)
            return
        columns = tuple(sorted(values))
        self.changes[(table, columns)].setdefault(key, {}).update(values)


class MeteringView:
    name = "metering"
    tables: tuple[Table, ...] = METERING_VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        batch = _Batch()
        for position, event in events:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(batch, position, event)
            if isinstance(event, Meter.WentOffline):
                _alert_fixed("offline")(batch, position, event)
        self._flush(conn, batch)

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        pending_alerts = batch.new.pop(alerts, {})
        for table, rows in batch.new.items():
            insert_rows(conn, table, list(rows.values()))
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
        for (table, columns), rows in batch.changes.items():
            statement = update(table).where(table.c.id == bindparam("b_key")).values(
                {c: bindparam(f"b_{c}") for c in columns})
            conn.execute(statement, [{"b_key": key, **{f"b_{c}": v for c, v in row.items()}}
                                     for key, row in rows.items()])
        for command_id, reason, at, position in batch.given_up:
            meter_id = conn.execute(select(device_commands.c.meter_id).where(
                device_commands.c.id == command_id)).scalar()
            batch.alerts.append({"position": position, "meter_id": meter_id,
                                 "kind": "command_given_up", "read_at": None,
                                 "reason": reason, "raised_at": at})
        insert_rows(conn, meter_alerts, batch.alerts)
        if batch.daily:
            upsert_add(conn, consumption_daily,
                       [{"meter_id": m, "day": d, "account_id": v[2], "energy_wh": v[0],
                         "charge_fen": v[1], "cost_units": v[3]}
                        for (m, d), v in batch.daily.items()],
                       ["meter_id", "day"], ["energy_wh", "charge_fen", "cost_units"])


def _site_created(batch: _Batch, position: int, e: Site.Created) -> None:
    batch.create(sites, str(e.originator_id), {
        "id": str(e.originator_id), "name": e.name, "timezone": e.timezone,
        "poll_interval_s": e.poll_interval_s})


def _unit_added(batch: _Batch, position: int, e: Any) -> None:
    batch.create(site_units, f"{e.originator_id}/{e.code}", {
        "site_id": str(e.originator_id), "code": e.code, "building": e.building,
        "floor": e.floor, "area_m2": e.area_m2})


def _gateway_registered(batch: _Batch, position: int, e: Gateway.Registered) -> None:
    batch.create(gateways, str(e.originator_id), {
        "id": str(e.originator_id), "site_id": str(e.site_id), "name": e.name, "host": e.host,
        "port": e.port, "protocol": e.protocol, "connect": "outbound",
        "registration_id": None, "heartbeat": None,
        "baud": DEFAULT_BAUD.get(e.protocol, 9600), "reachable": True,
        "position": position})


def _gateway_reachable(reachable: bool):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        batch.change(gateways, str(e.originator_id), reachable=reachable)
        if not reachable:  # one alert for the gateway, none for each of its meters
            batch.alerts.append({"position": position, "meter_id": str(e.originator_id),
                                 "kind": "gateway_offline", "read_at": None,
                                 "reason": f"gateway unreachable ({e.error}): its "
                                           f"{e.meters} meter(s) are offline",
                                 "raised_at": e.timestamp})
    return handle


def _gateway_connection(batch: _Batch, position: int, e: Any) -> None:
    batch.change(gateways, str(e.originator_id), connect=e.connect,
                 registration_id=e.registration_id, heartbeat=e.heartbeat, baud=e.baud)


def _tariff_created(batch: _Batch, position: int, e: Tariff.Created) -> None:
    batch.create(tariffs, str(e.originator_id), {
        "id": str(e.originator_id), "name": e.name, "utility": e.utility,
        "kind": e.spec["kind"], "versions": 1, "current_from": e.effective_from,
        "position": position})


def _tariff_version(batch: _Batch, position: int, e: Any) -> None:
    batch.change(tariffs, str(e.originator_id), kind=e.spec["kind"],
                 versions=e.originator_version, current_from=e.effective_from)


def _meter_registered(batch: _Batch, position: int, e: Meter.Registered) -> None:
    batch.create(meters, str(e.originator_id), {
        "id": str(e.originator_id), "meter_no": e.meter_no, "kind": e.kind, "mode": e.mode,
        "site_id": _text(e.site_id), "gateway_id": _text(e.gateway_id), "address": e.address,
        "profile": e.profile, "ct_ratio": e.ct_ratio, "building": e.building,
        "floor": e.floor, "unit": e.unit, "account_id": None, "tariff_id": None,
        "status": "active", "replaced_by": None, "online": True, "keep_power_until": None,
        "position": position})


def _bound(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), account_id=str(e.account_id))


def _unbound(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), account_id=None)


def _tariff_assigned(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), tariff_id=str(e.tariff_id))


def _measured(batch: _Batch, position: int, e: Any) -> None:
    # The meter's last reading is read from the meter itself, not kept here: one row
    # update per reading would cost more than all the other rows of a batch together.
    meter_id = str(e.originator_id)
    key = (meter_id, e.local_day)
    sums = batch.daily.setdefault(key, [0, 0, _text(e.account_id), 0])
    sums[0] += e.energy_wh
    sums[1] += e.charge_fen
    sums[3] += sum(s["cost_units"] for s in e.slices)
    if e.account_id is not None:
        sums[2] = str(e.account_id)


def _unpriced_priced(batch: _Batch, position: int, e: Any) -> None:
    # Energy measured earlier without a price now has one: its cost joins the day.
    sums = batch.daily.setdefault((str(e.originator_id), e.local_day), [0, 0, None, 0])
    sums[3] += sum(s["cost_units"] for s in e.slices)


def _alert(kind: str):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        batch.alerts.append({"position": position, "meter_id": str(e.originator_id),
                             "kind": kind, "read_at": e.read_at, "reason": e.reason,
                             "raised_at": e.timestamp})
    return handle


def _alert_fixed(kind: str):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        reason = {"relay_mismatch": f"meter reports {getattr(e, 'reported', '')}, the "
                                    f"platform wants {getattr(e, 'wanted', '')}",
                  "offline": f"no answer to {getattr(e, 'failures', '')} polls: "
                             f"{getattr(e, 'error', '')}",
                  "overload": f"{getattr(e, 'power_w', '')} W above the "
                              f"{getattr(e, 'limit_w', '')} W limit: tripped"}[kind]
        batch.alerts.append({"position": position, "meter_id": str(e.originator_id),
                             "kind": kind, "read_at": None, "reason": reason,
                             "raised_at": e.timestamp})
    return handle


def _replaced(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), status="replaced",
                 replaced_by=str(e.new_meter_id), account_id=None)


def _keep_power_set(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), keep_power_until=e.until)


def _keep_power_released(batch: _Batch, position: int, e: Any) -> None:
    batch.change(meters, str(e.originator_id), keep_power_until=None)


def _online(online: bool):
    def handle(batch: _Batch, position: int, e: Any) -> None:
        batch.change(meters, str(e.originator_id), online=online)
    return handle


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


def _fee_schedule(batch: _Batch, position: int, e: Any) -> None:
    batch.create(property_fee_schedules, str(e.account_id), {
        "account_id": str(e.account_id), "day_of_month": e.day_of_month,
        "position": position})


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


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_HANDLERS = {
    Site.Created: _site_created,
    Site.UnitAdded: _unit_added,
    Gateway.Registered: _gateway_registered,
    Gateway.ConnectionSet: _gateway_connection,
    Gateway.Unreachable: _gateway_reachable(False),
    Gateway.Reachable: _gateway_reachable(True),
    Tariff.Created: _tariff_created,
    Tariff.VersionAdded: _tariff_version,
    Meter.Registered: _meter_registered,
    Meter.BoundToAccount: _bound,
    Meter.Unbound: _unbound,
    Meter.TariffAssigned: _tariff_assigned,
    Meter.ConsumptionMeasured: _measured,
    Meter.UnpricedConsumptionPriced: _unpriced_priced,
    Meter.ReadingAnomalyDetected: _alert("reading_anomaly"),
    Meter.ReadingHeldForReview: _alert("reading_held"),
    Meter.Replaced: _replaced,
    Meter.KeepPowerSet: _keep_power_set,
    Meter.KeepPowerReleased: _keep_power_released,
    Meter.WentOffline: _online(False),
    Meter.OfflineWithGateway: _online(False),
    Meter.CameOnline: _online(True),
    Meter.RelayMismatchFound: _alert_fixed("relay_mismatch"),
    Meter.OverloadDetected: _alert_fixed("overload"),
    DeviceCommand.Issued: _command_issued,
    DeviceCommand.Sent: _command_sent,
    DeviceCommand.Acknowledged: _command_status("acknowledged"),
    DeviceCommand.Failed: _command_status("failed"),
    DeviceCommand.GivenUp: _command_given_up,
    PaymentOrder.Created: _order_created,
    PaymentOrder.PaidAndCredited: _order_status("credited"),
    PaymentOrder.Closed: _order_status("closed"),
    PaymentOrder.RefundRequested: _order_status("refunding"),
    PaymentOrder.RefundSucceeded: _order_status("refunded"),
    PaymentOrder.RefundFailed: _order_status("credited"),
    RejectedNotification.Recorded: _notification_rejected,
    PropertyFeeSchedule.Set: _fee_schedule,
    BalanceAlerts.Started: _alerts_started,
    BalanceAlerts.AlertRaised: _alert_raised,
    Notification.Queued: _notification_queued,
    Notification.Sent: _notification_status("sent"),
    Notification.Failed: _notification_status("failed"),
    Notification.GivenUp: _notification_status("given_up"),
}
