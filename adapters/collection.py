"""Data collection (数据采集): one row per gateway and polling cycle, and the report of
polls attempted, meters answered, success rate and longest gap per meter."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select

from projections.devices.tables import poll_results
from projections.metering.tables import gateways as gateway_table
from projections.metering.tables import meter_readings, meters, sites


def record_cycle(engine: Engine, site_id: str | None, started_at: datetime,
                 polled: list[dict], results: list[tuple[list, list]],
                 seconds: float) -> None:
    rows = [{"gateway_id": gateway["id"], "site_id": gateway.get("site_id") or site_id,
             "polled_at": started_at, "meters": len(ok) + len(bad), "answered": len(ok),
             "duration_ms": int(seconds * 1000)}
            for gateway, (ok, bad) in zip(polled, results)]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(poll_results), rows)


def latest_success(engine: Engine) -> list[dict[str, Any]]:
    """Each gateway's last cycle: when, meters, answered."""
    with engine.connect() as conn:
        last = select(poll_results.c.gateway_id,
                      func.max(poll_results.c.id).label("id")) \
            .group_by(poll_results.c.gateway_id).subquery()
        rows = conn.execute(select(poll_results, gateway_table.c.name, gateway_table.c.site_id
                                   .label("gateway_site"))
                            .join(last, last.c.id == poll_results.c.id)
                            .outerjoin(gateway_table,
                                       gateway_table.c.id == poll_results.c.gateway_id)).all()
    return [dict(row._mapping) for row in rows]


def collection_report(engine: Engine, from_day: date, to_day: date,
                      site_ids: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Per gateway and site-local day in [from_day, to_day]."""
    with engine.connect() as conn:
        site_rows = {r.id: r for r in conn.execute(select(sites)).all()}
        gateway_rows = {r.id: r for r in conn.execute(select(gateway_table)).all()
                        if site_ids is None or r.site_id in site_ids}
        zones = {sid: ZoneInfo(r.timezone) for sid, r in site_rows.items()}
        widest = (datetime.combine(from_day, time(), timezone.utc) - timedelta(days=1),
                  datetime.combine(to_day, time(), timezone.utc) + timedelta(days=2))
        polls = conn.execute(select(poll_results).where(
            poll_results.c.polled_at >= widest[0], poll_results.c.polled_at < widest[1],
            poll_results.c.gateway_id.in_(list(gateway_rows)))).all()
        meter_gateway = {r.id: r.gateway_id for r in conn.execute(
            select(meters.c.id, meters.c.gateway_id).where(
                meters.c.gateway_id.in_(list(gateway_rows)))).all()}
        readings = conn.execute(select(meter_readings.c.meter_id, meter_readings.c.read_at)
                                .where(meter_readings.c.read_at >= widest[0],
                                       meter_readings.c.read_at < widest[1],
                                       meter_readings.c.meter_id.in_(list(meter_gateway)))
                                .order_by(meter_readings.c.meter_id,
                                          meter_readings.c.read_at)).all()

    def local_day(gateway_id: str, at: datetime) -> date:
        zone = zones.get(gateway_rows[gateway_id].site_id, timezone.utc)
        return at.astimezone(zone).date()

    out: dict[tuple[str, date], dict[str, Any]] = {}

    def cell(gateway_id: str, day: date) -> dict[str, Any]:
        key = (gateway_id, day)
        if key not in out:
            gateway = gateway_rows[gateway_id]
            out[key] = {"day": day.isoformat(), "site_id": gateway.site_id,
                        "site": site_rows[gateway.site_id].name
                        if gateway.site_id in site_rows else None,
                        "gateway_id": gateway_id, "gateway": gateway.name,
                        "polls": 0, "meter_polls": 0, "answered": 0,
                        "longest_gap_s": None, "longest_gap_meter_id": None}
        return out[key]

    for poll in polls:
        day = local_day(poll.gateway_id, poll.polled_at)
        if from_day <= day <= to_day:
            row = cell(poll.gateway_id, day)
            row["polls"] += 1
            row["meter_polls"] += poll.meters
            row["answered"] += poll.answered
    by_meter: dict[str, list[datetime]] = defaultdict(list)
    for meter_id, read_at in readings:
        by_meter[meter_id].append(read_at)
    for meter_id, times in by_meter.items():
        gateway_id = meter_gateway[meter_id]
        for earlier, later in zip(times, times[1:]):
            day = local_day(gateway_id, later)
            if not from_day <= day <= to_day:
                continue
            gap = int((later - earlier).total_seconds())
            row = cell(gateway_id, day)
            if row["longest_gap_s"] is None or gap > row["longest_gap_s"]:
                row["longest_gap_s"], row["longest_gap_meter_id"] = gap, meter_id
    rows = sorted(out.values(), key=lambda r: (r["day"], r["site"] or "", r["gateway"]))
    for row in rows:
        row["success_rate"] = (f"{row['answered'] / row['meter_polls']:.4f}"
                               if row["meter_polls"] else None)
    return rows
