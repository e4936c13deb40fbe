"""Money decisions reach the relays: real Modbus over TCP to the simulator, on SQLite and
PostgreSQL. Time on the platform side is a frozen clock moved by the test; the meters'
energy is set on the simulator between polls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from bootstrap import Platform
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
    site = ledger.metering.create_site(name="Mall", actor={})
    gateways = [ledger.metering.register_gateway(site_id=site.id, name=f"GW{g.index}",
                                                 host="127.0.0.1", port=g.port,
                                                 protocol="modbus-tcp", actor={})
                for g in sim.simulation.gateways]
    tariff = ledger.metering.create_tariff(name="Flat 1 yuan", actor={},
                                           effective_from=clock.now - timedelta(days=1),
                                           spec=TariffSpec.from_dict({"kind": "flat",
                                                                      "price_1e4": 10_000}))
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    ledger.accounts.top_up(account, amount_fen=1000, channel="cash", actor={})
    sim_meter = sim.simulation.gateways[0].meters[1]
    meter = ledger.metering.register_meter(meter_no=sim_meter.meter_no, kind="electricity",
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
    return site["ledger"].accounts.get_account(site["account"]).balance_fen("electricity")


def test_arrears_trip_the_meter_and_a_top_up_closes_it(site):
    poll(site)  # the starting reading
    report = poll(site, kwh_used=6)
    assert [a["billing"] for a in report.answers] == ["charged"], report
    assert balance(site) == 400
    assert site["sim_meter"].relay == 0
    poll(site, kwh_used=5)
    assert balance(site) == -100
    assert site["sim_meter"].relay == 1  # read from the simulator's own registers
    state = site["ledger"].metering.get_meter(site["meter"].id)
    assert state.desired_relay == "open" and state.relay_pending is None
    # Consumption goes on being charged while tripped? No: a tripped meter uses nothing.
    poll(site)
    assert balance(site) == -100

    site["ledger"].accounts.top_up(site["account"], amount_fen=2000, channel="wechat", actor={})
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
    ledger.devices.command_meter(meter.id, action="keep_power", reason="hospital freezer", actor={})
    work(site)
    assert site["sim_meter"].keep_power == 1
    poll(site)
    poll(site, kwh_used=12)
    assert balance(site) == -200
    assert site["sim_meter"].relay == 0  # kept on despite arrears
    ledger.devices.command_meter(meter.id, action="release_keep_power", reason="paid later",
                                 actor={})
    work(site)
    assert site["sim_meter"].keep_power == 0 and site["sim_meter"].relay == 1


def test_keep_power_with_an_end_time_lapses_by_itself(site):
    from adapters.scheduler import lapse_keep_power

    ledger, meter, clock = site["ledger"], site["meter"], site["clock"]
    ledger.devices.command_meter(meter.id, action="keep_power", reason="festival",
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
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    assert command["status"] == "failed" and command["attempts"] == 1
    work(site)  # not due yet: the backoff holds it
    assert site["ledger"].devices.get_command(uuid.UUID(command["id"])).attempts == 1
    sim.run(sim.simulation.set_gateway_offline(0, False))
    site["clock"].advance(minutes=1)
    work(site)
    done = site["ledger"].devices.get_command(uuid.UUID(command["id"]))
    assert done.status == "acknowledged"
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1


def test_a_lost_acknowledgement_is_confirmed_by_reading_back(site):
    poll(site)
    site["sim_meter"].lose_acks = 1
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    work(site)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    assert command["status"] == "acknowledged"
    assert site["sim_meter"].relay == 1 and site["sim_meter"].accepted_frames == 1


def test_a_meter_that_stops_answering_goes_offline_and_comes_back(site):
    poll(site)
    site["sim_meter"].offline = True
    for _ in range(3):
        poll(site)
    meter = site["ledger"].metering.get_meter(site["meter"].id)
    assert meter.online is False
    site["platform"].catch_up()
    alerts = site["platform"].metering_queries.alerts(str(meter.id))
    assert [a["kind"] for a in alerts] == ["offline"]
    site["sim_meter"].offline = False
    poll(site)
    assert site["ledger"].metering.get_meter(site["meter"].id).online is True


def test_failed_command_attempts_count_toward_offline_as_polls_do(site):
    poll(site)
    site["sim_meter"].offline = True
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    for _ in range(3):  # three tries without an answer, and no poll in between
        work(site)
        site["clock"].advance(hours=1)
    command = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))[0]
    assert command["attempts"] == 3
    assert site["ledger"].metering.get_meter(site["meter"].id).online is False
    site["sim_meter"].offline = False
    poll(site)  # the first good answer brings it back
    assert site["ledger"].metering.get_meter(site["meter"].id).online is True


def test_power_above_the_overload_limit_trips_and_alerts(site):
    ledger, meter = site["ledger"], site["meter"]
    ledger.devices.command_meter(meter.id, action="sync_thresholds", actor={},
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


# -- the meter that answers is the meter meant ---------------------------------------------


def api(site):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import login

    platform = site["platform"]
    return TestClient(create_app(platform, background=False), headers=login(platform))


@pytest.mark.parametrize("action,target", [("trip", 1), ("close", 0)])
def test_another_meter_at_the_same_address_never_confirms_a_command(site, action, target):
    poll(site)
    gateway = site["sim"].simulation.gateways[0]
    ours, other = gateway.meters[1], gateway.meters[2]
    ours.relay, other.relay = 1 - target, target  # the other already looks done
    # The meters are swapped on the bus: address 1 now answers as the other meter.
    gateway.meters[1], gateway.meters[2] = other, ours
    ours.address, other.address = 2, 1
    client = api(site)
    meter_id = str(site["meter"].id)
    answer = client.post(f"/api/v1/meters/{meter_id}/commands",
                         json={"action": action, "reason": "safety work"})
    assert answer.status_code == 202, answer.text
    work(site)
    command = client.get(f"/api/v1/commands/{answer.json()['id']}").json()
    assert command["status"] == "failed", command
    assert command["last_error"] == (f"identity mismatch: address 1 answers as meter "
                                     f"{other.meter_no}, not {ours.meter_no}")
    assert [e["type"] for e in command["history"]][-1].endswith("Failed")
    assert other.accepted_frames == 0 and other.relay == target
    assert ours.relay == 1 - target
    state = client.get(f"/api/v1/meters/{meter_id}/state").json()
    assert state["relay_source"] == "reading"  # the other meter's relay is not ours


def test_the_state_shows_a_trip_as_soon_as_it_is_read_back(site):
    from api.render import iso

    client = api(site)
    meter_id = str(site["meter"].id)
    poll(site)
    polled_at = site["clock"].now
    before = client.get(f"/api/v1/meters/{meter_id}/state").json()
    assert before["relay"] == "closed"
    site["clock"].advance(minutes=1)
    answer = client.post(f"/api/v1/meters/{meter_id}/commands",
                         json={"action": "trip", "reason": "safety work"})
    work(site)
    assert client.get(f"/api/v1/commands/{answer.json()['id']}").json()["status"] == \
        "acknowledged"
    state = client.get(f"/api/v1/meters/{meter_id}/state").json()
    assert (state["relay"], state["relay_reported"]) == ("open", "open")  # not the poll's
    assert (before["relay_source"], before["relay_seen_at"]) == ("reading", iso(polled_at))
    assert state["relay_source"] == "command"
    assert state["relay_seen_by_command"] == answer.json()["id"]
    assert state["relay_seen_at"] == iso(site["clock"].now)
    # The next poll is newer again.
    poll(site)
    state = client.get(f"/api/v1/meters/{meter_id}/state").json()
    assert (state["relay"], state["relay_source"]) == ("open", "reading")


BANNER = b"SSH-2.0-OpenSSH_9.6p1 internal-db-host-7 PostgreSQL 16.2 secret\r\n"


@pytest.fixture
def not_a_gateway():
    """A TCP service that is no gateway: it answers every connection with a banner."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(BANNER * 4)
                try:
                    conn.recv(1024)
                except OSError:
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    yield server.getsockname()[1], closed_port
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_device_errors_are_short_classes_not_what_the_other_end_said(site, not_a_gateway):
    banner_port, closed_port = not_a_gateway
    ledger, client = site["ledger"], api(site)
    site_id = ledger.metering.get_gateway(site["meter"].gateway_id).site_id
    errors = {}
    for n, port in enumerate((banner_port, closed_port)):
        gateway = ledger.metering.register_gateway(site_id=site_id, name=f"probe{n}",
                                                   host="127.0.0.1",
                                                   port=port, protocol="modbus-tcp", actor={})
        meter = ledger.metering.register_meter(meter_no=f"00000000077{n}", kind="electricity",
                                               mode="monitoring", gateway_id=gateway.id, address=1,
                                               profile="ref-prepaid-v1", actor={})
        site["platform"].catch_up()
        answer = client.post(f"/api/v1/meters/{meter.id}/commands", json={"action": "read_now"})
        work(site)
        command = client.get(f"/api/v1/commands/{answer.json()['id']}")
        errors[port] = command.json()["last_error"]
        for text in ("SSH", "secret", "Errno", "127.0.0.1", str(port), "Connect call"):
            assert text not in command.text, (text, command.text)
    assert errors[closed_port] == "connection refused"
    assert errors[banner_port] in ("protocol error", "timeout"), errors
    # Polls store the same classes: the offline alert says no more than they do.
    for _ in range(3):
        poll(site)
    site["platform"].catch_up()
    from domain.meter import meter_id_for

    from domain.site import gateway_id_for

    # The gateway that answers (with nonsense) has a meter that does not: after 3 polls.
    # The one that refuses the connection takes its meters offline at once, with one
    # alert for the gateway and none for each meter.
    queries = site["platform"].metering_queries
    for meter_no, subject, start in (
            ("000000000770", meter_id_for("000000000770"), "no answer to 3 polls: "),
            ("000000000771", gateway_id_for(site_id, "probe1"), "gateway unreachable (")):
        reasons = [a["reason"] for a in queries.alerts(str(subject))]
        assert len(reasons) == 1 and reasons[0].startswith(start), reasons
        for text in ("SSH", "secret", "Errno", "127.0.0.1", "Connect call"):
            assert text not in reasons[0]
    assert queries.alerts(str(meter_id_for("000000000771"))) == []
