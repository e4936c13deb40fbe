"""Simulated transparent gateways and DTUs: DL/T 645-2007 and Modbus RTU meters on a bus.

The meters are the simulator's ``SimMeter`` (same consumption model, relay and
keep-power); what differs is how bytes reach them. An *outbound* gateway is a TCP server
the platform connects to (a serial server on the LAN); a *DTU* connects to the platform
itself, sends its registration packet and a heartbeat while idle, and serves requests on
that socket. The bus is strictly one transaction at a time, each taking as long as its
bytes need at the bus speed (``time_scale`` shortens that for tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from adapters import dlt645, modbus_rtu
from adapters.serial_link import bus_time_s
from adapters.simulator import SimMeter

log = logging.getLogger(__name__)

STATUS_ENERGY_PREPAID = 0b01 << 8
ACREL_RELAY = 0x0057  # unverified: see adapters/profiles.py ACREL_DDSY1352


@dataclass
class Dlt645Behaviour:
    """What a simulated DL/T 645 meter accepts for relay control."""

    password: bytes = bytes.fromhex("000000")
    esam_required: bool = False  # control needs ESAM: every relay command is refused


@dataclass
class TransparentBus:
    protocol: str  # "dlt645" or "modbus-rtu"
    meters: list[SimMeter]
    baud: int = 2400
    time_scale: float = 1.0  # 0 = no bus delay
    behaviour: Dlt645Behaviour = field(default_factory=Dlt645Behaviour)
    clock_set_to: datetime | None = None  # the last broadcast time received
    transactions: int = 0
    lose_next_answers: int = 0  # the meter acts, the answer never comes back
    lose_command_answers: int = 0  # the same, for relay control (1C) and register writes only
    touch: Callable[[SimMeter], None] | None = None  # bring a meter's energy up to now

    def by_number(self, meter_no: str) -> SimMeter | None:
        return next((m for m in self.meters if m.meter_no == meter_no), None)

    def by_unit(self, unit: int) -> SimMeter | None:
        return next((m for m in self.meters if m.address == unit), None)

    # -- DL/T 645 ---------------------------------------------------------------------

    def answer_dlt645(self, request: dlt645.Frame) -> dlt645.Frame | None:
        if request.control == dlt645.Control.BROADCAST_TIME:
            values = [dlt645.bcd_decode(bytes([b])) for b in request.data]
            second, minute, hour, day, month, year = values
            self.clock_set_to = datetime(2000 + year, month, day, hour, minute, second)
            return None
        meter = self.by_number(request.address)
        if meter is None or meter.offline:
            return None  # nobody at that address: silence
        if self.touch is not None:
            self.touch(meter)
        if request.control == dlt645.Control.READ_DATA:
            return self._read(meter, request)
        if request.control == dlt645.Control.RELAY_CONTROL:
            return self._relay(meter, request)
        return dlt645.error_answer(request, 0x01)

    def _read(self, meter: SimMeter, request: dlt645.Frame) -> dlt645.Frame:
        data_id = dlt645.decode_data_id(request.data)
        power_w = meter.power_w if meter.relay == 0 else 0
        units = {key: int(value // 10) for key, value in meter.bands_wh.items()}
        values = {
            dlt645.DataId.FORWARD_ACTIVE_BLOCK: [int(meter.energy_wh // 10), units["sharp"],
                                                 units["peak"], units["flat"],
                                                 units["valley"]],
            dlt645.DataId.FORWARD_ACTIVE_TOTAL: [int(meter.energy_wh // 10)],
            dlt645.DataId.VOLTAGE_A: [2200],
            dlt645.DataId.CURRENT_A: [power_w * 1000 // 220],
            dlt645.DataId.ACTIVE_POWER_TOTAL: [power_w * 10],
            dlt645.DataId.STATUS_WORD_3: [meter.relay << 4 | meter.relay << 6
                                          | meter.keep_power << 12 | STATUS_ENERGY_PREPAID],
        }.get(data_id)
        if values is None:
            return dlt645.error_answer(request, 0x02)
        return dlt645.read_answer(request, values)

    def _relay(self, meter: SimMeter, request: dlt645.Frame) -> dlt645.Frame:
        if self.behaviour.esam_required or request.data[1:4] != self.behaviour.password:
            return dlt645.error_answer(request, 0x04)
        action = request.data[8]
        if action == dlt645.RelayAction.TRIP:
            if not meter.keep_power:
                meter.relay = 1
        elif action in (dlt645.RelayAction.CLOSE_NOW, dlt645.RelayAction.CLOSE_ALLOWED):
            meter.relay = 0
        elif action == dlt645.RelayAction.KEEP_POWER:
            meter.keep_power, meter.relay = 1, 0
        elif action == dlt645.RelayAction.KEEP_POWER_OFF:
            meter.keep_power = 0
        elif action not in (dlt645.RelayAction.ALARM, dlt645.RelayAction.ALARM_OFF):
            return dlt645.error_answer(request, 0x01)
        meter.accepted_frames += 1
        return dlt645.Frame(request.address, request.control | dlt645.ANSWER_BIT)

    # -- Modbus RTU -------------------------------------------------------------------

    @staticmethod
    def rtu_request_length(buffer: bytes) -> int | None:
        if len(buffer) < 2:
            return None
        if buffer[1] in (modbus_rtu.READ_HOLDING, modbus_rtu.READ_INPUT,
                         modbus_rtu.WRITE_SINGLE):
            return 8
        if buffer[1] == modbus_rtu.WRITE_MULTIPLE:
            return None if len(buffer) < 7 else 9 + buffer[6]
        return len(buffer)  # unknown function: take it all, answer nothing

    def answer_rtu(self, request: bytes) -> bytes | None:
        if modbus_rtu.crc16(request[:-2]) != int.from_bytes(request[-2:], "little"):
            return None  # a real meter ignores a frame with a bad CRC
        meter = self.by_unit(request[0])
        if meter is None or meter.offline:
            return None
        if self.touch is not None:
            self.touch(meter)
        function = request[1]
        start = int.from_bytes(request[2:4], "big")
        if start == ACREL_RELAY:  # the relay pair of profile acrel-ddsy1352
            return self._acrel_relay(meter, request, function)
        if function in (modbus_rtu.READ_HOLDING, modbus_rtu.READ_INPUT):
            values = meter.registers(start, int.from_bytes(request[4:6], "big"))
            if values is None:
                return modbus_rtu.frame(request[0], bytes([function | 0x80, 0x02]))
            return modbus_rtu.read_answer(request, values)
        if function == modbus_rtu.WRITE_MULTIPLE:
            data = request[7:-2]
            values = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
            if not meter.write(start, values):
                return modbus_rtu.frame(request[0], bytes([function | 0x80, 0x02]))
            return modbus_rtu.frame(request[0], request[1:6])
        return modbus_rtu.frame(request[0], bytes([function | 0x80, 0x01]))

    @staticmethod
    def _acrel_relay(meter: SimMeter, request: bytes, function: int) -> bytes:
        if function in (modbus_rtu.READ_HOLDING, modbus_rtu.READ_INPUT) and \
                int.from_bytes(request[4:6], "big") == 2:
            return modbus_rtu.read_answer(request, [1, meter.relay])
        if function == modbus_rtu.WRITE_MULTIPLE and request[6] == 4:
            wanted = int.from_bytes(request[9:11], "big")
            if request[7:9] == b"\x00\x01" and wanted in (0, 1):
                meter.relay = wanted
                meter.accepted_frames += 1
                return modbus_rtu.frame(request[0], request[1:6])
        return modbus_rtu.frame(request[0], bytes([function | 0x80, 0x02]))

    # -- the byte stream --------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    lock: asyncio.Lock) -> None:
        """Answer requests arriving on one socket until it closes."""
        deframer = dlt645.Deframer()
        pending = bytearray()
        while True:
            chunk = await reader.read(1024)
            if not chunk:
                return
            requests: list = []
            if self.protocol == "dlt645":
                requests = deframer.feed(chunk)
            else:
                pending.extend(chunk)
                while (length := self.rtu_request_length(bytes(pending))) is not None \
                        and len(pending) >= length:
                    requests.append(bytes(pending[:length]))
                    del pending[:length]
            for request in requests:
                async with lock:  # one transaction at a time on the bus
                    if self.protocol == "dlt645":
                        answer = self.answer_dlt645(request)
                        wire = dlt645.build(answer) if answer else b""
                        size = len(dlt645.build(request))
                    else:
                        wire = self.answer_rtu(request) or b""
                        size = len(request)
                    self.transactions += 1
                    if self.time_scale:
                        await asyncio.sleep(bus_time_s(size + len(wire), self.baud)
                                            * self.time_scale)
                    if wire and self.lose_next_answers:
                        self.lose_next_answers -= 1
                        continue
                    command = (request.control == dlt645.Control.RELAY_CONTROL
                               if self.protocol == "dlt645"
                               else request[1] == modbus_rtu.WRITE_MULTIPLE)
                    if wire and command and self.lose_command_answers:
                        self.lose_command_answers -= 1
                        continue
                    if wire:
                        writer.write(wire)
                        await writer.drain()


class SerialServerGateway:
    """An outbound transparent gateway: a TCP server in front of one bus."""

    def __init__(self, bus: TransparentBus) -> None:
        self.bus = bus
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._lock = asyncio.Lock()
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, reader, writer) -> None:
        self._connections.add(writer)
        try:
            await self.bus.serve(reader, writer, self._lock)
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
            self._server = None


class SimDtu:
    """A 4G DTU: connects out, registers, heartbeats while idle, serves its bus."""

    def __init__(self, bus: TransparentBus, registration_id: str, *,
                 heartbeat: bytes = b"", heartbeat_every_s: float = 30.0,
                 reconnect_after_s: float = 1.0) -> None:
        self.bus = bus
        self.registration_id = registration_id
        self.heartbeat = heartbeat
        self.heartbeat_every_s = heartbeat_every_s
        self.reconnect_after_s = reconnect_after_s
        self.connections = 0
        self._task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def start(self, host: str, port: int) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(host, port))

    async def _run(self, host: str, port: int) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(self.reconnect_after_s)
                continue
            self._writer = writer
            self.connections += 1
            writer.write(self.registration_id.encode("ascii"))
            await writer.drain()
            beat = asyncio.get_running_loop().create_task(self._beat(writer))
            try:
                await self.bus.serve(reader, writer, self._lock)
            except (ConnectionError, OSError):
                pass
            finally:
                beat.cancel()
                writer.close()
                self._writer = None
            await asyncio.sleep(self.reconnect_after_s)

    async def _beat(self, writer: asyncio.StreamWriter) -> None:
        if not self.heartbeat:
            return
        while True:
            await asyncio.sleep(self.heartbeat_every_s)
            async with self._lock:  # never in the middle of an answer
                writer.write(self.heartbeat)
                await writer.drain()

    def drop(self) -> None:
        """The carrier drops the connection (the DTU will call in again)."""
        if self._writer is not None:
            self._writer.transport.abort()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._writer is not None:
            self._writer.close()
