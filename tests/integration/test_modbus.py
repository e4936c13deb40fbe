"""The meter client against the simulator over real Modbus TCP: reads, secure writes,
refused frames with their status codes, keep-power, lost acknowledgements, faults."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from adapters.meter_client import GatewayChannel, MeterUnreachable
from adapters.profiles import REF_PREPAID_V1 as PROFILE
from ledger.gateway_hosts import GatewayHostPolicy, parse_networks
from adapters.secure_frame import (
    Command,
    RelayAction,
    Status,
    build_frame,
    diversify,
    frame_to_registers,
)
from tests.integration.simulation import TEST_MASTER_KEY, running_simulation

NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)
LOOPBACK_ALLOWED = GatewayHostPolicy(parse_networks("127.0.0.0/8"))  # the simulator


@pytest.fixture
def sim():
    with running_simulation(speed=3600.0) as running:  # one real second is one hour
        yield running


def channel(sim, gateway=0, **options) -> GatewayChannel:
    return GatewayChannel("127.0.0.1", sim.simulation.gateways[gateway].port,
                          policy=LOOPBACK_ALLOWED, **options)


def first_meter(sim):
    return sim.simulation.gateways[0].meters[1]


def run(sim, coroutine):
    return sim.run(coroutine)


def test_a_poll_reads_energy_that_grows_and_the_nameplate_number(sim):
    meter = first_meter(sim)

    async def twice():
        ch = channel(sim)
        first = await ch.snapshot(1, meter.meter_no, PROFILE, NOW)
        await asyncio.sleep(0.3)
        second = await ch.snapshot(1, meter.meter_no, PROFILE, NOW)
        await ch.close()
        return first, second

    first, second = run(sim, twice())
    assert first.values["relay"] == 0 and first.values["counter"] == 0
    assert second.values["total"] > first.values["total"]
    assert first.reading().meter_no == meter.meter_no

    async def wrong_number():
        ch = channel(sim)
        try:
            await ch.snapshot(1, "000000000000", PROFILE, NOW)
        finally:
            await ch.close()

    with pytest.raises(MeterUnreachable):
        run(sim, wrong_number())


def secure(sim, command, payload, meter=None):
    meter = meter or first_meter(sim)

    async def go():
        ch = channel(sim, timeout_s=0.5)
        try:
            return await ch.secure_write(meter.address, meter.meter_no, PROFILE,
                                         diversify(TEST_MASTER_KEY, meter.meter_no), command,
                                         payload)
        finally:
            await ch.close()

    return run(sim, go())


def test_trip_and_close_through_secure_frames(sim):
    result = secure(sim, Command.RELAY, bytes([RelayAction.TRIP]))
    assert (result.status, result.counter, result.acknowledged) == (Status.OK, 1, True)
    assert first_meter(sim).relay == 1
    secure(sim, Command.RELAY, bytes([RelayAction.CLOSE]))
    assert first_meter(sim).relay == 0 and first_meter(sim).counter == 2


def raw_write(sim, frame: bytes, address=1):
    meter_no = sim.simulation.gateways[0].meters[address].meter_no

    async def go():
        ch = channel(sim)
        try:
            await ch.write(address, PROFILE.secure_buffer, frame_to_registers(frame))
            return await ch.state(address, meter_no, PROFILE)
        finally:
            await ch.close()

    return run(sim, go())


def test_bad_frames_change_nothing_and_report_their_status(sim):
    meter = first_meter(sim)
    keys = diversify(TEST_MASTER_KEY, meter.meter_no)
    good = build_frame(keys, meter.meter_no, Command.RELAY, 1, bytes([RelayAction.TRIP]))
    wrong_mac = good[:-4] + bytes([good[-4] ^ 0xFF]) + good[-3:]
    other = sim.simulation.gateways[0].meters[2]
    other_number = build_frame(diversify(TEST_MASTER_KEY, other.meter_no), other.meter_no,
                               Command.RELAY, 1, bytes([RelayAction.TRIP]))
    cases = [(wrong_mac, Status.BAD_MAC), (other_number, Status.WRONG_METER),
             (good[:16], Status.BAD_FORMAT)]
    for frame, status in cases:
        state = raw_write(sim, frame)
        assert state["status"] == status, frame
        assert state["counter"] == 0 and state["relay"] == 0
    assert raw_write(sim, good)["relay"] == 1  # the good one still works
    replay = raw_write(sim, good)  # the same frame again
    assert replay["status"] == Status.BAD_COUNTER and replay["counter"] == 1
    assert meter.accepted_frames == 1


def test_keep_power_makes_the_meter_ignore_trips(sim):
    secure(sim, Command.RELAY, bytes([RelayAction.KEEP_POWER_ON]))
    result = secure(sim, Command.RELAY, bytes([RelayAction.TRIP]))
    assert result.status == Status.OK and first_meter(sim).relay == 0
    secure(sim, Command.RELAY, bytes([RelayAction.KEEP_POWER_OFF]))
    secure(sim, Command.RELAY, bytes([RelayAction.TRIP]))
    assert first_meter(sim).relay == 1


def test_a_lost_acknowledgement_is_read_back_not_replayed(sim):
    first_meter(sim).lose_acks = 1
    result = secure(sim, Command.RELAY, bytes([RelayAction.TRIP]))
    assert result.acknowledged is False and result.counter == 1 and result.status == Status.OK
    assert first_meter(sim).relay == 1 and first_meter(sim).accepted_frames == 1


def test_offline_meter_and_gateway_are_unreachable_within_the_time_out(sim):
    meter = first_meter(sim)
    meter.offline = True

    async def poll():
        ch = channel(sim, timeout_s=0.3, tries=2)
        try:
            return await ch.snapshot(1, meter.meter_no, PROFILE, NOW)
        finally:
            await ch.close()

    with pytest.raises(MeterUnreachable):
        run(sim, poll())
    meter.offline = False
    assert run(sim, poll()).meter_no == meter.meter_no
    run(sim, sim.simulation.set_gateway_offline(0, True))
    with pytest.raises(MeterUnreachable):
        run(sim, poll())
    run(sim, sim.simulation.set_gateway_offline(0, False))
    assert run(sim, poll()).meter_no == meter.meter_no


def test_a_channel_does_not_connect_where_the_policy_refuses(sim):
    """Registered before the rule, or a name that now resolves to loopback: the
    connection itself is refused, before anything is sent."""
    meter = first_meter(sim)
    reads_before = meter.updated_at

    async def go():
        ch = GatewayChannel("localhost", sim.simulation.gateways[0].port, timeout_s=0.5)
        try:
            return await ch.snapshot(1, meter.meter_no, PROFILE, NOW)
        finally:
            await ch.close()

    with pytest.raises(MeterUnreachable) as refused:
        run(sim, go())
    assert str(refused.value) == "gateway address not allowed"
    assert meter.updated_at == reads_before  # the simulator never saw a request


def test_a_swapped_meter_fails_the_state_read(sim):
    gateway = sim.simulation.gateways[0]
    other = gateway.meters[2]

    async def go():
        ch = channel(sim)
        try:
            return await ch.state(1, other.meter_no, PROFILE)
        finally:
            await ch.close()

    with pytest.raises(MeterUnreachable) as wrong:
        run(sim, go())
    assert wrong.value.reason == "identity mismatch"
