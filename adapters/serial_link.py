"""Byte streams to RS-485 buses: transparent serial servers (outbound) and DTUs (inbound).

A transparent gateway passes bytes unchanged between a TCP socket and its bus, so the
platform frames requests itself and finds where an answer ends (by the protocol's length
rules, see ``adapters.dlt645`` and ``adapters.modbus_rtu``). A bus carries one
transaction at a time: every link holds one lock, and a transaction's time-out is paced
by the bus speed, since 32 DL/T 645 meters at 2400 baud are slow for a reason.

Inbound links come from 4G DTUs behind a carrier's NAT: the DTU connects to the
platform, sends its registration packet (its configured id), then a heartbeat while
idle. The listener matches the registration to a gateway; a new connection with the same
id replaces the old one; an unknown id is refused and logged; heartbeats between
transactions are discarded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

log = logging.getLogger(__name__)

BITS_PER_BYTE = 11  # start, 8 data, parity, stop: 8E1 (and 8N2) on the wire
DEFAULT_SILENCE_S = 0.5  # the bus has stopped talking: the answer is not coming
DEFAULT_MARGIN_S = 1.0  # gateway and meter turnaround on top of the bytes' own time
MAX_REGISTRATION_BYTES = 64
REGISTRATION_TIMEOUT_S = 10.0


class LinkDown(Exception):
    """The gateway cannot be reached (not connected, refused, reset, timed out)."""


class GatewayDown(LinkDown):
    """No socket to the gateway at all: it refused or did not answer the connection, its
    address is not allowed, or (inbound) its DTU is not connected. No meter behind it
    can answer, so there is no point asking them one by one."""


def bus_time_s(byte_count: int, baud: int) -> float:
    """How long ``byte_count`` bytes take on a bus at ``baud``."""
    return byte_count * BITS_PER_BYTE / baud


# complete(buffer) -> None while more is needed, else how many bytes the answer used
Completion = Callable[[bytes], int | None]


class Link:
    """One bus behind one TCP socket, one transaction at a time."""

    close_on_timeout = True  # reconnect after a time-out (outbound links can)

    def __init__(self, *, baud: int, silence_s: float = DEFAULT_SILENCE_S,
                 margin_s: float = DEFAULT_MARGIN_S, heartbeat: bytes = b"") -> None:
        self.baud = baud
        self.silence_s = silence_s
        self.margin_s = margin_s
        self.heartbeat = heartbeat
        self.lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    # -- subclasses say how a socket is had -------------------------------------------

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _adopt(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    # -- the transaction ----------------------------------------------------------------

    def timeout_for(self, request_bytes: int, answer_bytes: int) -> float:
        return bus_time_s(request_bytes + answer_bytes, self.baud) + self.margin_s

    async def transact(self, request: bytes, complete: Completion, *,
                       expected_answer_bytes: int = 64) -> bytes:
        """Send ``request`` and read until ``complete`` says the answer is whole."""
        async with self.lock:
            return await self._transact(request, complete, expected_answer_bytes)

    async def send(self, request: bytes) -> None:
        """A request with no answer (a broadcast): wait for it to leave the bus."""
        async with self.lock:
            reader, writer = await self._stream()
            self._discard_pending(reader)
            try:
                writer.write(request)
                await writer.drain()
            except (ConnectionError, OSError) as error:
                await self.close()
                raise LinkDown(type(error).__name__) from error
            await asyncio.sleep(bus_time_s(len(request), self.baud))

    async def _stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.connected:
            self._adopt(*await self._open())
        assert self._reader is not None and self._writer is not None
        return self._reader, self._writer

    def _discard_pending(self, reader: asyncio.StreamReader) -> None:
        # Whatever arrived between transactions (a heartbeat, a late answer to a timed-out
        # request) belongs to no one: it must not be taken for the next answer.
        self.observe(datetime.now(timezone.utc))
        buffered = getattr(reader, "_buffer", None)
        if buffered:
            buffered.clear()

    def observe(self, now: datetime) -> None:
        """Look at what arrived while idle (inbound links note heartbeats)."""

    def _strip_heartbeats(self, data: bytearray) -> None:
        if self.heartbeat:
            while (at := data.find(self.heartbeat)) >= 0:
                del data[at:at + len(self.heartbeat)]

    async def _transact(self, request: bytes, complete: Completion,
                        expected_answer_bytes: int) -> bytes:
        reader, writer = await self._stream()
        self._discard_pending(reader)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_for(len(request), expected_answer_bytes)
        try:
            writer.write(request)
            await writer.drain()
            answer = bytearray()
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                # After the first byte, silence on the bus ends the wait early.
                wait = remaining if not answer else min(remaining, self.silence_s)
                async with asyncio.timeout(wait):  # no task per read (wait_for makes one)
                    chunk = await reader.read(512)
                if not chunk:
                    raise ConnectionResetError("the gateway closed the connection")
                answer.extend(chunk)
                self._strip_heartbeats(answer)
                used = complete(bytes(answer))
                if used is not None:
                    return bytes(answer[:used])
        except asyncio.TimeoutError as error:
            # A late answer would be read as the next one's: start the next one clean.
            if self.close_on_timeout:
                await self.close()
            else:  # a DTU cannot be called back: let the bus fall silent, drop what came
                await asyncio.sleep(self.silence_s)
                self._discard_pending(reader)
            raise LinkDown("no answer within the time-out") from error
        except (ConnectionError, OSError) as error:
            await self.close()
            raise LinkDown(type(error).__name__) from error


class OutboundLink(Link):
    """The platform connects to a serial server on the LAN."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 3.0,
                 policy=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.host, self.port = host, port
        self.connect_timeout_s = connect_timeout_s
        self.policy = policy  # ledger.gateway_hosts.GatewayHostPolicy, checked per connect

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.host
        if self.policy is not None:
            # Resolved now and checked, so the connection goes where the check looked.
            from ledger.gateway_hosts import GatewayHostRefused

            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    self.host, self.port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError, OSError) as error:
                raise GatewayDown("gateway unreachable") from error
            addresses = [info[4][0] for info in found]
            try:
                self.policy.check_addresses(self.host, addresses)
            except GatewayHostRefused as error:
                log.warning("gateway %s:%s: %s", self.host, self.port, error.detail)
                raise GatewayDown("gateway address not allowed") from error
            address = addresses[0]
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, self.port),
                                          self.connect_timeout_s)
        except (asyncio.TimeoutError, OSError) as error:
            raise GatewayDown("gateway unreachable") from error


@dataclass
class DtuState:
    registration_id: str
    connected_since: datetime | None = None
    last_heartbeat_at: datetime | None = None
    peer: str | None = None


class InboundLink(Link):
    """A DTU that calls in: its socket is handed over by the listener."""

    close_on_timeout = False  # one silent meter must not hang up on the whole bus

    def __init__(self, registration_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = DtuState(registration_id)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise GatewayDown("DTU not connected")

    @property
    def connected(self) -> bool:
        if super().connected and self._reader is not None and self._reader.at_eof():
            return False  # the DTU hung up while idle
        return super().connected

    def observe(self, now: datetime) -> None:
        """Heartbeats that arrived while idle: note the time, drop the bytes."""
        buffered = getattr(self._reader, "_buffer", None) if self._reader else None
        if buffered and self.heartbeat and self.heartbeat in buffered:
            self.saw_heartbeat(now)

    async def replace(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      now: datetime, peer: str) -> None:
        """A new connection with this id: it replaces the old one, after the transaction
        in flight on the old one (if any) has finished, so nothing runs on both."""
        async with self.lock:
            await self.close()
            self._adopt(reader, writer)
            self.state.connected_since = now
            self.state.peer = peer

    def saw_heartbeat(self, now: datetime) -> None:
        self.state.last_heartbeat_at = now


class DtuListener:
    """Accepts DTUs, reads their registration packet and hands the socket to its link."""

    def __init__(self, links: dict[str, InboundLink], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 registration_timeout_s: float = REGISTRATION_TIMEOUT_S) -> None:
        self.links = links
        self.clock = clock
        self.registration_timeout_s = registration_timeout_s
        self.refused: list[str] = []  # unknown ids, newest last (bounded)
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in self.links.values():
            await link.close()

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]
        try:
            packet = await asyncio.wait_for(reader.read(MAX_REGISTRATION_BYTES),
                                            self.registration_timeout_s)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            writer.close()
            return
        registration_id = packet.strip().decode("ascii", "replace")
        link = self.links.get(registration_id)
        if link is None:
            log.warning("DTU from %s registered as unknown id %r: refused", peer,
                        registration_id[:MAX_REGISTRATION_BYTES])
            self.refused = (self.refused + [registration_id])[-100:]
            writer.close()
            return
        log.info("DTU %s connected from %s", registration_id, peer)
        await link.replace(reader, writer, self.clock(), peer)
