"""Sites (with their time zone, buildings and units) and gateways."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest

SITE_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/site")
GATEWAY_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/gateway")
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_POLL_INTERVAL_S = 30 * 60
PROTOCOLS = ("modbus-tcp", "modbus-rtu-tcp", "dlt645-tcp")
TRANSPARENT = ("modbus-rtu-tcp", "dlt645-tcp")  # raw bus frames through the socket
CONNECTS = ("outbound", "inbound")
DEFAULT_BAUD = {"modbus-tcp": 9600, "modbus-rtu-tcp": 9600, "dlt645-tcp": 2400}
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


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
    """What puts a bus of meters on TCP: a Modbus TCP gateway, a transparent serial server
    the platform connects to (outbound), or a DTU that connects to the platform (inbound).

    ``Registered`` keeps its first shape; how the gateway is reached beyond Modbus TCP
    outbound is a ``ConnectionSet`` event right after it, so gateways stored before it
    existed read as ``modbus-tcp``, ``outbound``, 9600 baud."""

    @event("Registered")
    def __init__(self, site_id: UUID, name: str, host: str, port: int, protocol: str,
                 actor: dict) -> None:
        self.site_id = site_id
        self.name = name
        self.host = host
        self.port = port
        self.protocol = protocol
        self.connect = "outbound"
        self.registration_id: str | None = None
        self.heartbeat: str | None = None
        self.baud = DEFAULT_BAUD.get(protocol, 9600)

    @classmethod
    def register(cls, *, site_id: UUID, name: str, host: str | None, port: int | None,
                 protocol: str, actor: dict, connect: str = "outbound",
                 registration_id: str | None = None, heartbeat: str | None = None,
                 baud: int | None = None) -> Gateway:
        if not name.strip():
            raise InvalidRequest("a gateway needs a name")
        if protocol not in PROTOCOLS:
            raise InvalidRequest(f"protocol must be one of {', '.join(PROTOCOLS)}")
        if connect not in CONNECTS:
            raise InvalidRequest(f"connect must be one of {', '.join(CONNECTS)}")
        if baud is not None and baud not in BAUDS:
            raise InvalidRequest(f"baud must be one of {', '.join(map(str, BAUDS))}")
        if connect == "outbound":
            if not (host or "").strip():
                raise InvalidRequest("an outbound gateway needs a host")
            if port is None or not 1 <= port <= 65535:
                raise InvalidRequest("port must be 1 to 65535")
            if registration_id is not None or heartbeat is not None:
                raise InvalidRequest("registration_id and heartbeat are for inbound gateways")
        else:
            if protocol not in TRANSPARENT:
                raise InvalidRequest("an inbound gateway (a DTU) speaks modbus-rtu-tcp or "
                                     "dlt645-tcp")
            if host or port:
                raise InvalidRequest("an inbound gateway has no host or port: it calls in")
            check_packet(registration_id, "registration_id", required=True)
            check_packet(heartbeat, "heartbeat")
            host, port = "", 0
        gateway = cls._create(cls.Registered, id=gateway_id_for(site_id, name),
                              site_id=site_id, name=name, host=host, port=port,
                              protocol=protocol, actor=actor)
        baud = baud or DEFAULT_BAUD[protocol]
        if (connect, registration_id, heartbeat, baud) != ("outbound", None, None,
                                                           gateway.baud):
            gateway._connection_set(connect=connect, registration_id=registration_id,
                                    heartbeat=heartbeat, baud=baud, actor=actor)
        return gateway

    @event("ConnectionSet")
    def _connection_set(self, connect: str, registration_id: str | None,
                        heartbeat: str | None, baud: int, actor: dict) -> None:
        self.connect = connect
        self.registration_id = registration_id
        self.heartbeat = heartbeat
        self.baud = baud

    reachable = True  # as the device runtime last found it

    def went_unreachable(self, error: str, at: datetime, meters: int) -> bool:
        """The gateway cannot be reached: True when that is news (one alert)."""
        if not self.reachable:
            return False
        self._unreachable(error=error, at=at, meters=meters)
        return True

    @event("Unreachable")
    def _unreachable(self, error: str, at: datetime, meters: int) -> None:
        self.reachable = False

    def came_back(self, at: datetime) -> bool:
        if self.reachable:
            return False
        self._reachable(at=at)
        return True

    @event("Reachable")
    def _reachable(self, at: datetime) -> None:
        self.reachable = True

    def connection(self) -> dict:
        return {"host": self.host, "port": self.port, "protocol": self.protocol,
                "connect": self.connect, "registration_id": self.registration_id,
                "heartbeat": self.heartbeat, "baud": self.baud}

    def same_as(self, host: str | None, port: int | None, protocol: str,
                connect: str = "outbound", registration_id: str | None = None,
                heartbeat: str | None = None, baud: int | None = None) -> bool:
        if connect == "inbound":
            host, port = "", 0
        return self.connection() == {
            "host": host, "port": port, "protocol": protocol, "connect": connect,
            "registration_id": registration_id, "heartbeat": heartbeat,
            "baud": baud or DEFAULT_BAUD.get(protocol, 9600)}


def check_packet(text: str | None, what: str, required: bool = False) -> None:
    """Registration ids and heartbeats are short printable ASCII, as DTUs are set up."""
    if text is None:
        if required:
            raise InvalidRequest(f"an inbound gateway needs a {what}")
        return
    if not 1 <= len(text) <= 64 or not text.isascii() or not text.isprintable() \
            or text != text.strip():
        raise InvalidRequest(f"{what} must be 1 to 64 printable ASCII characters")
