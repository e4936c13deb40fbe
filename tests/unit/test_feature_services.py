"""The metering, devices, cut-off and alerts services on the in-memory event store, each
built with its collaborators as the ledger builds them (or with a fake in their place):
no database, no threads (group commit off), a clock the tests set."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.alerts import Notification
from domain.cutoff import AccountCutoff, CutoffDecision, site_cutoff_id
from domain.errors import (
    AccountNotFound,
    InvalidRequest,
    MeterNotFound,
    SiteNotFound,
)
from domain.meter import Meter
from domain.tariff import TariffSpec
from ledger.accounts import AccountService
from ledger.alerts import AlertService
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.writer import Writer
from ledger.cutoff import CutoffService
from ledger.devices import CommandNotFound, DeviceService
from ledger.gateway_hosts import GatewayHostPolicy, GatewayHostRefused
from ledger.metering import MeteringService, ReadingInput
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)  # a Monday, noon in Shanghai
STAFF = {"kind": "operator", "id": "staff"}


class World:
    """The services wired as ``Ledger.__init__`` wires them, over one in-memory store."""

    def __init__(self, *, offline_after: int = 3, channels: tuple[str, ...] = ("log",),
                 gateway_hosts: GatewayHostPolicy = GatewayHostPolicy()) -> None:
        self.clock = FrozenClock(NOW)
        self.store = EventStore()  # no env: the library's in-memory recorder
        self.bus = CommandBus(self.store, Writer(self.store), max_commands=1)
        self.accounts = AccountService(self.store, self.bus, clock=self.clock)
        self.devices = DeviceService(self.store, self.bus, clock=self.clock,
                                     offline_after=offline_after)
        self.metering = MeteringService(self.store, self.bus, clock=self.clock,
                                        devices=self.devices, gateway_hosts=gateway_hosts)
        self.cutoff = CutoffService(self.store, self.bus, clock=self.clock,
                                    accounts=self.accounts, sites=self.metering,
                                    enforcement=self.devices)
        self.alerts = AlertService(self.store, self.bus, clock=self.clock, cutoff=self.cutoff,
                                   notify_channels=channels)

    def shop(self, balance_fen: int = 1000) -> tuple[uuid.UUID, Meter]:
        """A site, an account at ``balance_fen`` and its prepaid electricity meter."""
        site = self.metering.create_site(name="Mall", actor=STAFF)
        account = uuid.UUID(self.accounts.open_account(
            name="Noodle bar", site_id=str(site.id), phone="13800000000",
            actor=STAFF).result["account_id"])
        if balance_fen:
            self.accounts.adjust(account, delta_fen=balance_fen, reason="opening",
                                 actor=STAFF, force=True)
        meter = self.metering.register_meter(
            meter_no="000000000001", kind="electricity", mode="prepaid", gateway_id=None,
            address=1, profile="ref-prepaid-v1", actor=STAFF, account_id=account,
            site_id=site.id)
        return account, meter

    def spend(self, account: uuid.UUID, fen: int) -> str:
        """Take ``fen`` off the wallet; returns the transaction (the cause enforcement
        names)."""
        outcome = self.accounts.adjust(account, delta_fen=-fen, reason="usage",
                                       actor=STAFF, force=True)
        return outcome.result["transaction_id"]

    def enforce(self, meter: Meter, cause: str) -> int:
        account = self.metering.get_meter(meter.id).account_id
        balance = self.accounts.get_account(account).balance_fen("electricity")
        return self.devices.enforce_balances([(meter.id, "electricity", balance, cause)])

    def close(self) -> None:
        self.bus.close()
        self.store.close()


@pytest.fixture
def world():
    world = World()
    yield world
    world.close()


# -- devices ------------------------------------------------------------------------------


def test_a_command_to_an_unknown_meter_is_refused_and_stores_nothing(world):
    with pytest.raises(MeterNotFound):
        world.devices.command_meter(uuid.uuid4(), action="trip", actor=STAFF)
    assert world.store.recorder.max_notification_id() in (None, 0)


def test_a_manual_trip_orders_the_relay_open_once_per_key(world):
    _, meter = world.shop()
    first = world.devices.command_meter(meter.id, action="trip", actor=STAFF,
                                        idempotency_key="k1")
    again = world.devices.command_meter(meter.id, action="trip", actor=STAFF,
                                        idempotency_key="k1")
    assert (first["existing"], again) == (False, {**first, "existing": True})
    command = world.devices.get_command(uuid.UUID(first["command_id"]))
    assert (command.action, command.payload) == ("trip", {"relay": "open"})
    stored = world.metering.get_meter(meter.id)
    assert (stored.desired_relay, stored.relay_reason) == ("open", "manual")


def test_keep_power_until_a_past_instant_is_refused(world):
    _, meter = world.shop()
    with pytest.raises(InvalidRequest, match="future"):
        world.devices.command_meter(meter.id, action="keep_power", actor=STAFF,
                                    until=NOW - timedelta(minutes=1))
    assert not world.metering.get_meter(meter.id).keep_power


def test_an_unknown_command_is_a_typed_not_found(world):
    with pytest.raises(CommandNotFound):
        world.devices.get_command(uuid.uuid4())


def test_arrears_trip_the_meter_once_for_their_cause(world):
    account, meter = world.shop(balance_fen=1000)
    cause = world.spend(account, 1200)
    assert world.enforce(meter, cause) == 1
    stored = world.metering.get_meter(meter.id)
    assert (stored.desired_relay, stored.relay_reason) == ("open", "arrears")
    assert world.enforce(meter, cause) == 0  # the same money event never trips twice
    world.devices.command_meter(meter.id, action="close", actor=STAFF)  # staff close it
    assert world.enforce(meter, cause) == 0  # ... not even after a manual close
    assert world.metering.get_meter(meter.id).desired_relay == "closed"
    assert world.enforce(meter, world.spend(account, 10)) == 1  # new money event: trips
    world.accounts.adjust(account, delta_fen=510, reason="paid", actor=STAFF)
    assert world.enforce(meter, "paid") == 1  # above zero: restored
    assert world.metering.get_meter(meter.id).desired_relay == "closed"


def test_a_meter_goes_offline_after_as_many_failed_polls_as_it_was_given():
    world = World(offline_after=2)
    try:
        _, meter = world.shop()
        assert world.devices.record_poll_failures([(meter.id, "timeout")]) == 0
        assert world.metering.get_meter(meter.id).online
        assert world.devices.record_poll_failures([(meter.id, "timeout")]) == 1
        assert not world.metering.get_meter(meter.id).online
    finally:
        world.close()


# -- metering -----------------------------------------------------------------------------


class FakeBookkeeper:
    """The devices port metering is given: records what a poll's reading asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def poll_bookkeeping(self, meter, reported_relay, power_w, at, load):
        self.calls.append((meter.meter_no, reported_relay, power_w, at))
        return []


def test_a_polled_reading_asks_the_devices_port_for_its_bookkeeping_a_pushed_one_not():
    store = EventStore()
    bus = CommandBus(store, Writer(store), max_commands=1)
    devices = FakeBookkeeper()
    metering = MeteringService(store, bus, clock=FrozenClock(NOW), devices=devices)
    try:
        metering.register_meter(meter_no="000000000007", kind="electricity",
                                mode="monitoring", gateway_id=None, address=7,
                                profile="ref-prepaid-v1", actor=STAFF)
        answers = metering.ingest_readings([
            ReadingInput("000000000007", NOW - timedelta(hours=2), 1000),
            ReadingInput("000000000007", NOW - timedelta(hours=1), 2000, relay="closed",
                         power_w=800, from_poll=True)]).answers
        assert [a["status"] for a in answers] == ["accepted", "accepted"]
        assert devices.calls == [("000000000007", "closed", 800, NOW - timedelta(hours=1))]
    finally:
        bus.close()
        store.close()


def test_an_overload_seen_in_a_poll_trips_the_meter_through_devices(world):
    _, meter = world.shop()
    world.devices.command_meter(meter.id, action="sync_thresholds", actor=STAFF,
                                thresholds={"alarm1_fen": 5000, "alarm2_fen": 2000,
                                            "overload_w": 5000})
    answers = world.metering.ingest_readings([
        ReadingInput("000000000001", NOW - timedelta(minutes=5), 1000, relay="closed",
                     power_w=6000, from_poll=True)]).answers
    assert answers[0]["status"] == "accepted"
    stored = world.metering.get_meter(meter.id)
    assert (stored.desired_relay, stored.relay_reason) == ("open", "overload")


def test_a_reading_of_an_unknown_meter_is_rejected_in_its_answer(world):
    answers = world.metering.ingest_readings(
        [ReadingInput("000000000099", NOW - timedelta(minutes=5), 1000)]).answers
    assert answers[0]["status"] == "rejected"
    assert "000000000099" in answers[0]["reason"]


def test_a_gateway_on_loopback_is_refused_by_the_host_policy_given(world):
    site = world.metering.create_site(name="Mall", actor=STAFF)
    with pytest.raises(GatewayHostRefused):
        world.metering.register_gateway(site_id=site.id, name="GW", host="127.0.0.1",
                                        port=502, protocol="modbus-tcp", actor=STAFF)
    gateway = world.metering.register_gateway(site_id=site.id, name="GW", host="10.0.0.5",
                                              port=502, protocol="modbus-tcp", actor=STAFF)
    assert world.metering.get_gateway(gateway.id).host == "10.0.0.5"


def test_a_tariff_of_another_utility_cannot_price_a_meter(world):
    _, meter = world.shop()
    water = world.metering.create_tariff(
        name="Water", utility="water", effective_from=NOW - timedelta(days=1), actor=STAFF,
        spec=TariffSpec.from_dict({"kind": "flat", "price_1e4": 30000}))
    with pytest.raises(InvalidRequest, match="water tariff"):
        world.metering.assign_tariff(meter.id, tariff_id=water.id, effective_from=NOW,
                                     actor=STAFF)


# -- cut-off ------------------------------------------------------------------------------


def test_a_policy_for_an_unknown_site_is_refused(world):
    with pytest.raises(SiteNotFound):
        world.cutoff.set_site_cutoff_policy(uuid.uuid4(), {"grace_period_s": 3600}, STAFF)


def test_a_grace_period_plans_the_trip_and_a_shorter_one_redecides_it(world):
    account, meter = world.shop(balance_fen=1000)
    site_id = meter.site_id
    book = world.cutoff.set_site_cutoff_policy(site_id, {"grace_period_s": 3600}, STAFF)
    assert book.policy["grace_period_s"] == 3600
    cause = world.spend(account, 1200)
    assert world.enforce(meter, cause) == 0  # in grace: planned, not tripped
    plan = world.cutoff.site_cutoff(site_id).plan_of(meter.id)
    assert plan["due_at"] == (NOW + timedelta(hours=1)).isoformat()
    state = world.cutoff.meter_cutoff_state(world.metering.get_meter(meter.id))
    assert state["why"] == "grace" and state["next_change"]["relay"] == "open"
    assert world.cutoff.account_cutoff_state(account)["wallets"]["electricity"][
        "action"] == "grace"
    # The grace taken away: the planned trip is decided again, now.
    world.cutoff.set_site_cutoff_policy(site_id, {"grace_period_s": 0}, STAFF)
    stored = world.metering.get_meter(meter.id)
    assert (stored.desired_relay, stored.relay_reason) == ("open", "arrears")
    assert world.cutoff.site_cutoff(site_id).plan_of(meter.id) is None


def test_a_planned_trip_is_carried_out_when_it_falls_due(world):
    account, meter = world.shop(balance_fen=100)
    world.cutoff.set_site_cutoff_policy(meter.site_id, {"grace_period_s": 600}, STAFF)
    world.enforce(meter, world.spend(account, 300))
    assert world.cutoff.run_cutoff([str(meter.site_id)]) == 0
    world.clock.now = NOW + timedelta(minutes=10)
    assert world.cutoff.run_cutoff([str(meter.site_id)]) == 1
    assert world.metering.get_meter(meter.id).desired_relay == "open"


class FakeEnforcement:
    def __init__(self) -> None:
        self.decisions: list = []

    def enforce_balances(self, decisions):
        self.decisions += decisions
        return 0


def test_cutoff_hands_the_planned_trips_to_the_enforcement_it_was_given(world):
    account, meter = world.shop(balance_fen=100)
    world.cutoff.set_site_cutoff_policy(meter.site_id, {"grace_period_s": 600}, STAFF)
    cause = world.spend(account, 300)
    world.enforce(meter, cause)
    enforcement = FakeEnforcement()
    cutoff = CutoffService(world.store, world.bus, clock=world.clock,
                           accounts=world.accounts, sites=world.metering,
                           enforcement=enforcement)
    cutoff.add_holiday(meter.site_id, NOW.date(), "Spring", STAFF)
    assert enforcement.decisions == [(meter.id, "electricity", 0, cause)]
    assert world.metering.get_meter(meter.id).desired_relay == "closed"


def test_an_account_override_needs_the_account_and_known_settings(world):
    account, _ = world.shop()
    with pytest.raises(AccountNotFound):
        world.cutoff.set_account_cutoff_policy(uuid.uuid4(), {"credit_limit_fen": 500},
                                               STAFF)
    with pytest.raises(InvalidRequest, match="unknown policy settings"):
        world.cutoff.set_account_cutoff_policy(account, {"credit": 500}, STAFF)
    book = world.cutoff.set_account_cutoff_policy(account, {"credit_limit_fen": 500}, STAFF)
    assert book.overrides == {"credit_limit_fen": 500}


def test_a_site_without_settings_answers_the_default_book_unsaved(world):
    site = world.metering.create_site(name="Mall", actor=STAFF)
    book = world.cutoff.site_cutoff(site.id)
    assert book.policy["grace_period_s"] == 0 and book.plans == {}
    assert world.store.find(site_cutoff_id(site.id)) is None


# -- alerts -------------------------------------------------------------------------------


@pytest.mark.parametrize("alarm1, alarm2", [(1000, 2000), (500, 0), (0, 0)])
def test_thresholds_out_of_order_or_not_above_zero_are_refused(world, alarm1, alarm2):
    account, _ = world.shop()
    with pytest.raises(InvalidRequest, match="alarm1 must be at least alarm2"):
        world.alerts.set_alert_thresholds(account, "electricity", alarm1, alarm2, STAFF)


def test_thresholds_need_the_account(world):
    with pytest.raises(AccountNotFound):
        world.alerts.set_alert_thresholds(uuid.uuid4(), "electricity", 3000, 1000, STAFF)


def test_a_wallet_crossing_its_own_threshold_queues_one_notification_per_channel():
    world = World(channels=("log", "sms"))
    try:
        account, _ = world.shop()
        alerts = world.alerts.set_alert_thresholds(account, "electricity", 3000, 1000, STAFF)
        assert alerts.thresholds == {"alarm1": 3000, "alarm2": 1000}
        assert world.alerts.observe_balances([(account, "electricity", 4000, "t1", None)]) == 0
        assert world.alerts.observe_balances([(account, "electricity", 2500, "t2", 3)]) == 1
        assert world.alerts.observe_balances([(account, "electricity", 2400, "t3", 3)]) == 0
        queued = notifications(world)
        assert sorted(n.channel for n in queued) == ["log", "sms"]
        assert {n.recipient for n in queued} == {"13800000000"}
        assert {n.text for n in queued} == {
            "Noodle bar: the electricity balance is getting low (25.00 yuan, about 3 days "
            "left)"}
    finally:
        world.close()


def notifications(world: World) -> list:
    """The notifications queued, in the order they were stored."""
    ids = dict.fromkeys(n.originator_id
                        for n in world.store.recorder.select_notifications(1, 10_000))
    found = world.store.load_many(list(ids))
    return [found[i] for i in ids if isinstance(found[i], Notification)]


class FakeCutoff:
    """The cut-off port alerts are given: an account in grace until an instant."""

    def __init__(self, until: datetime) -> None:
        self.until = until

    def account_cutoff(self, account_id):
        book = AccountCutoff.start(account_id)
        book.begin_arrears("electricity", NOW, "t1")
        book.decided("electricity", CutoffDecision("grace", self.until, "in grace"))
        return book


def test_arrears_in_grace_are_told_with_the_end_of_the_grace_in_local_time(world):
    account, _ = world.shop()
    alerts = AlertService(world.store, world.bus, clock=world.clock,
                          cutoff=FakeCutoff(NOW + timedelta(hours=2)))
    # Below both alarms and in arrears at once: three alerts, one notification each.
    assert alerts.observe_balances([(account, "electricity", -50, "t1", None)]) == 3
    texts = [n.text for n in notifications(world) if n.level == "arrears"]
    # 06:00 UTC is 14:00 in the site's zone (the default, Asia/Shanghai)
    assert texts == ["Noodle bar: the electricity balance is used up: in grace until "
                     "2026-03-02 14:00 (UTC+0800) (-0.50 yuan)"]


def test_a_notification_sent_is_recorded_once(world):
    account, _ = world.shop()
    world.alerts.observe_balances([(account, "electricity", 100, "t1", None)])
    notification = notifications(world)[0]
    assert world.alerts.record_notification(notification.id, True).status == "sent"
    again = world.alerts.record_notification(notification.id, False, "late")
    assert again.status == "sent"


def test_the_services_keep_no_state_of_their_own_on_the_class():
    for service in (MeteringService, DeviceService, CutoffService, AlertService):
        mutable = {name for name, value in vars(service).items()
                   if isinstance(value, (dict, list, set))}
        assert mutable == set(), service.__name__


def test_the_ledger_answers_for_the_services_it_built():
    from ledger.app import Ledger

    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1, offline_after=5,
                    alert_thresholds_fen={"alarm1": 9000, "alarm2": 4000})
    try:
        assert ledger.metering.devices is ledger.devices
        assert ledger.cutoff.enforcement is ledger.devices
        assert ledger.cutoff.sites is ledger.metering
        assert ledger.cutoff.accounts is ledger.accounts
        assert ledger.alerts.cutoff is ledger.cutoff
        assert ledger.devices.offline_after == 5
        assert ledger.alerts.thresholds_fen == {"alarm1": 9000, "alarm2": 4000}
        site = ledger.metering.create_site(name="Mall", actor=STAFF)
        assert ledger.metering.get_site(site.id).name == "Mall"
        assert isinstance(ledger.cutoff.site_cutoff(site.id).policy, dict)
        with pytest.raises(MeterNotFound):
            ledger.devices.command_meter(uuid.uuid4(), action="trip", actor=STAFF)
    finally:
        ledger.close()
