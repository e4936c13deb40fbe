"""Polling meters and carrying out device commands, on real gateways over Modbus TCP.

All gateways are worked concurrently (asyncio); each gateway's channel lets one
transaction at a time onto its bus. Readings go through the same path as
``POST /readings`` (billing, anomalies), plus the poll's own bookkeeping (offline, relay
reconciliation, overload). Commands are carried out from the stored command list: each
try first reads the meter, so a command that already took effect (an answer lost, a
gateway that came back) is confirmed instead of being sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from adapters.meter_client import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TRIES,
    GatewayChannel,
    MeterUnreachable,
    tariff_payload,
    thresholds_payload,
)
from adapters.profiles import PROFILES, Profile
from adapters.secure_frame import Command, MeterKeys, RelayAction, Status, diversify
from domain.device_command import DeviceCommand
from ledger.clock import utc_now
from ledger.gateway_hosts import DEFAULT_POLICY

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    gateways: int = 0
    meters: int = 0
    read: int = 0
    failed: int = 0
    went_offline: int = 0
    answers: list[dict] = field(default_factory=list)


class DeviceRuntime:
    def __init__(self, ledger, queries, master_key: bytes | None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, tries: int = DEFAULT_TRIES,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.ledger = ledger
        self.queries = queries
        self.master_key = master_key
        self.timeout_s = timeout_s
        self.tries = tries
        self.clock = clock
        self._channels: dict[tuple[str, int], GatewayChannel] = {}
        self._keys: dict[str, MeterKeys] = {}
        # Called (in a thread) after each cycle with (site_id, started_at, gateways,
        # per-gateway (readings, failures), seconds): poll results and metrics.
        self.on_polled: Callable[..., None] | None = None

    def channel(self, host: str, port: int) -> GatewayChannel:
        key = (host, port)
        if key not in self._channels:
            self._channels[key] = GatewayChannel(
                host, port, timeout_s=self.timeout_s, tries=self.tries,
                policy=getattr(self.ledger, "gateway_hosts", DEFAULT_POLICY))
        return self._channels[key]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    # -- polling -----------------------------------------------------------------------

    async def poll(self, site_id: str | None = None,
                   gateway_ids: list[str] | None = None) -> PollReport:
        gateways = await asyncio.to_thread(self.queries.gateways, site_id)
        if gateway_ids is not None:
            gateways = [g for g in gateways if g["id"] in gateway_ids]
        started_at, started = self.clock(), time.monotonic()
        results = await asyncio.gather(*(self._poll_gateway(g) for g in gateways))
        if self.on_polled is not None:
            try:
                await asyncio.to_thread(self.on_polled, site_id, started_at, gateways,
                                        results, time.monotonic() - started)
            except Exception:  # recording a cycle never stops polling
                log.exception("recording a polling cycle failed")
        readings = [r for ok, _ in results for r in ok]
        failures = [f for _, bad in results for f in bad]
        report = PollReport(gateways=len(gateways), meters=len(readings) + len(failures),
                            read=len(readings), failed=len(failures))
        if readings:
            ingested = await asyncio.to_thread(self.ledger.ingest_readings, readings)
            report.answers = ingested.answers
        if failures:
            report.went_offline = await asyncio.to_thread(self.ledger.record_poll_failures,
                                                          failures)
        return report

    async def _poll_gateway(self, gateway: dict) -> tuple[list, list]:
        meters = await asyncio.to_thread(self.queries.meters_of_gateway, gateway["id"])
        channel = self.channel(gateway["host"], gateway["port"])
        readings, failures = [], []
        for meter in meters:  # the bus is serial: one meter after another
            try:
                snapshot = await channel.snapshot(meter["address"], meter["meter_no"],
                                                  PROFILES[meter["profile"]], self.clock())
            except MeterUnreachable as error:
                failures.append((UUID(meter["id"]), str(error)))
                continue
            reading = snapshot.reading()
            readings.append(type(reading)(**{**reading.__dict__, "from_poll": True}))
        return readings, failures

    # -- commands ----------------------------------------------------------------------

    async def execute_due(self) -> int:
        due = await asyncio.to_thread(self.queries.due_commands, self.clock())
        by_gateway: dict[str | None, list[dict]] = defaultdict(list)
        for row in due:
            by_gateway[row["gateway_id"]].append(row)

        async def run(rows: list[dict]) -> int:
            for row in rows:
                await self.execute(UUID(row["id"]))
            return len(rows)

        done = await asyncio.gather(*(run(rows) for rows in by_gateway.values()))
        return sum(done)

    async def execute(self, command_id: UUID) -> DeviceCommand:
        ledger = self.ledger
        command: DeviceCommand = await asyncio.to_thread(ledger.get_command, command_id)
        if not command.due(self.clock()):
            return command
        meter = await asyncio.to_thread(ledger.get_meter, command.meter_id)
        report = ledger.record_command
        if meter.gateway_id is None:
            return await asyncio.to_thread(report, command_id, "unreachable",
                                           error="the meter has no gateway")
        gateway = await asyncio.to_thread(ledger.get_gateway, meter.gateway_id)
        channel = self.channel(gateway.host, gateway.port)
        profile = PROFILES[meter.profile]
        try:
            if command.action == "read_now":
                return await self._read_now(command, meter, channel, profile)
            # Every read that decides the command's fate checks the meter's number: another
            # meter at the same address must never confirm (or cause) anything.
            state = await channel.state(meter.address, meter.meter_no, profile)
            frames = self._frames(command, state)
            for frame_command, payload in frames:
                if self.master_key is None:
                    return await asyncio.to_thread(
                        report, command_id, "failed",
                        error="no master key configured (PREPAID_MASTER_KEY_FILE)")
                result = await channel.secure_write(meter.address, meter.meter_no, profile,
                                                    self._meter_keys(meter.meter_no),
                                                    frame_command, payload)
                await asyncio.to_thread(report, command_id, "sent", counter=result.counter)
                if result.status != Status.OK:
                    return await asyncio.to_thread(
                        report, command_id, "failed",
                        error=f"meter refused the frame: status {Status(result.status).name}")
            state = await channel.state(meter.address, meter.meter_no, profile)
        except MeterUnreachable as error:
            return await asyncio.to_thread(report, command_id, "unreachable", error=str(error))
        observed = {"relay": "open" if state["relay"] else "closed",
                    "keep_power": bool(state["keep_power"]), "counter": state["counter"],
                    "status": state["status"]}
        if self._satisfied(command, state, sent=bool(frames)):
            return await asyncio.to_thread(report, command_id, "acknowledged",
                                           observed=observed)
        return await asyncio.to_thread(report, command_id, "failed",
                                       error=f"the meter reports {observed}",
                                       observed=observed)

    async def _read_now(self, command, meter, channel: GatewayChannel,
                        profile: Profile) -> DeviceCommand:
        snapshot = await channel.snapshot(meter.address, meter.meter_no, profile, self.clock())
        reading = snapshot.reading()
        await asyncio.to_thread(self.ledger.ingest_readings,
                                [type(reading)(**{**reading.__dict__, "from_poll": True})])
        return await asyncio.to_thread(
            self.ledger.record_command, command.id, "acknowledged",
            observed={"total": snapshot.values["total"], "relay": snapshot.relay})

    @staticmethod
    def _frames(command: DeviceCommand, state: dict[str, int]) -> list[tuple[Command, bytes]]:
        """The frames still needed to bring the meter where the command wants it."""
        payload = command.payload
        frames: list[tuple[Command, bytes]] = []
        if payload.get("keep_power") is True and not (state["keep_power"] and
                                                      state["relay"] == 0):
            frames.append((Command.RELAY, bytes([RelayAction.KEEP_POWER_ON])))
        if payload.get("keep_power") is False and state["keep_power"]:
            frames.append((Command.RELAY, bytes([RelayAction.KEEP_POWER_OFF])))
        if payload.get("relay") == "open" and state["relay"] == 0:
            frames.append((Command.RELAY, bytes([RelayAction.TRIP])))
        if payload.get("relay") == "closed" and state["relay"] == 1:
            frames.append((Command.RELAY, bytes([RelayAction.CLOSE])))
        if "prices_1e4" in payload:
            frames.append((Command.TARIFF, tariff_payload(tuple(payload["prices_1e4"]))))
        if "overload_w" in payload:
            frames.append((Command.THRESHOLDS, thresholds_payload(
                payload["alarm1_fen"], payload["alarm2_fen"], payload["overload_w"])))
        return frames

    @staticmethod
    def _satisfied(command: DeviceCommand, state: dict[str, int], sent: bool) -> bool:
        payload = command.payload
        if "relay" in payload and state["relay"] != (1 if payload["relay"] == "open" else 0):
            return False
        if "keep_power" in payload and bool(state["keep_power"]) != payload["keep_power"]:
            return False
        # The status register speaks of the last frame; it only matters if we sent one.
        return not sent or state["status"] == Status.OK

    def _meter_keys(self, meter_no: str) -> MeterKeys:
        assert self.master_key is not None
        keys = self._keys.get(meter_no)
        if keys is None:
            keys = self._keys[meter_no] = diversify(self.master_key, meter_no)
        return keys


def describe(report: PollReport) -> dict[str, Any]:
    return {"gateways": report.gateways, "meters": report.meters, "read": report.read,
            "failed": report.failed, "went_offline": report.went_offline}
