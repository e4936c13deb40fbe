"""Read queries over the metering read models and the readings table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from projections.metering.tables import (
    consumption_daily,
    gateways,
    meter_alerts,
    meter_readings,
    meters,
    sites,
    tariffs,
)
from projections.paging import Page, decode_cursor, encode_cursor

GROUPS = ("meter", "account", "building")
PERIODS = ("day", "month")


class MeteringQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_sites(self, site_ids: frozenset[str] | None = None) -> list[dict[str, Any]]:
        query = select(sites).order_by(sites.c.name)
        if site_ids is not None:
            query = query.where(sites.c.id.in_(site_ids))
        return self._rows(query)

    def list_gateways(self, site_id: str | None = None,
                      site_ids: frozenset[str] | None = None) -> list[dict[str, Any]]:
        query = select(gateways).order_by(gateways.c.position)
        if site_id:
            query = query.where(gateways.c.site_id == site_id)
        if site_ids is not None:
            query = query.where(gateways.c.site_id.in_(site_ids))
        return self._rows(query)

    def list_tariffs(self) -> list[dict[str, Any]]:
        return self._rows(select(tariffs).order_by(tariffs.c.position))

    def list_meters(self, *, limit: int, cursor: str | None, site_id: str | None = None,
                    gateway_id: str | None = None, account_id: str | None = None,
                    site_ids: frozenset[str] | None = None,
                    account_ids: frozenset[str] | None = None) -> Page:
        query = select(meters).where(meters.c.position > decode_cursor(cursor))
        if site_ids is not None:
            query = query.where(meters.c.site_id.in_(site_ids))
        if account_ids is not None:
            query = query.where(meters.c.account_id.in_(account_ids))
        for column, value in (("site_id", site_id), ("gateway_id", gateway_id),
                              ("account_id", account_id)):
            if value:
                query = query.where(meters.c[column] == value)
        rows = self._rows(query.order_by(meters.c.position).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1]["position"]) if more and rows else None)

    def sheet_rows(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Meters with their gateways, in the layout of the import sheet."""
        query = (select(meters, gateways.c.name.label("gateway_name"),
                        gateways.c.host.label("gateway_host"),
                        gateways.c.port.label("gateway_port"),
                        gateways.c.protocol.label("gateway_protocol"),
                        gateways.c.connect.label("gateway_connect"),
                        gateways.c.registration_id.label("gateway_registration_id"),
                        gateways.c.heartbeat.label("gateway_heartbeat"),
                        gateways.c.baud.label("gateway_baud"))
                 .select_from(meters.outerjoin(gateways, meters.c.gateway_id == gateways.c.id))
                 .where(meters.c.status == "active").order_by(meters.c.position))
        if site_id:
            query = query.where(meters.c.site_id == site_id)
        return self._rows(query)

    def readings(self, meter_id: str, *, limit: int, from_: datetime | None,
                 to: datetime | None, cursor: str | None, newest_first: bool = False) -> Page:
        after = decode_cursor(cursor)
        query = select(meter_readings).where(meter_readings.c.meter_id == meter_id)
        if from_:
            query = query.where(meter_readings.c.read_at >= from_)
        if to:
            query = query.where(meter_readings.c.read_at < to)
        order = meter_readings.c.read_at.desc() if newest_first else meter_readings.c.read_at
        rows = self._rows(query.order_by(order).offset(after).limit(limit + 1))
        more = len(rows) > limit
        return Page(rows[:limit], encode_cursor(after + limit) if more else None)

    def alerts(self, meter_id: str) -> list[dict[str, Any]]:
        return self._rows(select(meter_alerts).where(meter_alerts.c.meter_id == meter_id)
                          .order_by(meter_alerts.c.id))

    def energy(self, *, group_by: str, period: str, from_day: str | None, to_day: str | None,
               site_id: str | None = None) -> list[dict[str, Any]]:
        """Energy (Wh) and charges (fen) per meter, account or building, per day or month.

        Days are the site's local days; ``to_day`` is exclusive.
        """
        assert group_by in GROUPS and period in PERIODS
        when = consumption_daily.c.day if period == "day" else \
            func.substr(consumption_daily.c.day, 1, 7)
        key = {"meter": meters.c.meter_no, "account": consumption_daily.c.account_id,
               "building": meters.c.building}[group_by]
        query = (select(key.label("key"), when.label("period"),
                        func.sum(consumption_daily.c.energy_wh).label("energy_wh"),
                        func.sum(consumption_daily.c.charge_fen).label("charge_fen"))
                 .select_from(consumption_daily.join(meters,
                                                     consumption_daily.c.meter_id == meters.c.id))
                 .group_by(key, when).order_by(when, key))
        if from_day:
            query = query.where(consumption_daily.c.day >= from_day)
        if to_day:
            query = query.where(consumption_daily.c.day < to_day)
        if site_id:
            query = query.where(meters.c.site_id == site_id)
        return [{**r, "energy_wh": int(r["energy_wh"]), "charge_fen": int(r["charge_fen"])}
                for r in self._rows(query)]

    def _rows(self, query) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


def pool_costs(engine: Engine, meter_ids: list, first_day: str, last_day: str
               ) -> tuple[int, int]:
    """Energy (Wh) and exact cost (1e-5 fen) of meters over local days, inclusive."""
    with engine.connect() as conn:
        energy, cost = conn.execute(
            select(func.coalesce(func.sum(consumption_daily.c.energy_wh), 0),
                   func.coalesce(func.sum(consumption_daily.c.cost_units), 0))
            .where(consumption_daily.c.meter_id.in_([str(m) for m in meter_ids]),
                   consumption_daily.c.day >= first_day,
                   consumption_daily.c.day <= last_day)).one()
    return int(energy), int(cost)
