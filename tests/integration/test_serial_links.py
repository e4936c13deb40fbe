"""Transparent gateways and DTUs over real TCP: DL/T 645 and Modbus RTU meters on a bus.

The simulated gateways (``adapters.simulator_serial``) serve real sockets; the platform's
side (``adapters.serial_link``, ``adapters.bus_clients``) connects to them, or listens for
DTUs that call in, exactly as in a mall.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timezone

import pytest

from adapters import dlt645
from adapters.bus_clients import Dlt645Client, MeterRefusedCommand, RtuClient
from adapters.meter_client import MeterUnreachable
from adapters.profiles import REF_PREPAID_V1
from adapters.secure_frame import MeterKeys
from adapters.serial_link import DtuListener, InboundLink, OutboundLink
from adapters.simulator import SimMeter
from adapters.simulator_serial import (Dlt645Behaviour, SerialServerGateway, SimDtu,
                                       TransparentBus)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
LOCAL_NOW = datetime(2026, 12, 1, 20, 0)
KEYS = MeterKeys(bytes(16), bytes(16))  # test fixture: the serial meters use no 3DES
CREDENTIALS = dlt645.ControlCredentials(0x02, bytes.fromhex("000000"),
                                        bytes.fromhex("00000000"))


def sim_meter(meter_no: str, address: int = 1, energy_wh: float = 0.0) -> SimMeter:
    meter = SimMeter(meter_no, address, KEYS, power_w=2200, energy_wh=energy_wh)
    meter.bands_wh["peak"] = energy_wh * 0.75
    meter.bands_wh["valley"] = energy_wh * 0.25
    return meter


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_dlt645_meters_behind_a_serial_server_read_trip_close_keep_power():
    async def scenario():
        meters = [sim_meter("000000000101", energy_wh=123456.0), sim_meter("000000000102")]
        bus = TransparentBus("dlt645", meters, baud=2400, time_scale=0.05)
        gateway = SerialServerGateway(bus)
        port = await gateway.start()
        client = Dlt645Client(OutboundLink("127.0.0.1", port, baud=2400))
        try:
            snapshot = await client.snapshot("000000000101", NOW)
            assert snapshot.values["total"] == 12345  # 123.45 kWh in 0.01 kWh
            assert snapshot.values["peak"] + snapshot.values["valley"] == 12345
            assert snapshot.values["power_w"] == 2200
            assert snapshot.relay == "closed" and not snapshot.keep_power
            word = await client.relay("000000000101", "trip", CREDENTIALS, LOCAL_NOW)
            assert word.relay_open and meters[0].relay == 1 and meters[1].relay == 0
            word = await client.relay("000000000101", "keep_power_on", CREDENTIALS, LOCAL_NOW)
            assert word.keep_power and not word.relay_open
            word = await client.relay("000000000101", "trip", CREDENTIALS, LOCAL_NOW)
            assert not word.relay_open  # keep-power holds
            await client.relay("000000000101", "keep_power_off", CREDENTIALS, LOCAL_NOW)
            assert (await client.relay("000000000101", "trip", CREDENTIALS,
                                       LOCAL_NOW)).relay_open
            assert not (await client.relay("000000000101", "close", CREDENTIALS,
                                           LOCAL_NOW)).relay_open
        finally:
            await client.link.close()
            await gateway.stop()
    run(scenario())


def test_a_refusal_says_why_and_esam_meters_are_named():
    async def scenario():
        bus = TransparentBus("dlt645", [sim_meter("000000000201")], time_scale=0,
                             behaviour=Dlt645Behaviour(esam_required=True))
        gateway = SerialServerGateway(bus)
        client = Dlt645Client(OutboundLink("127.0.0.1", await gateway.start(), baud=2400))
        try:
            with pytest.raises(MeterRefusedCommand, match="ESAM"):
                await client.ask(dlt645.relay_request(
                    "000000000201", dlt645.RelayAction.TRIP, CREDENTIALS, LOCAL_NOW))
            assert bus.meters[0].relay == 0
        finally:
            await client.link.close()
            await gateway.stop()
    run(scenario())


def test_a_lost_answer_is_settled_by_reading_the_meter_back():
    async def scenario():
        bus = TransparentBus("dlt645", [sim_meter("000000000301")], time_scale=0)
        gateway = SerialServerGateway(bus)
        link = OutboundLink("127.0.0.1", await gateway.start(), baud=9600, margin_s=0.3)
        client = Dlt645Client(link)
        try:
            bus.lose_next_answers = 1
            word = await client.relay("000000000301", "trip", CREDENTIALS, LOCAL_NOW)
            assert word.relay_open
            assert bus.meters[0].accepted_frames == 1  # sent once, never replayed
        finally:
            await link.close()
            await gateway.stop()
    run(scenario())


def test_nobody_at_the_address_is_unreachable_not_another_meters_answer():
    async def scenario():
        bus = TransparentBus("dlt645", [sim_meter("000000000401")], time_scale=0)
        gateway = SerialServerGateway(bus)
        link = OutboundLink("127.0.0.1", await gateway.start(), baud=9600, margin_s=0.2)
        try:
            with pytest.raises(MeterUnreachable):
                await Dlt645Client(link).snapshot("000000000499", NOW)
        finally:
            await link.close()
            await gateway.stop()
    run(scenario())


def test_a_gateway_that_is_gone_is_unreachable_fast():
    async def scenario():
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        link = OutboundLink("127.0.0.1", port, baud=2400, connect_timeout_s=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MeterUnreachable):
            await Dlt645Client(link).snapshot("000000000501", NOW)
        assert loop.time() - started < 2
    run(scenario())


def test_modbus_rtu_meters_behind_a_serial_server_with_identity_checked():
    async def scenario():
        meters = [sim_meter("00000000a001", address=1, energy_wh=5000.0),
                  sim_meter("00000000a002", address=2)]
        bus = TransparentBus("modbus-rtu", meters, baud=9600, time_scale=0.05)
        gateway = SerialServerGateway(bus)
        link = OutboundLink("127.0.0.1", await gateway.start(), baud=9600, margin_s=0.3)
        client = RtuClient(link)
        try:
            snapshot = await client.snapshot(1, "00000000a001", REF_PREPAID_V1, NOW)
            assert snapshot.values["total"] == 500 and snapshot.relay == "closed"
            with pytest.raises(MeterUnreachable, match="answers as meter 00000000a002"):
                await client.snapshot(2, "00000000a001", REF_PREPAID_V1, NOW)
        finally:
            await link.close()
            await gateway.stop()
    run(scenario())


def test_dtus_call_in_register_heartbeat_reconnect_and_unknown_ids_are_refused():
    async def scenario():
        bus = TransparentBus("dlt645", [sim_meter("000000000601", energy_wh=1000.0)],
                             time_scale=0)
        link = InboundLink("DTU-0601", baud=2400, heartbeat=b"HB", margin_s=0.5)
        listener = DtuListener({"DTU-0601": link}, clock=lambda: NOW)
        port = await listener.start("127.0.0.1", 0)
        dtu = SimDtu(bus, "DTU-0601", heartbeat=b"HB", heartbeat_every_s=0.05,
                     reconnect_after_s=0.1)
        stranger = SimDtu(TransparentBus("dlt645", [], time_scale=0), "DTU-UNKNOWN",
                          reconnect_after_s=5)
        client = Dlt645Client(link)
        try:
            with pytest.raises(MeterUnreachable, match="gateway unreachable") as caught:
                await client.snapshot("000000000601", NOW)
            assert caught.value.gateway and "not connected" in caught.value.detail
            dtu.start("127.0.0.1", port)
            stranger.start("127.0.0.1", port)
            for _ in range(100):
                if link.connected and "DTU-UNKNOWN" in listener.refused:
                    break
                await asyncio.sleep(0.05)
            assert link.connected and link.state.connected_since == NOW
            assert "DTU-UNKNOWN" in listener.refused
            await asyncio.sleep(0.2)  # heartbeats arrive while idle: they are no answer
            assert (await client.snapshot("000000000601", NOW)).values["total"] == 100
            # The carrier drops the connection; the DTU calls in again and the new socket
            # replaces the old one; the command is executed once.
            dtu.drop()
            for _ in range(100):
                if dtu.connections == 2 and link.connected:
                    break
                await asyncio.sleep(0.05)
            assert dtu.connections == 2
            word = await client.relay("000000000601", "trip", CREDENTIALS, LOCAL_NOW)
            assert word.relay_open and bus.meters[0].accepted_frames == 1
        finally:
            await dtu.stop()
            await stranger.stop()
            await listener.stop()
    run(scenario())


def test_broadcast_time_reaches_the_bus():
    async def scenario():
        bus = TransparentBus("dlt645", [sim_meter("000000000701")], time_scale=0)
        gateway = SerialServerGateway(bus)
        link = OutboundLink("127.0.0.1", await gateway.start(), baud=9600)
        try:
            await Dlt645Client(link).broadcast_time(datetime(2026, 12, 1, 20, 1, 2))
            for _ in range(50):
                if bus.clock_set_to:
                    break
                await asyncio.sleep(0.02)
            assert bus.clock_set_to == datetime(2026, 12, 1, 20, 1, 2)
        finally:
            await link.close()
            await gateway.stop()
    run(scenario())
