"""The metering read models: sites, gateways, tariffs, meters, daily consumption, meter
alerts.

Like the ledger view, a batch is accumulated in memory first (``projections/batch.py``):
rows created in the batch take later changes in place, changes to older rows are grouped
into one executemany per set of columns, and daily consumption is added as per-batch
deltas with an upsert.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Connection, Table

from domain.meter import Meter
from domain.site import DEFAULT_BAUD, Gateway, Site
from domain.tariff import Tariff
from projections.batch import RowBatch
from projections.bulk import insert_rows, upsert_add
from projections.metering.tables import (
    VIEW_TABLES,
    consumption_daily,
    gateways,
    meter_alerts,
    meters,
    site_units,
    sites,
    tariffs,
)


class _Batch(RowBatch):
    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[dict] = []
        self.daily: dict[tuple[str, str], list] = {}


class MeteringView:
    name = "metering"
    tables: tuple[Table, ...] = VIEW_TABLES

    def apply_batch(self, conn: Connection, events: list[tuple[int, Any]]) -> None:
        self.prepare(events)(conn)

    def prepare(self, events: list[tuple[int, Any]]) -> Callable[[Connection], None]:
        """The batch's rows and changes, from the events alone; the function that writes
        them."""
        batch = _Batch()
        for position, event in events:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(batch, position, event)
            if isinstance(event, Meter.WentOffline):
                _alert_fixed("offline")(batch, position, event)
        return partial(self._flush, batch=batch)

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        batch.insert_new(conn)
        batch.apply_changes(conn)
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
}
