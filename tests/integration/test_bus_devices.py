"""Billing, enforcement and commands on DL/T 645-2007 and Modbus RTU meters, over real TCP:
a transparent serial server the platform connects to, and a 4G DTU that calls the
platform's listener. The simulated buses run in a background event loop; the platform's
device runtime runs in the test's own loop, with a frozen clock moved by the test."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest

from bootstrap import Platform
from adapters.secure_frame import MeterKeys
from adapters.simulator import SimMeter
from adapters.simulator_serial import SerialServerGateway, SimDtu, TransparentBus
from domain.tariff import TariffSpec
from tests.conftest import FrozenClock

KEYS = MeterKeys(bytes(16), bytes(16))  # test fixture: serial meters use no 3DES
KINDS = ("dlt645-outbound", "rtu-outbound", "dlt645-inbound")


class SimLoop:
    """The simulator's own event loop, in a thread (as a separate device would be)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def call(self, function, *args):
        async def wrapped():
            return function(*args)
        return self.run(wrapped())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(params=KINDS)
def bus_site(request, backend, make_settings, tmp_path):
    kind = request.param
    protocol = "modbus-rtu" if kind.startswith("rtu") else "dlt645"
    meters = [SimMeter("000000000501", 1, KEYS, power_w=2200),
              SimMeter("000000000502", 2, KEYS, power_w=2200)]
    bus = TransparentBus(protocol, meters, baud=9600, time_scale=0.0)
    sim = SimLoop()
    secrets = tmp_path / "dlt645.json"
    clock = FrozenClock()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen_port = probe.getsockname()[1]
    platform = Platform(make_settings(backend, poll_timeout_s=0.3, poll_tries=1,
                                      gateway_allowed_networks="127.0.0.0/8",
                                      dlt645_credentials_file=str(secrets)), clock=clock)
    ledger = platform.ledger
    site = ledger.metering.create_site(name="Mall", actor={})
    secrets.write_text(json.dumps({"sites": {str(site.id): {  # a test fixture
        "password_level": 2, "password": "000000", "operator_code": "00000000"}}}))
    server = dtu = None
    if kind.endswith("outbound"):
        server = SerialServerGateway(bus)
        port = sim.run(server.start())
        gateway = ledger.metering.register_gateway(
            site_id=site.id, name="Shaft 1", host="127.0.0.1", port=port,
            protocol="modbus-rtu-tcp" if protocol == "modbus-rtu" else "dlt645-tcp",
            baud=9600, actor={})
    else:
        gateway = ledger.metering.register_gateway(
            site_id=site.id, name="DTU 1", host=None, port=None, protocol="dlt645-tcp",
            connect="inbound", registration_id="IMEI860000000000001", heartbeat="HB",
            baud=9600, actor={})
    tariff = ledger.metering.create_tariff(name="Flat 1 yuan", actor={},
                                           effective_from=clock.now - timedelta(days=1),
                                           spec=TariffSpec.from_dict({"kind": "flat",
                                                                      "price_1e4": 10_000}))
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    ledger.accounts.top_up(account, amount_fen=1000, channel="cash", actor={})
    profile = "acrel-ddsy1352" if protocol == "modbus-rtu" else "dlt645-2007"
    registered = [ledger.metering.register_meter(
        meter_no=m.meter_no, kind="electricity", mode="prepaid" if i == 0 else "monitoring",
        gateway_id=gateway.id, address=m.address if protocol == "modbus-rtu" else None,
        profile=profile, account_id=account if i == 0 else None,
        tariff_id=tariff.id if i == 0 else None, tariff_from=clock.now - timedelta(days=1),
        actor={}) for i, m in enumerate(meters)]
    platform.catch_up()
    runtime = platform.device_runtime()
    loop = asyncio.new_event_loop()
    context = {"kind": kind, "platform": platform, "ledger": ledger, "clock": clock,
               "account": account, "meter": registered[0], "sim_meter": meters[0],
               "bus": bus, "runtime": runtime, "sim": sim, "gateway": gateway,
               "server": server, "run": loop.run_until_complete, "listen_port": listen_port}
    if kind.endswith("inbound"):
        loop.run_until_complete(runtime.start_listener("127.0.0.1", listen_port))
        dtu = SimDtu(bus, "IMEI860000000000001", heartbeat=b"HB", heartbeat_every_s=0.2,
                     reconnect_after_s=0.1)
        sim.call(dtu.start, "127.0.0.1", listen_port)
        context["dtu"] = dtu
        wait_connected(context)
    yield context
    loop.run_until_complete(runtime.close())
    loop.close()
    if dtu is not None:
        sim.run(dtu.stop())
    if server is not None:
        sim.run(server.stop())
    sim.stop()
    platform.close()


def wait_connected(site, connections: int = 1) -> None:
    async def wait():
        link = dict.get(site["runtime"].inbound, "IMEI860000000000001")
        for _ in range(200):
            if link.connected and site["dtu"].connections >= connections:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the DTU did not connect")
    site["run"](wait())


def poll(site, kwh_used: float = 0.0):
    site["sim_meter"].energy_wh += kwh_used * 1000
    site["clock"].advance(minutes=30)
    report = site["run"](site["runtime"].poll())
    site["platform"].enforce()
    site["run"](site["runtime"].execute_due())
    site["platform"].enforce()
    return report


def work(site):
    site["platform"].enforce()
    site["run"](site["runtime"].execute_due())
    site["platform"].catch_up()


def balance(site) -> int:
    return site["ledger"].accounts.get_account(site["account"]).balance_fen("electricity")


def commands(site):
    return [(c["action"], c["status"]) for c in
            site["platform"].device_queries.commands_of_meter(str(site["meter"].id))]


def test_first_reading_billing_arrears_trip_and_top_up_close(bus_site):
    site = bus_site
    report = poll(site)  # the starting reading
    assert report.read == 2 and report.failed == 0, report
    report = poll(site, kwh_used=6)
    assert [a["billing"] for a in report.answers][:1] == ["charged"], report.answers
    assert balance(site) == 400
    poll(site, kwh_used=5)
    assert balance(site) == -100
    assert site["sim_meter"].relay == 1  # tripped on the simulated bus itself
    site["ledger"].accounts.top_up(site["account"], amount_fen=2000, channel="wechat", actor={})
    work(site)
    assert site["sim_meter"].relay == 0
    assert commands(site) == [("close", "acknowledged"), ("trip", "acknowledged")]
    assert site["sim_meter"].accepted_frames == 2  # each action sent once
    work(site)
    assert len(commands(site)) == 2


def test_keep_power_holds_off_arrears(bus_site):
    site = bus_site
    site["ledger"].devices.command_meter(site["meter"].id, action="keep_power", reason="freezer",
                                         actor={})
    work(site)
    if site["kind"].startswith("dlt645"):
        assert site["sim_meter"].keep_power == 1  # the meter's own keep-power state
    poll(site)
    poll(site, kwh_used=12)
    assert balance(site) == -200
    assert site["sim_meter"].relay == 0  # kept on despite arrears
    assert commands(site)[0] == ("keep_power", "acknowledged")


def test_a_meter_refusing_relay_control_fails_the_command_with_the_reason(bus_site):
    site = bus_site
    if not site["kind"].startswith("dlt645"):
        pytest.skip("ESAM is a DL/T 645 matter")
    site["bus"].behaviour.esam_required = True
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    detail = site["ledger"].devices.get_command(uuid.UUID(command["id"]))
    assert "ESAM" in (detail.last_error or ""), detail.last_error
    assert site["sim_meter"].relay == 0


def test_a_gateway_that_cannot_be_reached_takes_its_meters_offline_at_once(bus_site):
    site = bus_site
    poll(site)
    if site["server"] is not None:
        site["sim"].run(site["server"].stop())
    else:
        site["sim"].run(site["dtu"].stop())
        site["run"](asyncio.sleep(0.3))  # the hang-up reaches the platform
    report = poll(site)
    assert report.gateways_down == 1 and report.went_offline == 2, report
    platform = site["platform"]
    platform.catch_up()
    meters = site["ledger"].metering.get_meter(site["meter"].id)
    assert not meters.online
    alerts = platform.metering_queries.alerts(str(site["gateway"].id))
    assert len(alerts) == 1 and alerts[0]["kind"] == "gateway_offline", alerts
    assert platform.metering_queries.alerts(str(site["meter"].id)) == []
    poll(site)  # still down: no second alert
    assert len(platform.metering_queries.alerts(str(site["gateway"].id))) == 1
    # It comes back: the first good answer brings the meters back.
    if site["server"] is not None:
        site["sim"].run(site["server"].start("127.0.0.1", site["gateway"].port))
    else:
        dtu = SimDtu(site["bus"], "IMEI860000000000001", heartbeat=b"HB",
                     reconnect_after_s=0.1)
        site["sim"].call(dtu.start, "127.0.0.1", site["listen_port"])
        site["dtu"] = dtu
        wait_connected(site)
    report = poll(site)
    assert report.read == 2 and report.gateways_down == 0, report
    assert site["ledger"].metering.get_meter(site["meter"].id).online
    assert site["ledger"].metering.get_gateway(site["gateway"].id).reachable


def test_a_dtu_reconnecting_replaces_its_socket_and_nothing_runs_twice(bus_site):
    site = bus_site
    if not site["kind"].endswith("inbound"):
        pytest.skip("DTUs call in")
    poll(site)
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    site["sim"].call(site["dtu"].drop)  # the carrier drops the connection
    site["run"](asyncio.sleep(0.05))
    work(site)  # not connected (or the socket just died): unreachable, tried again later
    wait_connected(site, connections=2)
    site["clock"].advance(minutes=10)
    work(site)  # on the new socket
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1
    assert commands(site) == [("trip", "acknowledged")]
    site["sim"].call(site["dtu"].drop)  # and once more: the new socket replaces the old
    wait_connected(site, connections=3)
    site["clock"].advance(minutes=10)
    work(site)
    assert poll(site).read == 2
    assert site["sim_meter"].accepted_frames == 1  # nothing executed twice
    assert commands(site) == [("trip", "acknowledged")]
    state = site["runtime"].link_state(site["gateway"])
    assert state["connected"] and state["connected_since"]
    time.sleep(0.5)
    site["run"](asyncio.sleep(1.2))  # the watcher notes idle heartbeats
    assert site["runtime"].link_state(site["gateway"])["last_heartbeat_at"]


def test_an_unknown_registration_id_is_refused_and_logged(bus_site, caplog):
    site = bus_site
    if not site["kind"].endswith("inbound"):
        pytest.skip("DTUs call in")

    async def stranger() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", site["listen_port"])
        writer.write(b"NOT-A-KNOWN-DTU")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        return data

    assert site["run"](stranger()) == b""  # closed on it
    assert "NOT-A-KNOWN-DTU" in site["runtime"].listener.refused
    assert "unknown id 'NOT-A-KNOWN-DTU'" in caplog.text
    assert poll(site).read == 2  # the real DTU is untouched


def test_the_light_status_poll_finds_a_gateway_gone_and_back(bus_site):
    site = bus_site
    poll(site)
    platform = site["platform"]
    if site["server"] is not None:
        site["sim"].run(site["server"].stop())
    else:
        site["sim"].run(site["dtu"].stop())
        site["run"](asyncio.sleep(0.3))
    before = site["bus"].transactions
    report = site["run"](site["runtime"].status_poll())
    assert report.gateways_down == 1 and report.went_offline == 2, report
    platform.catch_up()
    assert len(platform.metering_queries.alerts(str(site["gateway"].id))) == 1
    assert not site["ledger"].metering.get_meter(site["meter"].id).online
    if site["server"] is not None:
        site["sim"].run(site["server"].start("127.0.0.1", site["gateway"].port))
    else:
        dtu = SimDtu(site["bus"], "IMEI860000000000001", reconnect_after_s=0.1)
        site["sim"].call(dtu.start, "127.0.0.1", site["listen_port"])
        site["dtu"] = dtu
        wait_connected(site)
    report = site["run"](site["runtime"].status_poll())
    assert report.read == 2 and report.gateways_down == 0, report
    assert site["bus"].transactions - before == 2  # one short read a meter
    assert site["ledger"].metering.get_meter(site["meter"].id).online
    assert site["ledger"].metering.get_gateway(site["gateway"].id).reachable
    balance_before = balance(site)
    assert balance(site) == balance_before  # a status poll bills nothing


def test_a_lost_command_answer_is_confirmed_by_reading_back_and_sent_once(bus_site):
    site = bus_site
    poll(site)
    site["bus"].lose_command_answers = 1  # the meter trips; its answer never arrives
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1
    assert commands(site) == [("trip", "acknowledged")]
    site["clock"].advance(minutes=10)
    work(site)
    assert site["sim_meter"].accepted_frames == 1
