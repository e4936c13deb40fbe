"""Sites (with their time zone, buildings and units) and gateways."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest

SITE_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/site")
GATEWAY_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/gateway")
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_POLL_INTERVAL_S = 30 * 60
PROTOCOLS = ("modbus-tcp",)


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {name!r}") from None


def gateway_id_for(site_id: UUID, name: str) -> UUID:
    return uuid5(GATEWAY_NAMESPACE, f"{site_id}/{name}")


class Site(Aggregate):
    @event("Created")
    def __init__(self, name: str, timezone: str, poll_interval_s: int, actor: dict) -> None:
        self.name = name
        self.timezone = timezone
        self.poll_interval_s = poll_interval_s
        self.buildings: dict[str, str] = {}
        self.units: dict[str, dict] = {}

    @classmethod
    def create(cls, *, site_id: UUID, name: str, timezone: str, poll_interval_s: int,
               actor: dict) -> Site:
        if not name.strip():
            raise InvalidRequest("a site needs a name")
        check_timezone(timezone)
        if poll_interval_s < 60:
            raise InvalidRequest("the polling interval is at least 60 seconds")
        return cls._create(cls.Created, id=site_id, name=name, timezone=timezone,
                           poll_interval_s=poll_interval_s, actor=actor)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def add_building(self, code: str, name: str, actor: dict) -> None:
        if code in self.buildings:
            raise InvalidRequest(f"building {code!r} exists")
        self._building_added(code=code, name=name, actor=actor)

    @event("BuildingAdded")
    def _building_added(self, code: str, name: str, actor: dict) -> None:
        self.buildings[code] = name

    def add_unit(self, code: str, building: str, floor: str, area_m2: str | None,
                 actor: dict) -> None:
        if building not in self.buildings:
            raise InvalidRequest(f"unknown building {building!r}")
        if code in self.units:
            raise InvalidRequest(f"unit {code!r} exists")
        self._unit_added(code=code, building=building, floor=floor, area_m2=area_m2,
                         actor=actor)

    @event("UnitAdded")
    def _unit_added(self, code: str, building: str, floor: str, area_m2: str | None,
                    actor: dict) -> None:
        self.units[code] = {"building": building, "floor": floor, "area_m2": area_m2}


class Gateway(Aggregate):
    """A communication manager (DTU) that puts a bus of meters on TCP."""

    @event("Registered")
    def __init__(self, site_id: UUID, name: str, host: str, port: int, protocol: str,
                 actor: dict) -> None:
        self.site_id = site_id
        self.name = name
        self.host = host
        self.port = port
        self.protocol = protocol

    @classmethod
    def register(cls, *, site_id: UUID, name: str, host: str, port: int, protocol: str,
                 actor: dict) -> Gateway:
        if not name.strip() or not host.strip():
            raise InvalidRequest("a gateway needs a name and a host")
        if not 1 <= port <= 65535:
            raise InvalidRequest("port must be 1 to 65535")
        if protocol not in PROTOCOLS:
            raise InvalidRequest(f"protocol must be one of {', '.join(PROTOCOLS)}")
        return cls._create(cls.Registered, id=gateway_id_for(site_id, name), site_id=site_id,
                           name=name, host=host, port=port, protocol=protocol, actor=actor)

    def same_as(self, host: str, port: int, protocol: str) -> bool:
        return (self.host, self.port, self.protocol) == (host, port, protocol)

