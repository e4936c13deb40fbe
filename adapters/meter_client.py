"""Talking to meters behind a gateway over Modbus TCP (pymodbus, asyncio).

A gateway puts one serial bus on TCP: the channel holds one lock so that it has exactly
one transaction in flight at a time, whoever asks (poller or command executor), with a
bounded time-out and a bounded number of tries per transaction.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from datetime import datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from adapters.profiles import Profile, meter_no_from
from adapters.secure_frame import Command, MeterKeys, build_frame, frame_to_registers
from ledger.metering import ReadingInput

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_TRIES = 2


class MeterUnreachable(Exception):
    """No (valid) answer within the time-out and tries."""


@dataclass(frozen=True)
class Snapshot:
    """One meter as read in one poll."""

    meter_no: str
    values: dict[str, int]
    read_at: datetime

    @property
    def relay(self) -> str:
        return "open" if self.values["relay"] else "closed"

    @property
    def keep_power(self) -> bool:
        return bool(self.values["keep_power"])

    def reading(self) -> ReadingInput:
        v = self.values
        return ReadingInput(
            meter_no=self.meter_no, read_at=self.read_at, total=v["total"],
            bands={b: v[b] for b in ("sharp", "peak", "flat", "valley")},
            power_w=v["power_w"], voltage_dv=v["voltage_dv"], current_ca=v["current_ca"],
            relay=self.relay)


@dataclass(frozen=True)
class WriteResult:
    status: int
    counter: int
    acknowledged: bool  # False: the answer was lost; status and counter were read back


class GatewayChannel:
    def __init__(self, host: str, port: int, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 tries: int = DEFAULT_TRIES) -> None:
        self.host, self.port = host, port
        self.timeout_s, self.tries = timeout_s, tries
        self.lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None:
            # Reconnection is ours to decide (per transaction), not the library's.
            self._client = AsyncModbusTcpClient(self.host, port=self.port,
                                                timeout=self.timeout_s, retries=0,
                                                reconnect_delay=0)
        if not self._client.connected:
            if not await self._client.connect():
                await self.close()
                raise MeterUnreachable(f"gateway {self.host}:{self.port} does not answer")
        return self._client

    async def _transaction(self, call, tries: int) -> list[int]:
        last_error: Exception | None = None
        for _ in range(tries):
            try:
                client = await self._connected()
                response = await call(client)
            except (ModbusException, ConnectionError, OSError, asyncio.TimeoutError) as error:
                last_error = error
                await self.close()  # a time-out leaves the stream in doubt: start clean
                continue
            if response.isError():
                raise MeterUnreachable(f"exception response: {response}")
            return list(getattr(response, "registers", []) or [])
        raise MeterUnreachable(str(last_error) or type(last_error).__name__)

    async def read(self, address: int, start: int, count: int) -> list[int]:
        async with self.lock:
            return await self._transaction(
                lambda c: c.read_holding_registers(start, count=count, device_id=address),
                self.tries)

    async def write(self, address: int, start: int, values: list[int]) -> None:
        """One try only: a write whose answer is lost may have been applied, and sending
        it again would be a replay. The caller reads the meter back instead."""
        async with self.lock:
            await self._transaction(
                lambda c: c.write_registers(start, values, device_id=address), 1)

    # -- meter operations ------------------------------------------------------------

    async def snapshot(self, address: int, meter_no: str, profile: Profile,
                       now: datetime) -> Snapshot:
        blocks = {}
        for start, count in profile.blocks:
            blocks[start] = await self.read(address, start, count)
        values = profile.decode(blocks)
        found = meter_no_from(values)
        if found != meter_no:
            raise MeterUnreachable(f"address {address} answers as meter {found}, not "
                                   f"{meter_no}")
        return Snapshot(meter_no, values, now)

    async def state(self, address: int, profile: Profile) -> dict[str, int]:
        start, count = profile.state_block
        return profile.decode({start: await self.read(address, start, count)})

    async def secure_write(self, address: int, meter_no: str, profile: Profile,
                           keys: MeterKeys, command: Command, payload: bytes) -> WriteResult:
        """Send one secure command with the counter after the meter's last accepted one.

        The counter is read from the meter first, so a frame is never built twice for
        the same counter after the meter took it. If the answer to the write is lost,
        the counter and status are read back: the caller learns whether it was applied
        and never needs to resend the same frame.
        """
        before = await self.state(address, profile)
        counter = before["counter"] + 1
        frame = build_frame(keys, meter_no, command, counter, payload)
        try:
            await self.write(address, profile.secure_buffer, frame_to_registers(frame))
            acknowledged = True
        except MeterUnreachable:
            acknowledged = False
        after = await self.state(address, profile)
        if not acknowledged and after["counter"] != counter:
            raise MeterUnreachable("the write was not answered and not applied")
        return WriteResult(after["status"], after["counter"], acknowledged)


def tariff_payload(prices_1e4: tuple[int, int, int, int]) -> bytes:
    return struct.pack(">4I", *prices_1e4)


def thresholds_payload(alarm1_fen: int, alarm2_fen: int, overload_w: int) -> bytes:
    return struct.pack(">iiI", alarm1_fen, alarm2_fen, overload_w)
