"""Money decisions reach the relays: real Modbus over TCP to the simulator, on SQLite and
PostgreSQL. Time on the platform side is a frozen clock moved by the test; the meters'
energy is set on the simulator between polls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from adapters.platform import Platform
from domain.tariff import TariffSpec
from tests.conftest import FrozenClock
from tests.integration.simulation import TEST_MASTER_KEY, running_simulation


@pytest.fixture
def sim():
    with running_simulation(meters=4, gateways=2, speed=0.0) as running:
        yield running


@pytest.fixture
def site(backend, make_settings, tmp_path, sim):
    key_file = tmp_path / "master.key"
    key_file.write_text(TEST_MASTER_KEY.hex())  # a test fixture key
    clock = FrozenClock()
    platform = Platform(make_settings(backend, master_key_file=str(key_file),
                                      poll_timeout_s=0.3, poll_tries=1,
                                      # the simulator listens on loopback
                                      gateway_allowed_networks="127.0.0.0/8"), clock=clock)
    ledger = platform.ledger
    site = ledger.create_site(name="Mall", actor={})
    gateways = [ledger.register_gateway(site_id=site.id, name=f"GW{g.index}",
                                        host="127.0.0.1", port=g.port,
                                        protocol="modbus-tcp", actor={})
                for g in sim.simulation.gateways]
    tariff = ledger.create_tariff(name="Flat 1 yuan", actor={},
                                  effective_from=clock.now - timedelta(days=1),
                                  spec=TariffSpec.from_dict({"kind": "flat",
                                                             "price_1e4": 10_000}))
    account = uuid.UUID(ledger.open_account(name="Shop", actor={}).result["account_id"])
    ledger.top_up(account, amount_fen=1000, channel="cash", actor={})
    sim_meter = sim.simulation.gateways[0].meters[1]
    meter = ledger.register_meter(meter_no=sim_meter.meter_no, kind="electricity",
                                  mode="prepaid", gateway_id=gateways[0].id,
                                  address=sim_meter.address, profile="ref-prepaid-v1",
                                  account_id=account, tariff_id=tariff.id,
                                  tariff_from=clock.now - timedelta(days=1), actor={})
    platform.catch_up()
    runtime = platform.device_runtime()
    loop = asyncio.new_event_loop()  # one loop for the runtime, as in the scheduler
    context = {"platform": platform, "ledger": ledger, "clock": clock, "account": account,
               "meter": meter, "sim_meter": sim_meter, "runtime": runtime, "sim": sim,
               "run": loop.run_until_complete}
    yield context
    loop.run_until_complete(runtime.close())
    loop.close()
    platform.close()


def poll(site, kwh_used: float = 0.0):
    site["sim_meter"].energy_wh += kwh_used * 1000
    site["clock"].advance(minutes=30)
    platform = site["platform"]
    report = site["run"](site["runtime"].poll())
    platform.enforce()
    site["run"](site["runtime"].execute_due())
    platform.enforce()  # what the command results changed
    return report


def work(site):
    """One round of the device loop: policy, then due commands."""
    site["platform"].enforce()
    site["run"](site["runtime"].execute_due())
    site["platform"].catch_up()


def balance(site) -> int:
    return site["ledger"].get_account(site["account"]).balance_fen("electricity")


def test_arrears_trip_the_meter_and_a_top_up_closes_it(site):
    poll(site)  # the starting reading
    report = poll(site, kwh_used=6)
    assert [a["billing"] for a in report.answers] == ["charged"], report
    assert balance(site) == 400
    assert site["sim_meter"].relay == 0
    poll(site, kwh_used=5)
    assert balance(site) == -100
    assert site["sim_meter"].relay == 1  # read from the simulator's own registers
    state = site["ledger"].get_meter(site["meter"].id)
    assert state.desired_relay == "open" and state.relay_pending is None
    # Consumption goes on being charged while tripped? No: a tripped meter uses nothing.
    poll(site)
    assert balance(site) == -100

    site["ledger"].top_up(site["account"], amount_fen=2000, channel="wechat", actor={})
    work(site)
    assert site["sim_meter"].relay == 0
    commands = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))
    assert [(c["action"], c["status"]) for c in commands] == [
        ("close", "acknowledged"), ("trip", "acknowledged")]
    # Running the policy again issues nothing new.
    work(site)
    assert len(site["platform"].device_queries.commands_of_meter(str(site["meter"].id))) == 2


def test_keep_power_holds_off_arrears_until_released(site):
    ledger, meter = site["ledger"], site["meter"]
    ledger.command_meter(meter.id, action="keep_power", reason="hospital freezer", actor={})
    work(site)
    assert site["sim_meter"].keep_power == 1
    poll(site)
    poll(site, kwh_used=12)
    assert balance(site) == -200
    assert site["sim_meter"].relay == 0  # kept on despite arrears
    ledger.command_meter(meter.id, action="release_keep_power", reason="paid later", actor={})
    work(site)
    assert site["sim_meter"].keep_power == 0 and site["sim_meter"].relay == 1


def test_keep_power_with_an_end_time_lapses_by_itself(site):
    from adapters.scheduler import lapse_keep_power

    ledger, meter, clock = site["ledger"], site["meter"], site["clock"]
    ledger.command_meter(meter.id, action="keep_power", reason="festival",
                         until=clock.now + timedelta(hours=1), actor={})
    work(site)
    poll(site)
    poll(site, kwh_used=11)
    assert site["sim_meter"].relay == 0
    clock.advance(hours=2)
    site["platform"].catch_up()
    assert lapse_keep_power(site["platform"]) == 1
    work(site)
    assert site["sim_meter"].keep_power == 0 and site["sim_meter"].relay == 1


def test_a_gateway_offline_during_a_trip_is_retried_and_the_frame_sent_once(site):
    sim = site["sim"]
    poll(site)
    site["run"](site["runtime"].close())
    sim.run(sim.simulation.set_gateway_offline(0, True))
    site["ledger"].command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    assert command["status"] == "failed" and command["attempts"] == 1
    work(site)  # not due yet: the backoff holds it
    assert site["ledger"].get_command(uuid.UUID(command["id"])).attempts == 1
    sim.run(sim.simulation.set_gateway_offline(0, False))
    site["clock"].advance(minutes=1)
    work(site)
    done = site["ledger"].get_command(uuid.UUID(command["id"]))
    assert done.status == "acknowledged"
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1


def test_a_lost_acknowledgement_is_confirmed_by_reading_back(site):
    poll(site)
    site["sim_meter"].lose_acks = 1
    site["ledger"].command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    assert command["status"] == "acknowledged"
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1


def test_a_meter_that_stops_answering_goes_offline_and_comes_back(site):
    poll(site)
    site["sim_meter"].offline = True
    for _ in range(3):
        poll(site)
    meter = site["ledger"].get_meter(site["meter"].id)
    assert meter.online is False
    site["platform"].catch_up()
    alerts = site["platform"].metering_queries.alerts(str(meter.id))
    assert [a["kind"] for a in alerts] == ["offline"]
    site["sim_meter"].offline = False
    poll(site)
    assert site["ledger"].get_meter(site["meter"].id).online is True


def test_power_above_the_overload_limit_trips_and_alerts(site):
    ledger, meter = site["ledger"], site["meter"]
    ledger.command_meter(meter.id, action="sync_thresholds", actor={},
                         thresholds={"alarm1_fen": 0, "alarm2_fen": 0, "overload_w": 500})
    work(site)
    assert site["sim_meter"].thresholds == (0, 0, 500)
    site["sim_meter"].power_w = 750
    poll(site)
    assert site["sim_meter"].relay == 1
    site["platform"].catch_up()
    kinds = [a["kind"] for a in site["platform"].metering_queries.alerts(str(meter.id))]
    assert kinds == ["overload"]


def test_a_relay_the_meter_reports_otherwise_is_corrected(site):
    poll(site)
    site["sim_meter"].relay = 1  # someone tripped it by hand at the meter
    poll(site)
    assert site["sim_meter"].relay == 0
    site["platform"].catch_up()
    kinds = [a["kind"] for a in site["platform"].metering_queries.alerts(
        str(site["meter"].id))]
    assert kinds == ["relay_mismatch"]
