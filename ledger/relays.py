"""What the features share about meters: the zone a meter's days are local to, and a
relay order from the enforcement policy. Pure functions of what they are given."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.device_command import DeviceCommand
from domain.errors import SiteNotFound
from domain.meter import Meter
from domain.site import DEFAULT_TIMEZONE, Site
from ledger.core.types import Loader

ENFORCEMENT = {"kind": "policy", "id": "enforcement"}
RELAY_ACTIONS = {"trip": "open", "close": "closed"}


def zone_of(meter: Meter, load: Loader) -> ZoneInfo:
    """The time zone of the meter's site (the default for a meter without one)."""
    if meter.site_id is None:
        return ZoneInfo(DEFAULT_TIMEZONE)
    return load(meter.site_id, Site, SiteNotFound).zone


def site_zone(find: Callable[[UUID, type], Any], site_id: str | None) -> ZoneInfo:
    """The time zone of a site by id, the default when there is none."""
    site = find(UUID(site_id), Site) if site_id else None
    return site.zone if isinstance(site, Site) else ZoneInfo(DEFAULT_TIMEZONE)


def order_relay(meter: Meter, action: str, why: str, cause: str, now: datetime,
                reason: str) -> DeviceCommand:
    """A trip or close ordered by the enforcement policy, its id fixed by ``cause``."""
    command = DeviceCommand.issue(
        meter_id=meter.id, meter_no=meter.meter_no, gateway_id=meter.gateway_id,
        action=action, reason=reason, cause=cause,
        payload={"relay": RELAY_ACTIONS[action]}, issued_at=now, actor=ENFORCEMENT)
    meter.order_relay(RELAY_ACTIONS[action], command.id, why, ENFORCEMENT)
    return command
