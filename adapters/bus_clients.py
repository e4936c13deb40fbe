"""Meters on a transparent bus: DL/T 645-2007 and Modbus RTU clients over a ``Link``.

Each client answers the same questions as the Modbus TCP channel (``adapters.meter_client``):
a snapshot of one meter (its reading, relay and keep-power) with the meter's identity
verified, and relay actions confirmed by reading the meter back. Billing, enforcement and
commands do not know which protocol answered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from adapters import dlt645, modbus_rtu
from adapters.meter_client import (
    IDENTITY_MISMATCH,
    PROTOCOL_ERROR,
    TIMEOUT,
    UNREACHABLE,
    MeterUnreachable,
    Snapshot,
)
from adapters.profiles import Profile, meter_no_from
from adapters.serial_link import GatewayDown, Link, LinkDown

DLT645_READS = (dlt645.DataId.FORWARD_ACTIVE_BLOCK, dlt645.DataId.VOLTAGE_A,
                dlt645.DataId.CURRENT_A, dlt645.DataId.ACTIVE_POWER_TOTAL,
                dlt645.DataId.STATUS_WORD_3)
RELAY_DEADLINE = timedelta(minutes=10)  # N3..N8: the meter ignores the command after it
RELAY_ACTIONS = {"trip": dlt645.RelayAction.TRIP, "close": dlt645.RelayAction.CLOSE_NOW,
                 "keep_power_on": dlt645.RelayAction.KEEP_POWER,
                 "keep_power_off": dlt645.RelayAction.KEEP_POWER_OFF}


class MeterRefusedCommand(Exception):
    """The meter understood and refused (an error answer): retrying will not help."""


def _down(error: GatewayDown) -> MeterUnreachable:
    return MeterUnreachable(UNREACHABLE, str(error), gateway=True)


def _lost(last: Exception | None) -> MeterUnreachable:
    return MeterUnreachable(TIMEOUT if last is None or "time" in str(last) else
                            PROTOCOL_ERROR, str(last or "no answer"))


def _dlt645_complete(buffer: bytes) -> int | None:
    found = dlt645.first_frame(buffer)
    return None if found is None else found[1]


class Dlt645Client:
    """DL/T 645-2007 meters behind one link; the meter number is the bus address."""

    def __init__(self, link: Link, *, tries: int = 2) -> None:
        self.link = link
        self.tries = tries

    async def ask(self, request: dlt645.Frame, *, tries: int | None = None) -> dlt645.Frame:
        """One request, its answer checked to come from the meter asked."""
        wire = dlt645.build(request)
        last: Exception | None = None
        for _ in range(tries or self.tries):
            try:
                raw = await self.link.transact(wire, _dlt645_complete,
                                               expected_answer_bytes=len(wire) + 24)
            except GatewayDown as error:
                raise _down(error) from error
            except LinkDown as error:
                last = error
                continue
            found = dlt645.first_frame(raw)
            assert found is not None  # the completion rule returned a whole frame
            answer = found[0]
            try:
                dlt645.check_answer(request, answer)
            except dlt645.MeterRefused as error:
                raise MeterRefusedCommand(error.reason) from error
            except dlt645.FrameError as error:
                # Another meter, another function: never taken as this meter's answer.
                raise MeterUnreachable(IDENTITY_MISMATCH, str(error)) from error
            return answer
        raise _lost(last)

    async def read(self, meter_no: str, data_id: int) -> list[int]:
        request = dlt645.read_request(meter_no, data_id)
        return dlt645.read_values(request, await self.ask(request))

    async def status(self, meter_no: str) -> dlt645.StatusWord3:
        return dlt645.StatusWord3((await self.read(meter_no, dlt645.DataId.STATUS_WORD_3))[0])

    async def snapshot(self, meter_no: str, now: datetime) -> Snapshot:
        total, sharp, peak, flat, valley = await self.read(
            meter_no, dlt645.DataId.FORWARD_ACTIVE_BLOCK)
        (voltage_dv,) = await self.read(meter_no, dlt645.DataId.VOLTAGE_A)
        (current_ma,) = await self.read(meter_no, dlt645.DataId.CURRENT_A)
        (power_dw,) = await self.read(meter_no, dlt645.DataId.ACTIVE_POWER_TOTAL)
        word = await self.status(meter_no)
        # Register units of the platform's readings: 0.01 kWh, 0.1 V, 0.01 A, W.
        values = {"total": total, "sharp": sharp, "peak": peak, "flat": flat,
                  "valley": valley, "voltage_dv": voltage_dv,
                  "current_ca": int(current_ma / 10), "power_w": round(power_dw / 10),
                  "relay": int(word.relay_open), "keep_power": int(word.keep_power)}
        return Snapshot(meter_no, values, now)

    async def relay(self, meter_no: str, action: str,
                    credentials: dlt645.ControlCredentials,
                    local_now: datetime, code: int | None = None) -> dlt645.StatusWord3:
        """Send a relay command (one try: the meter may have acted on a lost answer) and
        read status word 3 back; the caller judges the state read back. ``code`` is the
        profile's N1 for the action (default: the standard's)."""
        request = dlt645.relay_request(
            meter_no, dlt645.RelayAction(code) if code is not None else RELAY_ACTIONS[action],
            credentials, local_now + RELAY_DEADLINE)
        try:
            await self.ask(request, tries=1)
        except MeterUnreachable as error:
            if error.gateway:
                raise
            # the answer may be lost while the meter acted: the read-back decides
        return await self.status(meter_no)

    async def broadcast_time(self, local_now: datetime) -> None:
        await self.link.send(dlt645.build(dlt645.broadcast_time_request(local_now)))


class RtuClient:
    """Modbus RTU meters behind one link, read by a register-map profile."""

    def __init__(self, link: Link, *, tries: int = 2) -> None:
        self.link = link
        self.tries = tries

    async def read(self, unit: int, start: int, count: int) -> list[int]:
        request = modbus_rtu.read_registers_request(unit, start, count)
        last: Exception | None = None
        for _ in range(self.tries):
            try:
                raw = await self.link.transact(
                    request, self._completion(request), expected_answer_bytes=5 + 2 * count)
                return modbus_rtu.registers(request, raw)
            except modbus_rtu.ModbusException as error:
                raise MeterUnreachable(PROTOCOL_ERROR, str(error)) from error
            except GatewayDown as error:
                raise _down(error) from error
            except (LinkDown, modbus_rtu.RtuFrameError) as error:
                last = error
        raise _lost(last)

    async def write(self, unit: int, start: int, values: list[int]) -> None:
        request = modbus_rtu.write_registers_request(unit, start, values)
        try:
            raw = await self.link.transact(request, self._completion(request),
                                           expected_answer_bytes=8)
            modbus_rtu.parse_answer(request, raw)
        except modbus_rtu.ModbusException as error:
            raise MeterRefusedCommand(str(error)) from error
        except GatewayDown as error:
            raise _down(error) from error
        except (LinkDown, modbus_rtu.RtuFrameError) as error:
            raise _lost(error) from error

    @staticmethod
    def _completion(request: bytes) -> Callable[[bytes], int | None]:
        def complete(buffer: bytes) -> int | None:
            length = modbus_rtu.answer_length(request, buffer)
            return length if length is not None and len(buffer) >= length else None
        return complete

    async def snapshot(self, unit: int, meter_no: str, profile: Profile,
                       now: datetime) -> Snapshot:
        blocks = {start: await self.read(unit, start, count) for start, count in profile.blocks}
        values = profile.decode(blocks)
        if all(f"meter_no_{i}" in values for i in (1, 2, 3)):
            found = meter_no_from(values)
            if found != meter_no:
                raise MeterUnreachable(IDENTITY_MISMATCH, f"address {unit} answers as meter "
                                       f"{found}, not {meter_no}", shown=True)
        values.setdefault("relay", 0)
        values.setdefault("keep_power", 0)
        return Snapshot(meter_no, values, now)

    async def state(self, unit: int, meter_no: str, profile: Profile) -> dict[str, int]:
        """The profile's state block (relay), identity checked where the map has one."""
        assert profile.state_block is not None
        start, count = profile.state_block
        values = profile.decode({start: await self.read(unit, start, count)})
        if all(f"meter_no_{i}" in values for i in (1, 2, 3)) and \
                meter_no_from(values) != meter_no:
            raise MeterUnreachable(IDENTITY_MISMATCH, f"address {unit} answers as meter "
                                   f"{meter_no_from(values)}, not {meter_no}", shown=True)
        values.setdefault("relay", 0)
        values.setdefault("keep_power", 0)
        return values

    async def relay(self, unit: int, meter_no: str, profile: Profile,
                    action: str) -> dict[str, int]:
        """Write the profile's registers for ``action`` (one try) and read the state back."""
        start, values = profile.relay_writes[action]
        try:
            await self.write(unit, start, list(values))
        except MeterUnreachable as error:
            if error.gateway:
                raise
        return await self.state(unit, meter_no, profile)


class ControlSecrets:
    """DL/T 645 relay control credentials from a secrets file (like the master key):
    per site, overridable per meter. JSON, hex bytes as sent on the wire::

        {"sites": {"<site id>": {"password_level": 2, "password": "000000",
                                 "operator_code": "00000000"}},
         "meters": {"<meter number>": {...}}}

    Never from the API, never logged (``ControlCredentials`` hides itself in reprs)."""

    def __init__(self, sites: dict[str, dlt645.ControlCredentials],
                 meters: dict[str, dlt645.ControlCredentials]) -> None:
        self.sites, self.meters = sites, meters

    def __repr__(self) -> str:
        return f"ControlSecrets({len(self.sites)} sites, {len(self.meters)} meters)"

    @classmethod
    def load(cls, path: str) -> ControlSecrets:
        import json

        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)

        def one(entry: dict) -> dlt645.ControlCredentials:
            try:
                return dlt645.ControlCredentials(
                    int(entry["password_level"]), bytes.fromhex(entry["password"]),
                    bytes.fromhex(entry["operator_code"]))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError("each entry of the DL/T 645 credentials file needs "
                                 "password_level, password (3 bytes hex) and operator_code "
                                 "(4 bytes hex)") from error

        return cls({str(k): one(v) for k, v in (data.get("sites") or {}).items()},
                   {str(k): one(v) for k, v in (data.get("meters") or {}).items()})

    def for_meter(self, site_id: str | None, meter_no: str) -> dlt645.ControlCredentials | None:
        return self.meters.get(meter_no) or self.sites.get(str(site_id))
