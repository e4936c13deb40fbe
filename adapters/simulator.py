"""The meter simulator: N meters of profile ``ref-prepaid-v1`` behind M gateways.

Each gateway is a Modbus TCP server on 127.0.0.1; behind it the meters share one
simulated RS-485 bus: one transaction at a time, each taking as long as its bytes need at
the bus speed (default 9600 baud, 8N1, with the 3.5-character gap either side). Meters
consume energy at their load while their relay is closed, verify secure frames exactly as
PROTOCOLS.md says (MAC, meter number, counter, format) and honour keep-power.

Faults can be injected while it runs: a meter or a whole gateway offline, slow answers,
lost acknowledgements (the write is applied, the answer never comes). A small HTTP
control API shows each meter's registers and takes those faults.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from adapters.profiles import REF_PREPAID_V1
from adapters.secure_frame import (
    Command,
    MeterKeys,
    RelayAction,
    Status,
    diversify,
    open_frame,
    registers_to_bytes,
)

log = logging.getLogger(__name__)

DEFAULT_BAUD = 9600
BITS_PER_CHAR = 10  # 8 data bits, no parity, start and stop
GAP_CHARS = 3.5
LOW_BLOCK = (0x0000, 0x11)
HIGH_BLOCK = (0x0100, 0x30)  # state registers and the secure buffer
PEAK_HOURS = range(8, 22)


def bus_time_s(request_bytes: int, response_bytes: int, baud: int) -> float:
    """How long one RTU transaction occupies the bus."""
    return (request_bytes + response_bytes + 2 * GAP_CHARS) * BITS_PER_CHAR / baud


@dataclass
class SimMeter:
    meter_no: str
    address: int
    keys: MeterKeys
    power_w: int
    energy_wh: float = 0.0
    bands_wh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("sharp", "peak", "flat", "valley"), 0.0))
    relay: int = 0  # 0 closed (power on), 1 open (tripped)
    keep_power: int = 0
    counter: int = 0
    balance_fen: int = 0
    status: int = 0
    prices_1e4: tuple[int, int, int, int] = (0, 0, 0, 0)
    thresholds: tuple[int, int, int] = (0, 0, 0)
    buffer: list[int] = field(default_factory=lambda: [0] * 32)
    offline: bool = False
    lose_acks: int = 0
    slow_s: float = 0.0
    accepted_frames: int = 0
    updated_at: float | None = None  # the simulation clock when energy was last added

    def catch_up(self, now: float, speed: float, local_hour: int) -> None:
        """Add the energy used since the last look (lazily: a meter nobody reads costs
        nothing, which is what lets one process simulate thousands)."""
        if self.updated_at is not None and self.relay == 0 and self.power_w > 0:
            wh = self.power_w * (now - self.updated_at) * speed / 3600
            self.energy_wh += wh
            self.bands_wh["peak" if local_hour in PEAK_HOURS else "valley"] += wh
        self.updated_at = now

    def registers(self, address: int, count: int) -> list[int] | None:
        for start, size, build in ((LOW_BLOCK[0], LOW_BLOCK[1], self._low),
                                   (HIGH_BLOCK[0], HIGH_BLOCK[1], self._high)):
            if start <= address and address + count <= start + size:
                image = build()
                return image[address - start:address - start + count]
        return None

    def _low(self) -> list[int]:
        def u32(value: float) -> list[int]:
            units = int(value // 10) & 0xFFFFFFFF  # 0.01 kWh
            return [units >> 16, units & 0xFFFF]

        power = self.power_w if self.relay == 0 else 0
        return [*u32(self.energy_wh), *u32(self.bands_wh["sharp"]), *u32(self.bands_wh["peak"]),
                *u32(self.bands_wh["flat"]), *u32(self.bands_wh["valley"]), 0,
                2200, (power * 100 // 220) & 0xFFFF, power & 0xFFFF, 0, 0, 980]

    def _high(self) -> list[int]:
        number = bytes.fromhex(self.meter_no)
        balance = self.balance_fen & 0xFFFFFFFF
        head = [self.relay, self.keep_power, self.counter >> 16, self.counter & 0xFFFF,
                balance >> 16, balance & 0xFFFF, self.status,
                *struct.unpack(">3H", number)]
        return head + [0] * (0x10 - len(head)) + list(self.buffer)

    def write(self, address: int, values: Sequence[int]) -> bool:
        """A write; False if the address is not writable. Frames are judged at once."""
        start = REF_PREPAID_V1.secure_buffer
        if address != start or not 1 <= len(values) <= REF_PREPAID_V1.secure_buffer_registers:
            return False
        self.buffer = list(values) + [0] * (32 - len(values))
        opened = open_frame(self.keys, self.meter_no, registers_to_bytes(list(values)),
                            self.counter)
        self.status = opened.status
        if opened.status != Status.OK:
            return True
        self.counter = opened.counter  # type: ignore[assignment]
        self.accepted_frames += 1
        self._apply(Command(opened.command), opened.payload)
        return True

    def _apply(self, command: Command, payload: bytes) -> None:
        if command == Command.RELAY:
            action = payload[0]
            if action == RelayAction.TRIP and not self.keep_power:
                self.relay = 1
            elif action == RelayAction.CLOSE:
                self.relay = 0
            elif action == RelayAction.KEEP_POWER_ON:
                self.keep_power, self.relay = 1, 0
            elif action == RelayAction.KEEP_POWER_OFF:
                self.keep_power = 0
            elif action != RelayAction.TRIP:
                self.status = Status.BAD_FORMAT
        elif command == Command.TARIFF:
            self.prices_1e4 = struct.unpack(">4I", payload)
        elif command == Command.THRESHOLDS:
            self.thresholds = struct.unpack(">iiI", payload)
        elif command == Command.RECHARGE:
            self.balance_fen += struct.unpack(">I", payload)[0]
        elif command == Command.SET_BALANCE:
            self.balance_fen = struct.unpack(">i", payload)[0]

    def state(self) -> dict:
        return {"meter_no": self.meter_no, "address": self.address, "relay": self.relay,
                "keep_power": self.keep_power, "counter": self.counter,
                "status": self.status, "energy_wh": int(self.energy_wh),
                "power_w": self.power_w, "balance_fen": self.balance_fen,
                "prices_1e4": list(self.prices_1e4), "thresholds": list(self.thresholds),
                "accepted_frames": self.accepted_frames, "offline": self.offline}


class _Bus(ModbusServerContext):
    """The datastore of one gateway: the serial bus behind it."""

    def __init__(self, gateway: SimGateway) -> None:  # no super(): not a register store
        self.gateway = gateway
        self.old_simulator = True
        self.simdevices = []

    def device_ids(self) -> list[int]:
        return list(self.gateway.meters)

    async def _meter(self, device_id: int) -> SimMeter:
        meter = self.gateway.meters.get(device_id)
        if meter is None or meter.offline:
            raise NoSuchIdException(f"no answer from address {device_id}")
        if meter.slow_s:
            await asyncio.sleep(meter.slow_s)
        self.gateway.simulation.touch(meter)
        return meter

    async def async_getValues(self, device_id, func_code, address, count=1):
        async with self.gateway.bus:
            await asyncio.sleep(bus_time_s(8, 5 + 2 * count, self.gateway.baud))
            meter = await self._meter(device_id)
            values = meter.registers(address, count)
            return ExcCodes.ILLEGAL_ADDRESS if values is None else values

    async def async_setValues(self, device_id, func_code, address, values):
        async with self.gateway.bus:
            await asyncio.sleep(bus_time_s(9 + 2 * len(values), 8, self.gateway.baud))
            meter = await self._meter(device_id)
            if not meter.write(address, values):
                return ExcCodes.ILLEGAL_ADDRESS
            if meter.lose_acks:
                meter.lose_acks -= 1
                raise NoSuchIdException("acknowledgement lost")  # applied, never answered
            return None


@dataclass
class SimGateway:
    index: int
    port: int
    meters: dict[int, SimMeter]
    baud: int
    simulation: Simulation
    bus: asyncio.Lock = field(default_factory=asyncio.Lock)
    server: ModbusTcpServer | None = None
    task: asyncio.Task | None = None
    offline: bool = False

    async def start(self, host: str) -> None:
        self.server = ModbusTcpServer(_Bus(self), address=(host, self.port),
                                      ignore_missing_devices=True)
        self.task = asyncio.create_task(self.server.serve_forever())
        for _ in range(200):  # wait until it listens
            if self.server.transport is not None:
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
        if self.task is not None:
            self.task.cancel()
            self.task = None


@dataclass
class SimulationConfig:
    meters: int = 350
    gateways: int = 5
    first_meter_no: int = 900_000_000_001
    host: str = "127.0.0.1"
    port_base: int = 15020
    baud: int = DEFAULT_BAUD
    min_power_w: int = 200
    max_power_w: int = 3000
    speed: float = 1.0  # simulated seconds per real second
    seed: int = 1
    timezone: str = "Asia/Shanghai"
    meters_per_gateway: int | None = None
    # Transparent buses (after the Modbus TCP gateways, numbered on from them): DL/T 645
    # serial servers and Modbus RTU (acrel-ddsy1352) serial servers the platform connects
    # to on the next ports, and DL/T 645 DTUs that call ``dtu_target`` (host:port).
    dlt645_gateways: int = 0
    rtu_gateways: int = 0
    dtus: int = 0
    serial_meters_per_gateway: int = 8
    dlt645_baud: int = 2400
    rtu_baud: int = 9600
    dtu_target: str | None = None
    dtu_heartbeat_s: float = 30.0
    bus_time_scale: float = 1.0  # 0: transparent buses answer without bus time


class Simulation:
    def __init__(self, config: SimulationConfig, master_key: bytes,
                 clock: Callable[[], float] = time.monotonic,
                 step: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        rng = random.Random(config.seed)
        per_gateway = config.meters_per_gateway or -(-config.meters // max(1, config.gateways))
        self.gateways: list[SimGateway] = []
        self.meters: dict[str, SimMeter] = {}
        for g in range(config.gateways):
            self.gateways.append(SimGateway(g, config.port_base + g, {}, config.baud, self))
        for n in range(config.meters):
            gateway = self.gateways[n // per_gateway]
            address = len(gateway.meters) + 1
            meter_no = f"{config.first_meter_no + n:012d}"
            meter = SimMeter(meter_no, address, diversify(master_key, meter_no),
                             rng.randint(config.min_power_w, config.max_power_w))
            meter.updated_at = clock()
            gateway.meters[address] = meter
            self.meters[meter_no] = meter
            if step is not None:
                step(1)

        self.serial: list[dict] = []  # transparent buses: kind, bus, server or DTU
        from adapters.simulator_serial import TransparentBus

        number = config.first_meter_no + config.meters
        kinds = (["dlt645-tcp"] * config.dlt645_gateways
                 + ["modbus-rtu-tcp"] * config.rtu_gateways + ["dtu"] * config.dtus)
        for k, kind in enumerate(kinds):
            meters = []
            for a in range(config.serial_meters_per_gateway):
                meter_no = f"{number:012d}"
                number += 1
                meter = SimMeter(meter_no, a + 1, diversify(master_key, meter_no),
                                 rng.randint(config.min_power_w, config.max_power_w))
                meter.updated_at = clock()
                meters.append(meter)
                self.meters[meter_no] = meter
            rtu = kind == "modbus-rtu-tcp"
            bus = TransparentBus("modbus-rtu" if rtu else "dlt645", meters,
                                 baud=config.rtu_baud if rtu else config.dlt645_baud,
                                 time_scale=config.bus_time_scale, touch=self.touch)
            index = config.gateways + k
            self.serial.append({
                "index": index, "kind": kind, "bus": bus, "runner": None,
                "port": None if kind == "dtu" else config.port_base + index,
                "registration_id": f"SIM-DTU-{index:04d}" if kind == "dtu" else None,
                "offline": False})

    def touch(self, meter: SimMeter) -> None:
        hour = datetime.now(timezone.utc).astimezone(self.zone).hour
        meter.catch_up(self.clock(), self.config.speed, hour)

    def set_power(self, meter_no: str, power_w: int) -> None:
        meter = self.meters[meter_no]
        self.touch(meter)  # energy so far at the old load
        meter.power_w = power_w

    def state(self, meter_no: str) -> dict:
        meter = self.meters[meter_no]
        self.touch(meter)
        return meter.state()

    async def start(self, step: Callable[[int], None] | None = None) -> None:
        for gateway in self.gateways:
            await gateway.start(self.config.host)
            if step is not None:
                step(1)
        for serial in self.serial:
            await self._start_serial(serial)
            if step is not None:
                step(1)

    async def _start_serial(self, serial: dict) -> None:
        from adapters.simulator_serial import SerialServerGateway, SimDtu

        if serial["kind"] == "dtu":
            if not self.config.dtu_target:
                raise ValueError("DTUs need a target (the platform's PREPAID_DTU_LISTEN)")
            host, _, port = self.config.dtu_target.rpartition(":")
            dtu = SimDtu(serial["bus"], serial["registration_id"], heartbeat=b"HB",
                         heartbeat_every_s=self.config.dtu_heartbeat_s)
            dtu.start(host, int(port))
            serial["runner"] = dtu
        else:
            server = SerialServerGateway(serial["bus"])
            await server.start(self.config.host, serial["port"])
            serial["runner"] = server

    async def stop(self) -> None:
        for gateway in self.gateways:
            await gateway.stop()
        for serial in self.serial:
            if serial["runner"] is not None:
                await serial["runner"].stop()
                serial["runner"] = None

    async def set_gateway_offline(self, index: int, offline: bool) -> None:
        if index >= len(self.gateways):
            serial = self.serial[index - len(self.gateways)]
            if offline and not serial["offline"]:
                await serial["runner"].stop()
                serial["runner"] = None
            elif not offline and serial["offline"]:
                await self._start_serial(serial)
            serial["offline"] = offline
            return
        gateway = self.gateways[index]
        if offline and not gateway.offline:
            await gateway.stop()
        elif not offline and gateway.offline:
            await gateway.start(self.config.host)
        gateway.offline = offline

    def layout(self) -> list[dict]:
        modbus = [{"gateway": g.index, "host": self.config.host, "port": g.port,
                   "protocol": "modbus-tcp", "connect": "outbound", "baud": g.baud,
                   "meters": [{"meter_no": m.meter_no, "address": m.address}
                              for m in g.meters.values()]} for g in self.gateways]
        serial = [{"gateway": s["index"],
                   "host": None if s["kind"] == "dtu" else self.config.host,
                   "port": s["port"],
                   "protocol": "dlt645-tcp" if s["kind"] == "dtu" else s["kind"],
                   "connect": "inbound" if s["kind"] == "dtu" else "outbound",
                   "registration_id": s["registration_id"],
                   "heartbeat": "HB" if s["kind"] == "dtu" else None, "baud": s["bus"].baud,
                   "meters": [{"meter_no": m.meter_no, "address": m.address}
                              for m in s["bus"].meters]} for s in self.serial]
        return modbus + serial
