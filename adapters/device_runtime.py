"""Polling meters and carrying out device commands, on real gateways.

The client is chosen by the gateway's protocol: a Modbus TCP channel, or a DL/T 645-2007
or Modbus RTU client over a transparent link (outbound to a serial server, or inbound from
a DTU that called the listener). All gateways are worked concurrently (asyncio); each
gateway's channel or link lets one transaction at a time onto its bus. A gateway that
cannot be reached at all marks its meters offline at once (one gateway alert).
Readings go through the same path as ``POST /readings`` (billing, anomalies), plus the
poll's own bookkeeping (offline, relay reconciliation, overload). Commands are carried out from the stored command list: each
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
from adapters.bus_clients import ControlSecrets, Dlt645Client, MeterRefusedCommand, RtuClient
from adapters.profiles import PROFILES, Profile
from adapters.serial_link import DtuListener, InboundLink, Link, OutboundLink
from adapters.secure_frame import Command, MeterKeys, RelayAction, Status, diversify
from domain.device_command import DeviceCommand
from ledger.clock import utc_now
from ledger.commands import (
    RecordCommandOutcome,
    RecordGatewayReachable,
    RecordGatewayUnreachable,
    RecordPollFailures,
    RecordPollSuccesses,
    TakeReadings,
)
from ledger.devices import DEVICE_RUNTIME
from ledger.gateway_hosts import DEFAULT_POLICY

log = logging.getLogger(__name__)

BILL_BATCH = 500  # a polling cycle bills its readings in batches of at least this ...
BILL_EVERY_S = 2.0  # ... or of what came in this long, one batch at a time


class _Biller:
    """Bills a polling cycle's readings while it runs: one batch at a time (in a thread),
    each as large as has come in, so slow buses (DL/T 645 at 2400 baud) do not leave all
    the billing to the end, and fast ones still bill in a few large batches."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.pending: list = []
        self.answers: list[dict] = []
        self.running: asyncio.Task | None = None
        self.error: BaseException | None = None
        self.since = asyncio.get_running_loop().time()

    def add(self, reading) -> None:
        self.pending.append(reading)
        self._maybe_start()

    def _maybe_start(self) -> None:
        if self.running is not None or not self.pending:
            return
        waited = asyncio.get_running_loop().time() - self.since
        if len(self.pending) >= BILL_BATCH or waited >= BILL_EVERY_S:
            self._start()

    def _start(self) -> None:
        batch, self.pending = self.pending, []
        self.running = asyncio.ensure_future(asyncio.to_thread(self.ledger.execute,
                                                               TakeReadings(batch), DEVICE_RUNTIME))
        self.running.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.running = None
        self.since = asyncio.get_running_loop().time()
        if task.cancelled() or task.exception() is not None:
            self.error = self.error or (task.exception() if not task.cancelled()
                                        else asyncio.CancelledError())
            return
        self.answers.extend(task.result().answers)
        self._maybe_start()

    async def finish(self) -> list[dict]:
        while self.error is None and (self.running is not None or self.pending):
            if self.running is not None:
                await asyncio.wait([self.running])
            else:
                self._start()
        if self.error is not None:
            raise self.error
        return self.answers


@dataclass
class PollReport:
    gateways: int = 0
    meters: int = 0
    read: int = 0
    failed: int = 0
    went_offline: int = 0
    gateways_down: int = 0
    answers: list[dict] = field(default_factory=list)


def _gateway_info(gateway: Any) -> dict[str, Any]:
    """The same fields from a read-model row or a ``Gateway`` aggregate."""
    if isinstance(gateway, dict):
        return gateway
    return {"id": str(gateway.id), "site_id": str(gateway.site_id), **gateway.connection()}


class _InboundLinks(dict):
    """Registration id -> link, looked up in the read models on a miss (a gateway
    registered after the last poll), at most once a second."""

    def __init__(self, runtime: DeviceRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self._looked_at = 0.0

    def get(self, key, default=None):  # type: ignore[override]
        found = super().get(key)
        if found is None:
            import time

            if time.monotonic() - self._looked_at >= 1.0:
                self._looked_at = time.monotonic()
                for gateway in self.runtime.queries.gateways():
                    if gateway.get("connect") == "inbound":
                        self.runtime.link_for(gateway)
                found = super().get(key)
        return found if found is not None else default


class DeviceRuntime:
    def __init__(self, ledger, queries, master_key: bytes | None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, tries: int = DEFAULT_TRIES,
                 clock: Callable[[], datetime] = utc_now,
                 secrets: ControlSecrets | None = None) -> None:
        self.ledger = ledger
        self.queries = queries
        self.master_key = master_key
        self.timeout_s = timeout_s
        self.tries = tries
        self.clock = clock
        self._channels: dict[tuple[str, int], GatewayChannel] = {}
        self._keys: dict[str, MeterKeys] = {}
        self.secrets = secrets
        self._links: dict[str, tuple[tuple, Link]] = {}  # gateway id -> (its setup, link)
        self.inbound = _InboundLinks(self)
        self.listener: DtuListener | None = None
        self._watch: asyncio.Task | None = None
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

    def link_for(self, gateway: dict) -> Link:
        """The link of a transparent gateway, made anew when its setup changed."""
        setup = (gateway["protocol"], gateway.get("connect"), gateway.get("host"),
                 gateway.get("port"), gateway.get("registration_id"),
                 gateway.get("heartbeat"), gateway.get("baud"))
        known = self._links.get(gateway["id"])
        if known is not None and known[0] == setup:
            return known[1]
        heartbeat = (gateway.get("heartbeat") or "").encode("ascii")
        baud = gateway.get("baud") or 2400
        link: Link
        if gateway.get("connect") == "inbound":
            registration_id = gateway["registration_id"]
            holder = dict.get(self.inbound, registration_id)
            if holder is not None and holder is not (known or (None, None))[1]:
                log.warning("registration id %r is set on more than one gateway; the "
                            "first keeps it", registration_id)
                return holder
            link = InboundLink(registration_id, baud=baud, heartbeat=heartbeat)
            dict.__setitem__(self.inbound, registration_id, link)
        else:
            link = OutboundLink(gateway["host"], gateway["port"], baud=baud,
                                heartbeat=heartbeat, connect_timeout_s=self.timeout_s,
                                policy=getattr(self.ledger, "gateway_hosts", DEFAULT_POLICY))
        self._links[gateway["id"]] = (setup, link)
        return link

    async def start_listener(self, host: str, port: int) -> int:
        """Accept inbound DTUs on ``host``:``port`` (0: any free port); returns the port."""
        for gateway in await asyncio.to_thread(self.queries.gateways):
            if gateway.get("connect") == "inbound":
                self.link_for(gateway)
        self.listener = DtuListener(self.inbound, clock=self.clock)
        bound = await self.listener.start(host, port)
        self._watch = asyncio.get_running_loop().create_task(self._watch_inbound())
        log.info("listening for DTUs on %s:%s", host, bound)
        return bound

    async def _watch_inbound(self) -> None:
        """Note heartbeats of idle DTUs (and drop their bytes) every second."""
        while True:
            await asyncio.sleep(1.0)
            for link in list(dict.values(self.inbound)):
                if not link.lock.locked() and link.connected:
                    link._discard_pending(link._reader)

    def link_state(self, gateway: Any) -> dict[str, Any]:
        info = _gateway_info(gateway)
        if info.get("connect") != "inbound":
            known = self._links.get(info["id"])
            return {"connect": "outbound",
                    "connected": bool(known and known[1].connected)}
        link = dict.get(self.inbound, info.get("registration_id"))
        state = link.state if isinstance(link, InboundLink) else None
        connected = bool(link and link.connected)
        return {"connect": "inbound", "listening": self.listener is not None,
                "connected": connected,
                "connected_since": state.connected_since.isoformat()
                if connected and state and state.connected_since else None,
                "last_heartbeat_at": state.last_heartbeat_at.isoformat()
                if state and state.last_heartbeat_at else None}

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        for _, link in self._links.values():
            await link.close()
        self._links.clear()
        dict.clear(self.inbound)

    # -- one meter, whatever the protocol ----------------------------------------------

    async def snapshot(self, gateway: dict, meter: dict, profile: Profile) -> Any:
        """One meter read (identity checked), through the client its gateway needs."""
        protocol = gateway["protocol"]
        if protocol == "modbus-tcp":
            channel = self.channel(gateway["host"], gateway["port"])
            return await channel.snapshot(meter["address"], meter["meter_no"], profile,
                                          self.clock())
        link = self.link_for(gateway)
        if protocol == "dlt645-tcp":
            return await Dlt645Client(link, tries=self.tries).snapshot(meter["meter_no"],
                                                                       self.clock())
        return await RtuClient(link, tries=self.tries).snapshot(
            meter["address"], meter["meter_no"], profile, self.clock())

    async def broadcast_time(self) -> int:
        """DL/T 645 broadcast time to every DL/T 645 bus, in its site's local time."""
        sent = 0
        for gateway in await asyncio.to_thread(self.queries.gateways):
            if gateway["protocol"] != "dlt645-tcp":
                continue
            site = await asyncio.to_thread(self.ledger.metering.get_site, UUID(gateway["site_id"]))
            local = self.clock().astimezone(site.zone).replace(tzinfo=None)
            try:
                await Dlt645Client(self.link_for(gateway)).broadcast_time(local)
                sent += 1
            except Exception as error:  # a bus that is down gets the next one
                log.info("time sync to gateway %s: %s", gateway["name"], type(error).__name__)
        return sent

    # -- polling -----------------------------------------------------------------------

    async def poll(self, site_id: str | None = None,
                   gateway_ids: list[str] | None = None) -> PollReport:
        gateways = await asyncio.to_thread(self.queries.gateways, site_id)
        if gateway_ids is not None:
            gateways = [g for g in gateways if g["id"] in gateway_ids]
        started_at, started = self.clock(), time.monotonic()
        billing = _Biller(self.ledger)  # readings billed while the buses go on
        results = await asyncio.gather(*(self._poll_gateway(g, billing) for g in gateways))
        if self.on_polled is not None:
            # Per gateway: the meters read, and those that failed (all of an unreachable
            # gateway's meters among them).
            per_gateway = [(ok, bad + ([(m, d[2]) for m in d[1]] if d else []))
                           for ok, bad, d in results]
            try:
                await asyncio.to_thread(self.on_polled, site_id, started_at, gateways,
                                        per_gateway, time.monotonic() - started)
            except Exception:  # recording a cycle never stops polling
                log.exception("recording a polling cycle failed")
        readings = [r for ok, _, _ in results for r in ok]
        failures = [f for _, bad, _ in results for f in bad]
        down = [d for _, _, d in results if d is not None]
        report = PollReport(gateways=len(gateways), meters=len(readings) + len(failures),
                            read=len(readings), failed=len(failures),
                            gateways_down=len(down))
        report.meters += sum(len(meters) for _, meters, _ in down)
        report.failed += sum(len(meters) for _, meters, _ in down)
        report.answers = await billing.finish()
        report.went_offline = await self._record_failures(gateways, failures, down)
        return report

    async def status_poll(self, site_id: str | None = None,
                          gateway_ids: list[str] | None = None) -> PollReport:
        """The light poll (every minute by default): each meter's relay state only, one
        short transaction a meter, for reachability. Failures count toward offline as a
        billing poll's do; an unreachable gateway takes its meters offline at once; a
        meter that answers comes back online."""
        gateways = await asyncio.to_thread(self.queries.gateways, site_id)
        if gateway_ids is not None:
            gateways = [g for g in gateways if g["id"] in gateway_ids]
        results = await asyncio.gather(*(self._status_gateway(g) for g in gateways))
        report = PollReport(gateways=len(gateways))
        answered = [m for ok, _, _ in results for m in ok]
        failures = [f for _, bad, _ in results for f in bad]
        down = [d for _, _, d in results if d is not None]
        report.read = len(answered)
        report.failed = len(failures) + sum(len(ids) for _, ids, _ in down)
        report.meters = report.read + report.failed
        report.gateways_down = len(down)
        back = [UUID(m["id"]) for m in answered if m.get("online") is False]
        if back:
            await asyncio.to_thread(self.ledger.execute, RecordPollSuccesses(tuple(back)),
                                    DEVICE_RUNTIME)
        report.went_offline = await self._record_failures(gateways, failures, down)
        return report

    async def _record_failures(self, gateways: list[dict], failures: list,
                               down: list) -> int:
        """What a poll (billing or status) learnt of failures: meters that did not answer,
        gateways that could not be reached (their meters offline at once, one alert), and
        gateways reached again. Returns how many meters went offline."""
        went_offline = 0
        if failures:
            went_offline = await asyncio.to_thread(
                self.ledger.execute, RecordPollFailures(tuple(failures)), DEVICE_RUNTIME)
        for gateway_id, meter_ids, error in down:
            went_offline += await asyncio.to_thread(
                self.ledger.execute,
                RecordGatewayUnreachable(UUID(gateway_id), tuple(meter_ids), error),
                DEVICE_RUNTIME)
        down_ids = {gateway_id for gateway_id, _, _ in down}
        for gateway in gateways:
            if gateway.get("reachable") is False and gateway["id"] not in down_ids:
                await asyncio.to_thread(self.ledger.execute,
                                        RecordGatewayReachable(UUID(gateway["id"])),
                                        DEVICE_RUNTIME)
        return went_offline

    async def _status_gateway(self, gateway: dict) -> tuple[list, list, tuple | None]:
        meters = await asyncio.to_thread(self.queries.meters_of_gateway, gateway["id"])
        answered, failures = [], []
        for index, meter in enumerate(meters):
            profile = PROFILES[meter["profile"]]
            try:
                if gateway["protocol"] == "modbus-tcp":
                    await self.channel(gateway["host"], gateway["port"]).state(
                        meter["address"], meter["meter_no"], profile)
                else:
                    await self._bus_state(gateway, meter, profile)
            except MeterUnreachable as error:
                if error.gateway and not answered:
                    ids = [meter_id for meter_id, _ in failures] + [
                        UUID(m["id"]) for m in meters[index:]]
                    return [], [], (gateway["id"], ids, str(error))
                failures.append((UUID(meter["id"]), str(error)))
                continue
            answered.append(meter)
        return answered, failures, None

    async def _poll_gateway(self, gateway: dict, billing: _Biller
                            ) -> tuple[list, list, tuple | None]:
        """Read a gateway's meters one after another; each reading goes to the cycle's
        biller, which bills them in large batches while the buses go on."""
        meters = await asyncio.to_thread(self.queries.meters_of_gateway, gateway["id"])
        readings, failures = [], []

        for index, meter in enumerate(meters):  # the bus is serial: one after another
            try:
                snapshot = await self.snapshot(gateway, meter, PROFILES[meter["profile"]])
            except MeterUnreachable as error:
                if error.gateway and not readings:
                    # No socket to the gateway: none of its meters can answer (those
                    # tried before failed on the socket the gateway just dropped).
                    ids = [meter_id for meter_id, _ in failures] + [
                        UUID(m["id"]) for m in meters[index:]]
                    return [], [], (gateway["id"], ids, str(error))
                failures.append((UUID(meter["id"]), str(error)))
                continue
            reading = snapshot.reading()
            readings.append(type(reading)(**{**reading.__dict__, "from_poll": True}))
            billing.add(readings[-1])
        return readings, failures, None

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

    def report(self, command_id: UUID, outcome: str, *, counter: int | None = None,
               error: str | None = None, observed: dict | None = None) -> DeviceCommand:
        """What became of a try of a command (sent, acknowledged, failed, unreachable)."""
        return self.ledger.execute(
            RecordCommandOutcome(command_id, outcome, counter, error, observed),
            DEVICE_RUNTIME)

    async def execute(self, command_id: UUID) -> DeviceCommand:
        ledger = self.ledger
        command: DeviceCommand = await asyncio.to_thread(ledger.devices.get_command, command_id)
        if not command.due(self.clock()):
            return command
        meter = await asyncio.to_thread(ledger.metering.get_meter, command.meter_id)
        report = self.report
        if meter.gateway_id is None:
            return await asyncio.to_thread(report, command_id, "unreachable",
                                           error="the meter has no gateway")
        gateway = await asyncio.to_thread(ledger.metering.get_gateway, meter.gateway_id)
        profile = PROFILES[meter.profile]
        if profile.secure_buffer is None:
            return await self._execute_on_bus(command, meter, _gateway_info(gateway), profile)
        channel = self.channel(gateway.host, gateway.port)
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
            return await self._unreachable(command, error)
        observed = {"relay": "open" if state["relay"] else "closed",
                    "keep_power": bool(state["keep_power"]), "counter": state["counter"],
                    "status": state["status"]}
        if self._satisfied(command, state, sent=bool(frames)):
            return await asyncio.to_thread(report, command_id, "acknowledged",
                                           observed=observed)
        return await asyncio.to_thread(report, command_id, "failed",
                                       error=f"the meter reports {observed}",
                                       observed=observed)

    async def _unreachable(self, command: DeviceCommand, error: Exception) -> DeviceCommand:
        """A command's try that got no (valid) answer. It counts toward the meter going
        offline exactly as a failed poll does: the platform learns of a silent meter from
        whichever transaction found it silent, not only from the next billing poll."""
        await asyncio.to_thread(self.ledger.execute,
                                RecordPollFailures(((command.meter_id, str(error)),)),
                                DEVICE_RUNTIME)
        return await asyncio.to_thread(self.report, command.id, "unreachable",
                                       error=str(error))

    async def _read_now(self, command, meter, channel: GatewayChannel,
                        profile: Profile) -> DeviceCommand:
        snapshot = await channel.snapshot(meter.address, meter.meter_no, profile, self.clock())
        reading = snapshot.reading()
        await asyncio.to_thread(self.ledger.execute, TakeReadings(
            [type(reading)(**{**reading.__dict__, "from_poll": True})]), DEVICE_RUNTIME)
        return await asyncio.to_thread(
            self.report, command.id, "acknowledged",
            observed={"total": snapshot.values["total"], "relay": snapshot.relay})

    # -- commands on profiles without secure frames (DL/T 645, plain register writes) ---

    async def _execute_on_bus(self, command: DeviceCommand, meter, gateway: dict,
                              profile: Profile) -> DeviceCommand:
        report = self.report
        meter_row = {"id": str(meter.id), "meter_no": meter.meter_no,
                     "address": meter.address, "profile": meter.profile}
        try:
            if command.action == "read_now":
                snapshot = await self.snapshot(gateway, meter_row, profile)
                reading = snapshot.reading()
                await asyncio.to_thread(
                    self.ledger.execute,
                    TakeReadings([type(reading)(**{**reading.__dict__, "from_poll": True})]),
                    DEVICE_RUNTIME)
                return await asyncio.to_thread(
                    report, command.id, "acknowledged",
                    observed={"total": snapshot.values["total"], "relay": snapshot.relay})
            state = await self._bus_state(gateway, meter_row, profile)
            actions = self._bus_actions(command, state, profile)
            missing = [a for a in actions if a not in profile.relay_actions()]
            if missing or any(k in command.payload for k in ("prices_1e4", "overload_w")):
                return await asyncio.to_thread(
                    report, command.id, "failed",
                    error=f"profile {profile.name} cannot "
                          f"{', '.join(missing) or 'take tariffs or thresholds'}")
            credentials = None
            if actions and profile.protocol == "dlt645-tcp":
                credentials = self.secrets.for_meter(gateway.get("site_id"), meter.meter_no) \
                    if self.secrets else None
                if credentials is None:
                    return await asyncio.to_thread(
                        report, command.id, "failed",
                        error="no DL/T 645 control credentials for this meter "
                              "(PREPAID_DLT645_CREDENTIALS_FILE)")
            for action in actions:
                await asyncio.to_thread(report, command.id, "sent")
                state = await self._bus_relay(gateway, meter_row, profile, action,
                                              credentials)
        except MeterRefusedCommand as error:
            return await asyncio.to_thread(report, command.id, "failed",
                                           error=f"the meter refused: {error}")
        except MeterUnreachable as error:
            return await self._unreachable(command, error)
        keep_power = bool(state["keep_power"]) if profile.keep_power else meter.keep_power
        observed = {"relay": "open" if state["relay"] else "closed", "keep_power": keep_power}
        payload = command.payload
        ok = ("relay" not in payload or observed["relay"] == payload["relay"]) and (
            "keep_power" not in payload or not profile.keep_power
            or keep_power == payload["keep_power"])
        if payload.get("keep_power") is True and observed["relay"] != "closed":
            ok = False
        if ok:
            return await asyncio.to_thread(report, command.id, "acknowledged",
                                           observed=observed)
        return await asyncio.to_thread(report, command.id, "failed",
                                       error=f"the meter reports {observed}",
                                       observed=observed)

    async def _bus_state(self, gateway: dict, meter: dict, profile: Profile) -> dict:
        link = self.link_for(gateway)
        if profile.protocol == "dlt645-tcp":
            word = await Dlt645Client(link, tries=self.tries).status(meter["meter_no"])
            return {"relay": int(word.relay_open), "keep_power": int(word.keep_power)}
        return await RtuClient(link, tries=self.tries).state(meter["address"],
                                                              meter["meter_no"], profile)

    async def _bus_relay(self, gateway: dict, meter: dict, profile: Profile, action: str,
                         credentials) -> dict:
        link = self.link_for(gateway)
        if profile.protocol == "dlt645-tcp":
            site = await asyncio.to_thread(self.ledger.metering.get_site, UUID(gateway["site_id"]))
            local = self.clock().astimezone(site.zone).replace(tzinfo=None)
            word = await Dlt645Client(link, tries=self.tries).relay(
                meter["meter_no"], action, credentials, local, profile.relay_codes[action])
            return {"relay": int(word.relay_open), "keep_power": int(word.keep_power)}
        return await RtuClient(link, tries=self.tries).relay(meter["address"],
                                                              meter["meter_no"], profile, action)

    @staticmethod
    def _bus_actions(command: DeviceCommand, state: dict, profile: Profile) -> list[str]:
        """The relay actions still needed (none when the meter is there already: a retry
        after a lost answer confirms instead of acting twice)."""
        payload = command.payload
        actions: list[str] = []
        if payload.get("keep_power") is True:
            if profile.keep_power and not state["keep_power"]:
                actions.append("keep_power_on")  # also closes the relay
            elif state["relay"]:
                actions.append("close")
        if payload.get("keep_power") is False and profile.keep_power and state["keep_power"]:
            actions.append("keep_power_off")
        if payload.get("relay") == "open" and state["relay"] == 0:
            actions.append("trip")
        if payload.get("relay") == "closed" and state["relay"] == 1:
            actions.append("close")
        return actions

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
            "failed": report.failed, "went_offline": report.went_offline,
            "gateways_down": report.gateways_down}
