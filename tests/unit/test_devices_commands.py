"""The device commands on the in-memory event store: no database, no threads (group
commit off), a clock the tests set. Each command's decision (what it would save, what it
answers) on the stored state, its errors, and the command carried out through
``Ledger.execute``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.device_command import DeviceCommand, command_id_for
from domain.errors import GatewayNotFound, InvalidRequest, MeterNotFound
from domain.meter import Meter
from domain.site import Gateway
from domain.tariff import TariffSpec
from ledger.app import Ledger
from ledger.commands import (
    CommandNotFound,
    DeviceContext,
    EnforceBalances,
    IssueContext,
    IssueDeviceCommand,
    KeepPower,
    LapseKeepPower,
    RecordCommandOutcome,
    RecordGatewayReachable,
    RecordGatewayUnreachable,
    RecordPollFailures,
    RecordPollSuccesses,
    command_from_approval,
)
from ledger.devices import DEVICE_RUNTIME
from ledger.relays import ENFORCEMENT
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}


@pytest.fixture
def ledger():
    # No env: the library's in-memory recorder. One command per write: no committer thread.
    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1, offline_after=2)
    yield ledger
    ledger.close()


def shop(ledger: Ledger, balance_fen: int = 1000, gateway: bool = False) -> Meter:
    """A site, an account at ``balance_fen`` and its prepaid electricity meter."""
    site = ledger.metering.create_site(name="Mall", actor=STAFF)
    account = uuid.UUID(ledger.accounts.open_account(name="Noodle bar", site_id=str(site.id),
                                            actor=STAFF).result["account_id"])
    if balance_fen:
        ledger.accounts.adjust(account, delta_fen=balance_fen, reason="opening", actor=STAFF,
                      force=True)
    gateway_id = None
    if gateway:
        gateway_id = ledger.metering.register_gateway(site_id=site.id, name="GW", host="10.0.0.5",
                                             port=502, protocol="modbus-tcp", actor=STAFF).id
    return ledger.metering.register_meter(meter_no="000000000001", kind="electricity",
                                 mode="prepaid", gateway_id=gateway_id, address=1,
                                 profile="ref-prepaid-v1", actor=STAFF, account_id=account,
                                 site_id=site.id)


def issue_ctx(meter_id: uuid.UUID, action: str, key: str = "k1") -> IssueContext:
    cause = f"request:{key}"
    return IssueContext(NOW, STAFF, cause, command_id_for(meter_id, action, cause))


def ctx(offline_after: int = 2) -> DeviceContext:
    return DeviceContext(NOW, offline_after)


def spend(ledger: Ledger, meter: Meter, fen: int) -> str:
    outcome = ledger.accounts.adjust(meter.account_id, delta_fen=-fen, reason="usage", actor=STAFF,
                            force=True)
    return outcome.result["transaction_id"]


# -- issuing a device command ---------------------------------------------------------


def test_a_trip_decides_the_relay_open_and_a_command_for_it(ledger):
    meter = shop(ledger)
    context = issue_ctx(meter.id, "trip")
    saved, answer = IssueDeviceCommand(meter.id, "trip").decide(ledger.load, context)
    stored_meter, command = saved
    assert answer == {"command_id": str(context.command_id), "existing": False}
    assert (stored_meter.desired_relay, stored_meter.relay_reason) == ("open", "manual")
    assert (command.id, command.action, command.payload) == (
        context.command_id, "trip", {"relay": "open"})


def test_a_command_issued_already_is_answered_as_existing_and_saves_nothing(ledger):
    meter = shop(ledger)
    first = ledger.execute(IssueDeviceCommand(meter.id, "trip", idempotency_key="k1"), STAFF)
    saved, answer = IssueDeviceCommand(meter.id, "trip", idempotency_key="k1").decide(
        ledger.load, issue_ctx(meter.id, "trip"))
    assert (saved, answer) == ([], {**first, "existing": True})


def test_issuing_to_an_unknown_meter_is_refused(ledger):
    meter_id = uuid.uuid4()
    with pytest.raises(MeterNotFound):
        IssueDeviceCommand(meter_id, "trip").decide(ledger.load, issue_ctx(meter_id, "trip"))


def test_keep_power_until_a_past_instant_is_refused_before_anything_is_loaded():
    command = IssueDeviceCommand(uuid.uuid4(), "keep_power", reason="party",
                                 until=NOW - timedelta(minutes=1))
    with pytest.raises(InvalidRequest, match="until must lie in the future"):
        command.check(NOW)
    IssueDeviceCommand(uuid.uuid4(), "keep_power", until=NOW + timedelta(hours=1)).check(NOW)


def test_releasing_keep_power_that_is_not_on_is_refused(ledger):
    meter = shop(ledger)
    with pytest.raises(InvalidRequest, match="has no keep-power"):
        IssueDeviceCommand(meter.id, "release_keep_power").decide(
            ledger.load, issue_ctx(meter.id, "release_keep_power"))


def test_restoring_prepaid_lets_the_balance_decide_the_relay(ledger):
    meter = shop(ledger, balance_fen=0)
    spend(ledger, meter, 100)
    saved, _ = IssueDeviceCommand(meter.id, "restore_prepaid").decide(
        ledger.load, issue_ctx(meter.id, "restore_prepaid"))
    assert saved[1].payload == {"keep_power": False, "relay": "open"}
    assert (saved[0].desired_relay, saved[0].relay_reason) == ("open", "arrears")


def test_syncing_the_tariff_needs_one(ledger):
    meter = shop(ledger)
    with pytest.raises(InvalidRequest, match="no tariff to send"):
        IssueDeviceCommand(meter.id, "sync_tariff").decide(
            ledger.load, issue_ctx(meter.id, "sync_tariff"))
    tariff = ledger.metering.create_tariff(name="Flat", effective_from=NOW - timedelta(days=1),
                                  actor=STAFF,
                                  spec=TariffSpec.from_dict({"kind": "flat",
                                                             "price_1e4": 12000}))
    ledger.metering.assign_tariff(meter.id, tariff_id=tariff.id,
                                  effective_from=NOW - timedelta(hours=1),
                         actor=STAFF)
    saved, _ = IssueDeviceCommand(meter.id, "sync_tariff").decide(
        ledger.load, issue_ctx(meter.id, "sync_tariff"))
    assert saved[1].payload == {"prices_1e4": [12000] * 4}


def test_syncing_thresholds_needs_thresholds(ledger):
    meter = shop(ledger)
    with pytest.raises(InvalidRequest, match="no thresholds"):
        IssueDeviceCommand(meter.id, "sync_thresholds").decide(
            ledger.load, issue_ctx(meter.id, "sync_thresholds"))
    given = {"alarm1_fen": 5000, "alarm2_fen": 2000, "overload_w": 5000}
    saved, _ = IssueDeviceCommand(meter.id, "sync_thresholds", thresholds=given).decide(
        ledger.load, issue_ctx(meter.id, "sync_thresholds"))
    assert saved[1].payload == given


def test_a_device_command_carried_out_by_the_ledger(ledger):
    meter = shop(ledger)
    answer = ledger.execute(IssueDeviceCommand(meter.id, "trip", idempotency_key="k1"), STAFF)
    assert answer["existing"] is False
    command = ledger.devices.get_command(uuid.UUID(answer["command_id"]))
    assert (command.action, command.actor) == ("trip", STAFF)
    assert ledger.metering.get_meter(meter.id).desired_relay == "open"
    with pytest.raises(InvalidRequest, match="future"):
        ledger.execute(IssueDeviceCommand(meter.id, "keep_power", reason="x",
                                          until=NOW - timedelta(seconds=1)), STAFF)


def test_keep_power_from_an_approval_is_carried_out_as_the_device_command(ledger):
    meter = shop(ledger)
    until = NOW + timedelta(days=1)
    stored = KeepPower(meter.id, reason="festival", until=until, idempotency_key="a1")
    assert stored.params() == {"reason": "festival", "until": until.isoformat()}
    again = command_from_approval("keep_power", stored.target(), stored.params(), "a1")
    assert again.as_device_command() == IssueDeviceCommand(
        meter.id, "keep_power", reason="festival", until=until, idempotency_key="a1")
    outcome = ledger.execute(again, STAFF)
    assert outcome.result["existing"] is False
    kept = ledger.metering.get_meter(meter.id)
    assert (kept.keep_power, kept.keep_power_until) == (True, until)


# -- what the device runtime reports ---------------------------------------------------


def issued_trip(ledger: Ledger, meter: Meter) -> uuid.UUID:
    answer = ledger.execute(IssueDeviceCommand(meter.id, "trip"), STAFF)
    return uuid.UUID(answer["command_id"])


def test_an_acknowledged_trip_confirms_the_relay(ledger):
    meter = shop(ledger)
    command_id = issued_trip(ledger, meter)
    saved, answer = RecordCommandOutcome(command_id, "acknowledged",
                                         observed={"relay": "open"}).decide(ledger.load, ctx())
    command, stored_meter = saved
    assert answer == {}
    assert command.status == "acknowledged"
    assert (stored_meter.relay_pending, stored_meter.relay_seen["relay"]) == (None, "open")


def test_a_report_on_a_finished_command_saves_nothing(ledger):
    meter = shop(ledger)
    command_id = issued_trip(ledger, meter)
    ledger.execute(RecordCommandOutcome(command_id, "acknowledged",
                                        observed={"relay": "open"}), DEVICE_RUNTIME)
    assert RecordCommandOutcome(command_id, "failed", error="late").decide(
        ledger.load, ctx()) == ([], {})


def test_a_report_on_an_unknown_command_is_refused(ledger):
    with pytest.raises(CommandNotFound):
        RecordCommandOutcome(uuid.uuid4(), "sent").decide(ledger.load, ctx())


def test_a_report_carried_out_by_the_ledger_answers_the_command(ledger):
    meter = shop(ledger)
    command_id = issued_trip(ledger, meter)
    command = ledger.execute(RecordCommandOutcome(command_id, "sent", counter=7),
                             DEVICE_RUNTIME)
    assert isinstance(command, DeviceCommand)
    assert (command.id, command.status) == (command_id, "sent")


def test_a_failed_poll_counts_and_the_last_one_allowed_takes_the_meter_offline(ledger):
    meter = shop(ledger)
    command = RecordPollFailures(((meter.id, "timeout"),))
    saved, answer = command.decide_one(ledger.load, ctx(offline_after=1), meter.id, "timeout")
    assert (answer, saved[0].online) == ({"went_offline": True}, False)
    assert ledger.execute(command, DEVICE_RUNTIME) == 0
    assert ledger.execute(command, DEVICE_RUNTIME) == 1
    assert not ledger.metering.get_meter(meter.id).online
    with pytest.raises(MeterNotFound):
        command.decide_one(ledger.load, ctx(), uuid.uuid4(), "timeout")
    assert ledger.execute(RecordPollFailures(((uuid.uuid4(), "timeout"),)),
                          DEVICE_RUNTIME) == 0  # an unknown meter refuses only itself


def test_a_meter_that_answers_again_comes_back_and_one_online_saves_nothing(ledger):
    meter = shop(ledger)
    command = RecordPollSuccesses((meter.id,))
    assert command.decide_one(ledger.load, ctx(), meter.id) == ([], {})
    ledger.execute(RecordPollFailures(((meter.id, "t"), (meter.id, "t"))), DEVICE_RUNTIME)
    assert not ledger.metering.get_meter(meter.id).online
    saved, _ = command.decide_one(ledger.load, ctx(), meter.id)
    assert saved[0].online
    assert ledger.execute(command, DEVICE_RUNTIME) is None
    assert ledger.metering.get_meter(meter.id).online
    with pytest.raises(MeterNotFound):
        command.decide_one(ledger.load, ctx(), uuid.uuid4())


def test_an_unreachable_gateway_takes_its_meters_offline_with_one_alert(ledger):
    meter = shop(ledger, gateway=True)
    command = RecordGatewayUnreachable(meter.gateway_id, (meter.id,), "refused")
    saved, answer = command.decide(ledger.load, ctx())
    assert answer == {"went_offline": 1}
    assert [type(a) for a in saved] == [Gateway, Meter]
    assert ledger.execute(command, DEVICE_RUNTIME) == 1
    assert ledger.execute(command, DEVICE_RUNTIME) == 0  # not news any more
    assert not ledger.metering.get_gateway(meter.gateway_id).reachable
    with pytest.raises(GatewayNotFound):
        RecordGatewayUnreachable(uuid.uuid4(), (), "refused").decide(ledger.load, ctx())


def test_a_gateway_reached_again_is_news_once(ledger):
    meter = shop(ledger, gateway=True)
    command = RecordGatewayReachable(meter.gateway_id)
    assert command.decide(ledger.load, ctx()) == ([], {})
    ledger.execute(RecordGatewayUnreachable(meter.gateway_id, (), "refused"), DEVICE_RUNTIME)
    saved, _ = command.decide(ledger.load, ctx())
    assert saved[0].reachable
    assert ledger.execute(command, DEVICE_RUNTIME) is None
    assert ledger.metering.get_gateway(meter.gateway_id).reachable
    with pytest.raises(GatewayNotFound):
        RecordGatewayReachable(uuid.uuid4()).decide(ledger.load, ctx())


# -- enforcement -----------------------------------------------------------------------


def test_arrears_trip_the_meter_once_for_their_cause(ledger):
    meter = shop(ledger, balance_fen=100)
    cause = spend(ledger, meter, 300)
    item = (meter.id, "electricity", -200, cause)
    command = EnforceBalances((item,))
    saved, answer = command.decide_one(ledger.load, ctx(), *item)
    assert answer == {"issued": 1}
    assert [c.payload for c in saved if isinstance(c, DeviceCommand)] == [{"relay": "open"}]
    assert ledger.execute(command, ENFORCEMENT) == 1
    assert ledger.execute(command, ENFORCEMENT) == 0  # the same money event never twice
    assert ledger.metering.get_meter(meter.id).relay_reason == "arrears"


def test_enforcing_an_unknown_or_unenforced_meter_saves_nothing(ledger):
    assert EnforceBalances(()).decide_one(ledger.load, ctx(), uuid.uuid4(), "electricity",
                                          -1, "c") == ([], {})
    meter = shop(ledger)
    assert EnforceBalances(()).decide_one(ledger.load, ctx(), meter.id, "water", -1,
                                          "c") == ([], {})


def test_keep_power_that_ended_is_released_and_the_balance_decides(ledger):
    meter = shop(ledger, balance_fen=0)
    until = NOW + timedelta(hours=1)
    ledger.execute(KeepPower(meter.id, reason="party", until=until), STAFF)
    spend(ledger, meter, 100)
    command = LapseKeepPower((meter.id,))
    assert command.decide_one(ledger.load, ctx(), meter.id) == ([], {})  # not yet
    later = DeviceContext(until, 2)
    saved, answer = command.decide_one(ledger.load, later, meter.id)
    assert answer == {"issued": 1}
    assert saved[1].payload == {"keep_power": False, "relay": "open"}
    ledger.clock.now = until
    assert ledger.execute(command, ENFORCEMENT) == 1
    lapsed = ledger.metering.get_meter(meter.id)
    assert (lapsed.keep_power, lapsed.desired_relay) == (False, "open")
    with pytest.raises(MeterNotFound):
        command.decide_one(ledger.load, later, uuid.uuid4())
