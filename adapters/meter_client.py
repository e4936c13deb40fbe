"""Talking to meters behind a gateway over Modbus TCP (pymodbus, asyncio).

A gateway puts one serial bus on TCP: the channel holds one lock so that it has exactly
one transaction in flight at a time, whoever asks (poller or command executor), with a
bounded time-out and a bounded number of tries per transaction.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass
from datetime import datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from adapters.profiles import Profile, meter_no_from
from adapters.secure_frame import Command, MeterKeys, build_frame, frame_to_registers
from ledger.gateway_hosts import DEFAULT_POLICY, GatewayHostPolicy, GatewayHostRefused
from ledger.metering import ReadingInput

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_TRIES = 2

# What a failed transaction is reported as, wherever it is stored or shown: a short class,
# never the raw exception text (which can carry what another service answered, and would
# let whoever registers gateways map a network port by port). The detail is logged here.
TIMEOUT = "timeout"
REFUSED = "connection refused"
UNREACHABLE = "gateway unreachable"
PROTOCOL_ERROR = "protocol error"
IDENTITY_MISMATCH = "identity mismatch"
NOT_ALLOWED = "gateway address not allowed"
NOT_APPLIED = "write not answered and not applied"


class MeterUnreachable(Exception):
    """No (valid) answer within the time-out and tries, or not the meter we meant.

    ``str()`` is the short ``reason`` (one of the classes above) and is what callers store;
    ``detail`` is for the server's log only."""

    def __init__(self, reason: str, detail: str = "", *, shown: bool = False,
                 gateway: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.shown = shown  # the detail says nothing about the network: it may be shown
        self.gateway = gateway  # the gateway itself cannot be reached: no meter behind it

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.shown and self.detail else self.reason


def classify(error: BaseException) -> str:
    if isinstance(error, MeterUnreachable):
        return error.reason
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return TIMEOUT
    if isinstance(error, ConnectionRefusedError):
        return REFUSED
    if isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return PROTOCOL_ERROR
    if isinstance(error, ModbusException):
        text = str(error).lower()
        if "no response" in text or "timeout" in text or "timed out" in text:
            return TIMEOUT
        return PROTOCOL_ERROR
    if isinstance(error, OSError):
        return UNREACHABLE
    return PROTOCOL_ERROR


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
                 tries: int = DEFAULT_TRIES, policy: GatewayHostPolicy = DEFAULT_POLICY) -> None:
        self.host, self.port = host, port
        self.timeout_s, self.tries = timeout_s, tries
        self.policy = policy
        self.lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._connect_error: BaseException | None = None

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _fail(self, reason: str, detail: str, shown: bool = False,
              gateway: bool = False) -> MeterUnreachable:
        log.warning("gateway %s:%s: %s (%s)", self.host, self.port, reason, detail)
        return MeterUnreachable(reason, detail, shown=shown, gateway=gateway)

    async def _address(self) -> str:
        """The address to connect to: resolved now and checked against the policy, so
        the connection goes exactly where the check looked."""
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as error:
            raise self._fail(UNREACHABLE, f"cannot resolve: {error!r}", gateway=True) from None
        addresses = [info[4][0] for info in found]
        try:
            self.policy.check_addresses(self.host, addresses)
        except GatewayHostRefused as error:
            raise self._fail(NOT_ALLOWED, error.detail, gateway=True) from None
        return addresses[0]

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None:
            address = await self._address()
            # Reconnection is ours to decide (per transaction), not the library's.
            self._client = AsyncModbusTcpClient(address, port=self.port,
                                                timeout=self.timeout_s, retries=0,
                                                reconnect_delay=0)
            self._record_connect_errors(self._client)
        if not self._client.connected:
            self._connect_error = None
            if not await self._client.connect():
                await self.close()
                error = self._connect_error
                reason = UNREACHABLE if error is None else TIMEOUT if isinstance(
                    error, asyncio.CancelledError) else classify(error)
                raise self._fail(reason, f"connect: {error!r}", gateway=True)
        return self._client

    def _record_connect_errors(self, client: AsyncModbusTcpClient) -> None:
        """pymodbus only answers False when a connection fails; keep the cause, so a
        refused port and a silent one are told apart (time-outs cancel the attempt)."""
        transport = getattr(client, "ctx", None)
        create = getattr(transport, "call_create", None)
        if create is None:
            return

        async def recording(*args, **kwargs):
            try:
                return await create(*args, **kwargs)
            except BaseException as error:
                self._connect_error = error
                raise

        transport.call_create = recording

    async def _transaction(self, call, tries: int) -> list[int]:
        last_error: BaseException | None = None
        for _ in range(tries):
            try:
                client = await self._connected()
                response = await call(client)
            except MeterUnreachable:
                raise  # no connection (or not allowed): nothing to try again on
            except (ModbusException, ConnectionError, OSError, asyncio.TimeoutError) as error:
                last_error = error
                await self.close()  # a time-out leaves the stream in doubt: start clean
                continue
            if response.isError():
                raise self._fail(PROTOCOL_ERROR, f"exception response: {response}")
            return list(getattr(response, "registers", []) or [])
        assert last_error is not None
        raise self._fail(classify(last_error), repr(last_error))

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
        self._verify(address, meter_no, values)
        return Snapshot(meter_no, values, now)

    def _verify(self, address: int, meter_no: str, values: dict[str, int]) -> None:
        """The meter that answered must be the one meant: another meter can sit at the
        same address behind the same gateway (a swapped or misconfigured meter)."""
        try:
            found = meter_no_from(values)
        except KeyError:
            raise self._fail(PROTOCOL_ERROR, f"address {address}: no meter number in "
                                             "the registers read") from None
        if found != meter_no:
            raise self._fail(IDENTITY_MISMATCH, f"address {address} answers as meter "
                                                f"{found}, not {meter_no}", shown=True)

    async def state(self, address: int, meter_no: str, profile: Profile) -> dict[str, int]:
        """The state registers of the meter ``meter_no`` at ``address``: identity checked
        (the block holds the meter number), so no decision is taken on another meter."""
        start, count = profile.state_block
        values = profile.decode({start: await self.read(address, start, count)})
        self._verify(address, meter_no, values)
        return values

    async def secure_write(self, address: int, meter_no: str, profile: Profile,
                           keys: MeterKeys, command: Command, payload: bytes) -> WriteResult:
        """Send one secure command with the counter after the meter's last accepted one.

        The counter is read from the meter first, so a frame is never built twice for
        the same counter after the meter took it. If the answer to the write is lost,
        the counter and status are read back: the caller learns whether it was applied
        and never needs to resend the same frame.
        """
        before = await self.state(address, meter_no, profile)
        counter = before["counter"] + 1
        frame = build_frame(keys, meter_no, command, counter, payload)
        try:
            await self.write(address, profile.secure_buffer, frame_to_registers(frame))
            acknowledged = True
        except MeterUnreachable:
            acknowledged = False
        after = await self.state(address, meter_no, profile)
        if not acknowledged and after["counter"] != counter:
            raise self._fail(NOT_APPLIED, f"address {address}: counter {after['counter']}, "
                                          f"sent {counter}")
        return WriteResult(after["status"], after["counter"], acknowledged)


def tariff_payload(prices_1e4: tuple[int, int, int, int]) -> bytes:
    return struct.pack(">4I", *prices_1e4)


def thresholds_payload(alarm1_fen: int, alarm2_fen: int, overload_w: int) -> bytes:
    return struct.pack(">iiI", alarm1_fen, alarm2_fen, overload_w)
