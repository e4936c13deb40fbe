"""Read queries for the device runtime: gateways, their meters, due commands.

The gateways and the meters on them are metering's tables (``projections/metering/``):
the runtime polls what metering registered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from projections.devices.tables import device_commands
from projections.metering.tables import gateways, meters


class DeviceQueries:
    """What the device runtime needs to know: gateways, their meters, due commands."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def gateways(self, site_id: str | None = None) -> list[dict[str, Any]]:
        query = select(gateways)
        if site_id:
            query = query.where(gateways.c.site_id == site_id)
        return self._rows(query.order_by(gateways.c.position))

    def meters_of_gateway(self, gateway_id: str) -> list[dict[str, Any]]:
        return self._rows(select(meters.c.id, meters.c.meter_no, meters.c.address,
                                 meters.c.profile, meters.c.online).where(
                                     meters.c.gateway_id == gateway_id,
                                                         meters.c.status == "active")
                          .order_by(meters.c.address, meters.c.meter_no))

    def due_commands(self, now: datetime, gateway_id: str | None = None,
                     limit: int = 500) -> list[dict[str, Any]]:
        query = select(device_commands).where(
            device_commands.c.status.in_(("issued", "failed")),
            device_commands.c.next_attempt_at <= now)
        if gateway_id:
            query = query.where(device_commands.c.gateway_id == gateway_id)
        return self._rows(query.order_by(device_commands.c.position).limit(limit))

    def keep_power_lapsed(self, now: datetime) -> list[str]:
        return [r["id"] for r in self._rows(select(meters.c.id).where(
            meters.c.keep_power_until.is_not(None), meters.c.keep_power_until <= now))]

    def commands_of_meter(self, meter_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._rows(select(device_commands).where(device_commands.c.meter_id == meter_id)
                          .order_by(device_commands.c.position.desc()).limit(limit))

    def _rows(self, query) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
