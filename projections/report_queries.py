"""The operational and financial reports as one query object over the read models, so
that routes ask it instead of holding an engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from projections import reconciliation, reports
from projections.alerts.tables import alerts
from projections.metering.tables import consumption_daily, gateways, meter_alerts, meters


class ReportQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def account_periods(self, month: str, zone: ZoneInfo,
                        known_at: datetime | None = None) -> list[dict[str, Any]]:
        return reports.account_periods(self.engine, month, zone, known_at)

    def sales(self, period: str, from_: datetime, to: datetime, zone: ZoneInfo,
              known_at: datetime | None = None) -> list[dict[str, Any]]:
        return reports.sales(self.engine, period, from_, to, zone, known_at)

    def reconcile(self, channel: str, lines: Sequence[Any]) -> dict[str, Any]:
        return reconciliation.reconcile(self.engine, channel, lines)

    def balance_alerts(self) -> list[Any]:
        """Balance alerts, newest first."""
        with self.engine.connect() as conn:
            return conn.execute(select(alerts).order_by(alerts.c.position.desc())).all()

    def meter_alarms(self) -> list[Any]:
        """Meter alarms with their meter's number, newest first."""
        with self.engine.connect() as conn:
            return conn.execute(select(meter_alerts, meters.c.meter_no).join(
                meters, meters.c.id == meter_alerts.c.meter_id)
                .order_by(meter_alerts.c.id.desc())).all()

    def active_meters_by_gateway(self) -> list[Any]:
        """Every active meter: number, online, and its gateway's name, host and port."""
        with self.engine.connect() as conn:
            return conn.execute(select(meters.c.meter_no, meters.c.online, gateways.c.name,
                                       gateways.c.host, gateways.c.port)
                                .select_from(meters.outerjoin(
                                    gateways, gateways.c.id == meters.c.gateway_id))
                                .where(meters.c.status == "active")).all()

    def site_energy_by_meter(self, site_id: str, first_day: str,
                             last_day: str) -> list[tuple[str, int]]:
        """(meter id, energy_wh) of every active meter of a site, in the local days."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(meters.c.id, func.coalesce(func.sum(
                consumption_daily.c.energy_wh), 0)).select_from(meters.outerjoin(
                    consumption_daily, (consumption_daily.c.meter_id == meters.c.id)
                    & (consumption_daily.c.day >= first_day)
                    & (consumption_daily.c.day <= last_day)))
                .where(meters.c.site_id == site_id, meters.c.status == "active")
                .group_by(meters.c.id)).all()
        return [(meter_id, int(energy_wh)) for meter_id, energy_wh in rows]
