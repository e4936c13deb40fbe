"""The metering and period commands: each decision on a dict-backed loader (what it saves,
what it answers, each of its errors), then each carried out through ``Ledger.execute`` on
the in-memory event store. No database, no threads (group commit off), a frozen clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.account import Account, MoneyContext
from domain.errors import (
    AccountNotFound,
    AlreadyExists,
    InvalidRequest,
    MeterNotFound,
    SiteNotFound,
    TariffNotFound,
)
from domain.meter import Meter, Reading, meter_id_for
from domain.period import Period
from domain.site import Gateway, Site
from domain.tariff import Tariff, TariffSpec
from ledger.app import Ledger
from ledger.commands import (
    AddBuilding,
    AddTariffVersion,
    AddUnit,
    AssignmentContext,
    AssignTariff,
    BindMeter,
    ChangeContext,
    ChargeReading,
    ClosePeriod,
    CreateContext,
    CreateSite,
    CreateTariff,
    GatewayContext,
    MeterContext,
    PeriodContext,
    PeriodNotOver,
    ReadingContext,
    ReadingInput,
    RegisterGateway,
    RegisterMeter,
    ReplaceMeter,
    TakeReadings,
    UnbindMeter,
)
from ledger.commands.metering import MAX_READINGS_PER_BATCH, reading_problem
from ledger.gateway_hosts import GatewayHostPolicy, GatewayHostRefused
from ledger.metering import Ingested
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(hours=5)
STAFF = {"kind": "operator", "id": "staff"}
FLAT = TariffSpec.from_dict({"kind": "flat", "price_1e4": 10000})  # 1.0000 yuan a kWh
METER_NO = "000000000301"


def loader(*aggregates):
    """A loader over a dict, as the bus's loaders answer: the aggregate, or ``missing``."""
    by_id = {a.id: a for a in aggregates}

    def load(aggregate_id, kind, missing):
        found = by_id.get(aggregate_id)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        return found

    return load


class NoBookkeeping:
    """The devices side's poll bookkeeping: records what it was asked, adds nothing."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def poll_bookkeeping(self, meter, reported_relay, power_w, at, load):
        self.asked.append((meter.meter_no, reported_relay, power_w, at))
        return []


def site(**kwargs) -> Site:
    return Site.create(site_id=uuid.uuid4(), name="Mall", timezone="Asia/Shanghai",
                       poll_interval_s=300, actor=STAFF, **kwargs)


def tariff(utility: str = "electricity") -> Tariff:
    return Tariff.create(tariff_id=uuid.uuid4(), name="Flat", utility=utility,
                         effective_from=T0 - timedelta(days=1), spec=FLAT, actor=STAFF)


def account() -> Account:
    return Account.open(account_id=uuid.uuid4(), name="Noodle bar", site_id=None, unit=None,
                        contact=None, phone=None, area_m2=None, actor=STAFF,
                        idempotency_key=None, request_fingerprint="test")


def meter(at_site: Site, *, account_id=None, tariff_id=None, meter_no: str = METER_NO) -> Meter:
    meter = Meter.register(meter_no=meter_no, kind="electricity", mode="prepaid",
                           site_id=at_site.id, gateway_id=None, address=1,
                           profile="ref-prepaid-v1", ct_ratio=1, building=None, floor=None,
                           unit=None, actor=STAFF)
    if account_id is not None:
        meter.bind(account_id, STAFF)
    if tariff_id is not None:
        meter.assign_tariff(tariff_id, T0 - timedelta(days=1), STAFF)
    return meter


def gateway_command(site_id, **changes) -> RegisterGateway:
    return RegisterGateway(**{"site_id": site_id, "name": "GW", "host": "10.0.0.5",
                              "port": 502, "protocol": "modbus-tcp", **changes})


READINGS = ReadingContext(NOW, NoBookkeeping())


# -- sites and gateways -------------------------------------------------------------------


def test_create_site_saves_a_new_site_under_the_id_fixed_for_it():
    site_id = uuid.uuid4()
    saved, answer = CreateSite("Mall", poll_interval_s=600).decide(
        loader(), CreateContext(STAFF, site_id))
    assert saved == [answer]
    assert (answer.id, answer.name, answer.poll_interval_s) == (site_id, "Mall", 600)


def test_create_site_answers_the_site_a_repeated_key_created_and_saves_nothing():
    existing = site()
    saved, answer = CreateSite("Other").decide(loader(existing),
                                               CreateContext(STAFF, existing.id))
    assert (saved, answer) == ([], existing)


@pytest.mark.parametrize("command", [CreateSite(" "), CreateSite("Mall", timezone="Mars/Base"),
                                     CreateSite("Mall", poll_interval_s=59)])
def test_create_site_refuses_what_a_site_cannot_be(command):
    with pytest.raises(InvalidRequest):
        command.decide(loader(), CreateContext(STAFF, uuid.uuid4()))


def test_add_building_and_unit_change_the_site():
    mall = site()
    saved, answer = AddBuilding(mall.id, "A", "North wing").decide(loader(mall),
                                                                   ChangeContext(STAFF))
    assert saved == [answer] == [mall] and mall.buildings == {"A": "North wing"}
    saved, _ = AddUnit(mall.id, "A-101", "A", "1", "40.00").decide(loader(mall),
                                                                   ChangeContext(STAFF))
    assert saved == [mall]
    assert mall.units == {"A-101": {"building": "A", "floor": "1", "area_m2": "40.00"}}


def test_add_building_and_unit_refuse_duplicates_unknown_buildings_and_sites():
    mall = site()
    AddBuilding(mall.id, "A", "North wing").decide(loader(mall), ChangeContext(STAFF))
    with pytest.raises(InvalidRequest, match="building 'A' exists"):
        AddBuilding(mall.id, "A", "Again").decide(loader(mall), ChangeContext(STAFF))
    with pytest.raises(InvalidRequest, match="unknown building 'B'"):
        AddUnit(mall.id, "B-1", "B", "1").decide(loader(mall), ChangeContext(STAFF))
    with pytest.raises(SiteNotFound):
        AddBuilding(uuid.uuid4(), "A", "North").decide(loader(), ChangeContext(STAFF))
    with pytest.raises(SiteNotFound):
        AddUnit(uuid.uuid4(), "A-1", "A", "1").decide(loader(), ChangeContext(STAFF))


def test_register_gateway_saves_a_new_gateway_and_answers_the_same_one_again():
    mall = site()
    saved, gateway = gateway_command(mall.id).decide(loader(mall), GatewayContext(STAFF))
    assert saved == [gateway] and (gateway.site_id, gateway.host) == (mall.id, "10.0.0.5")
    saved, again = gateway_command(mall.id).decide(loader(mall, gateway), GatewayContext(STAFF))
    assert (saved, again) == ([], gateway)


def test_register_gateway_refuses_another_address_for_the_same_name():
    mall = site()
    _, gateway = gateway_command(mall.id).decide(loader(mall), GatewayContext(STAFF))
    with pytest.raises(AlreadyExists, match="another address"):
        gateway_command(mall.id, port=503).decide(loader(mall, gateway), GatewayContext(STAFF))


def test_register_gateway_raises_the_host_refusal_after_its_own_checks():
    mall = site()
    refused = GatewayHostRefused("gateway host '127.0.0.1' is a loopback address")
    with pytest.raises(GatewayHostRefused):
        gateway_command(mall.id).decide(loader(mall), GatewayContext(STAFF, refused))
    with pytest.raises(InvalidRequest, match="protocol"):  # the registration's checks first
        gateway_command(mall.id, protocol="x").decide(loader(mall),
                                                       GatewayContext(STAFF, refused))
    with pytest.raises(SiteNotFound):
        gateway_command(uuid.uuid4()).decide(loader(), GatewayContext(STAFF, refused))


def test_an_inbound_gateway_names_no_host_to_check():
    command = gateway_command(uuid.uuid4(), host=None, port=None, protocol="dlt645-tcp",
                              connect="inbound", registration_id="DTU-1")
    assert not command.names_a_host() and gateway_command(uuid.uuid4()).names_a_host()


# -- tariffs ------------------------------------------------------------------------------


def test_create_tariff_saves_a_new_one_or_answers_the_one_a_key_created():
    tariff_id = uuid.uuid4()
    command = CreateTariff("Flat", FLAT, T0)
    saved, created = command.decide(loader(), CreateContext(STAFF, tariff_id))
    assert saved == [created] and (created.id, created.utility) == (tariff_id, "electricity")
    assert command.decide(loader(created), CreateContext(STAFF, tariff_id)) == ([], created)
    with pytest.raises(InvalidRequest, match="utility"):
        CreateTariff("Flat", FLAT, T0, utility="gas").decide(
            loader(), CreateContext(STAFF, uuid.uuid4()))


def test_add_tariff_version_changes_the_tariff_from_a_later_instant_only():
    flat = tariff()
    saved, answer = AddTariffVersion(flat.id, T0, FLAT).decide(loader(flat),
                                                               ChangeContext(STAFF))
    assert saved == [answer] == [flat] and len(flat.versions) == 2
    with pytest.raises(InvalidRequest, match="after the latest"):
        AddTariffVersion(flat.id, T0, FLAT).decide(loader(flat), ChangeContext(STAFF))
    with pytest.raises(TariffNotFound):
        AddTariffVersion(uuid.uuid4(), T0, FLAT).decide(loader(), ChangeContext(STAFF))


# -- meters -------------------------------------------------------------------------------

def meter_command(**changes) -> RegisterMeter:
    return RegisterMeter(**{"meter_no": METER_NO, "kind": "electricity", "mode": "prepaid",
                            "gateway_id": None, "address": 1, "profile": "ref-prepaid-v1",
                            **changes})


def test_register_meter_saves_the_meter_bound_and_priced():
    mall, shop, flat = site(), account(), tariff()
    saved, registered = meter_command(site_id=mall.id, account_id=shop.id,
                                      tariff_id=flat.id).decide(
        loader(mall, shop, flat), MeterContext(STAFF, NOW))
    assert saved == [registered] and registered.id == meter_id_for(METER_NO)
    assert (registered.account_id, registered.tariff_ids()) == (shop.id, {flat.id})
    assert registered.tariff_at(T0 - timedelta(days=365)) == flat.id  # from its first reading
    _, from_then = meter_command(tariff_id=flat.id, tariff_from=T0).decide(
        loader(flat), MeterContext(STAFF, NOW))
    assert (from_then.tariff_at(T0), from_then.tariff_at(T0 - timedelta(seconds=1))) == (
        flat.id, None)


def test_register_meter_takes_its_site_from_the_gateway():
    mall = site()
    _, gateway = gateway_command(mall.id).decide(loader(mall), GatewayContext(STAFF))
    _, registered = meter_command(gateway_id=gateway.id).decide(loader(mall, gateway),
                                                                MeterContext(STAFF, NOW))
    assert registered.site_id == mall.id
    with pytest.raises(InvalidRequest, match="another site"):
        meter_command(gateway_id=gateway.id, site_id=uuid.uuid4()).decide(
            loader(mall, gateway), MeterContext(STAFF, NOW))


def test_register_meter_refuses_what_it_cannot_be_bound_to():
    mall, shop, water = site(), account(), tariff("water")
    closed = account()
    closed.close(MoneyContext(uuid.uuid4(), NOW, NOW, STAFF), settlement="forfeit",
                 channel="cash", reason=None)
    everything = loader(mall, shop, water, closed)
    ctx = MeterContext(STAFF, NOW)
    with pytest.raises(InvalidRequest, match="closed account"):
        meter_command(account_id=closed.id).decide(everything, ctx)
    with pytest.raises(InvalidRequest, match="a water tariff cannot price"):
        meter_command(tariff_id=water.id).decide(everything, ctx)
    with pytest.raises(AccountNotFound):
        meter_command(account_id=uuid.uuid4()).decide(everything, ctx)
    with pytest.raises(SiteNotFound):
        meter_command(site_id=uuid.uuid4()).decide(everything, ctx)
    with pytest.raises(AlreadyExists, match="registered already"):
        meter_command(site_id=mall.id).decide(loader(mall, meter(mall)), ctx)


def test_bind_and_unbind_change_the_meter():
    mall, shop = site(), account()
    unbound = meter(mall)
    saved, answer = BindMeter(unbound.id, shop.id).decide(loader(unbound, shop),
                                                          ChangeContext(STAFF))
    assert saved == [answer] == [unbound] and unbound.account_id == shop.id
    saved, _ = UnbindMeter(unbound.id).decide(loader(unbound), ChangeContext(STAFF))
    assert saved == [unbound] and unbound.account_id is None
    with pytest.raises(AccountNotFound):
        BindMeter(unbound.id, uuid.uuid4()).decide(loader(unbound), ChangeContext(STAFF))
    with pytest.raises(MeterNotFound):
        UnbindMeter(uuid.uuid4()).decide(loader(), ChangeContext(STAFF))


def test_assign_tariff_charges_the_readings_held_for_want_of_one():
    mall, shop, flat = site(), account(), tariff()
    held = meter(mall, account_id=shop.id)
    everything = loader(mall, shop, flat, held)
    for hours, total in ((0, 100_000), (1, 102_000)):
        ChargeReading(held.id, ReadingInput(METER_NO, T0 + timedelta(hours=hours), total)) \
            .decide(everything, READINGS)
    assert len(held.waiting) == 1  # the first reading starts the register, the next waits
    saved, answer = AssignTariff(held.id, flat.id, T0 - timedelta(days=1)).decide(
        everything, AssignmentContext(STAFF, READINGS))
    assert answer == {"billed": [T0 + timedelta(hours=1)]}
    assert {a.id for a in saved} == {held.id, shop.id} and not held.waiting
    assert shop.balance_fen("electricity") == -2000  # 20.00 kWh at 1.0000


def test_assign_tariff_refuses_a_tariff_of_another_utility():
    mall, water = site(), tariff("water")
    unpriced = meter(mall)
    with pytest.raises(InvalidRequest, match="a water tariff cannot price"):
        AssignTariff(unpriced.id, water.id, T0).decide(loader(mall, water, unpriced),
                                                       AssignmentContext(STAFF, READINGS))
    with pytest.raises(TariffNotFound):
        AssignTariff(unpriced.id, uuid.uuid4(), T0).decide(loader(mall, unpriced),
                                                           AssignmentContext(STAFF, READINGS))


def test_replace_meter_checks_what_needs_no_stored_state():
    final, initial = Reading(T0, 100_000, None), Reading(T0 - timedelta(minutes=1), 0, None)
    with pytest.raises(InvalidRequest):
        ReplaceMeter(uuid.uuid4(), "12", final, initial).check()
    with pytest.raises(InvalidRequest, match="cannot precede"):
        ReplaceMeter(uuid.uuid4(), "000000000302", final, initial).check_order()
    command = ReplaceMeter(uuid.uuid4(), "000000000302", final, Reading(T0, 0, None))
    command.check_order()
    assert command.final(METER_NO).items == [ReadingInput(METER_NO, T0, 100_000, None)]


def test_replace_meter_carries_account_and_tariff_over_to_the_new_meter():
    mall, shop, flat = site(), account(), tariff()
    old = meter(mall, account_id=shop.id, tariff_id=flat.id)
    command = ReplaceMeter(old.id, "000000000302", Reading(T0, 100_000, None),
                           Reading(T0, 5, None))
    saved, new = command.decide(loader(mall, old), MeterContext(STAFF, NOW))
    assert saved == [old, new] and old.status == "replaced"
    assert (new.meter_no, new.account_id, new.tariff_ids()) == ("000000000302", shop.id,
                                                                {flat.id})
    with pytest.raises(MeterNotFound):
        command.decide(loader(), MeterContext(STAFF, NOW))


# -- readings -----------------------------------------------------------------------------


def test_a_reading_starts_the_register_then_the_next_one_is_charged():
    mall, shop, flat = site(), account(), tariff()
    priced = meter(mall, account_id=shop.id, tariff_id=flat.id)
    everything = loader(mall, shop, flat, priced)
    first = ChargeReading(priced.id, ReadingInput(METER_NO, T0, 100_000))
    saved, answer = first.decide(everything, READINGS)
    assert saved == [priced] and (answer["billing"], answer["charge_fen"]) == ("started", 0)
    second = ChargeReading(priced.id, ReadingInput(METER_NO, T0 + timedelta(hours=1), 102_000))
    saved, answer = second.decide(everything, READINGS)
    assert saved == [priced, shop]
    assert (answer["billing"], answer["energy_wh"], answer["charge_fen"]) == ("charged", 20_000,
                                                                              2000)
    assert answer["transaction_id"] == str(second.transaction_id())
    assert shop.balance_fen("electricity") == -2000


def test_a_polled_reading_also_does_the_devices_bookkeeping():
    mall = site()
    polled = meter(mall)
    devices = NoBookkeeping()
    ChargeReading(polled.id, ReadingInput(METER_NO, T0, 1, relay="closed", power_w=300,
                                          from_poll=True)) \
        .decide(loader(mall, polled), ReadingContext(NOW, devices))
    assert devices.asked == [(METER_NO, "closed", 300, T0)]


def test_a_reading_of_an_unknown_meter_names_its_number():
    with pytest.raises(MeterNotFound, match=f"meter {METER_NO} does not exist"):
        ChargeReading(uuid.uuid4(), ReadingInput(METER_NO, T0, 1)).decide(loader(), READINGS)


@pytest.mark.parametrize("item, problem", [
    (ReadingInput("12", T0, 1), "meter_no"),
    (ReadingInput(METER_NO, T0.replace(tzinfo=None), 1), "read_at needs a time zone offset"),
    (ReadingInput(METER_NO, NOW + timedelta(minutes=6), 1), "read_at lies in the future"),
    (ReadingInput(METER_NO, T0, -1), "registers cannot be negative"),
    (ReadingInput(METER_NO, T0, 1, bands={"peak": -1}), "registers cannot be negative"),
])
def test_readings_refused_before_their_meter_is_looked_at(item, problem):
    assert problem in reading_problem(item, NOW)
    assert reading_problem(ReadingInput(METER_NO, NOW + timedelta(minutes=5), 1), NOW) is None


def test_a_batch_has_a_size_limit():
    TakeReadings([ReadingInput(METER_NO, T0, 1)] * MAX_READINGS_PER_BATCH).check()
    with pytest.raises(InvalidRequest, match=f"at most {MAX_READINGS_PER_BATCH}"):
        TakeReadings([ReadingInput(METER_NO, T0, 1)] * (MAX_READINGS_PER_BATCH + 1)).check()


# -- periods ------------------------------------------------------------------------------


def test_close_period_closes_a_month_once_and_only_when_it_is_over():
    command = ClosePeriod("2026-02", NOW - timedelta(days=30), NOW - timedelta(days=1))
    saved, period = command.decide(loader(), PeriodContext(STAFF, NOW))
    assert saved == [period] and (period.month, period.closed_at) == ("2026-02", NOW)
    assert command.decide(loader(period), PeriodContext(STAFF, NOW)) == ([], period)
    with pytest.raises(PeriodNotOver, match="2026-03 is not over yet"):
        ClosePeriod("2026-03", NOW, NOW + timedelta(days=30)).decide(
            loader(), PeriodContext(STAFF, NOW))


# -- carried out through the ledger -------------------------------------------------------


@pytest.fixture
def ledger():
    # No env: the library's in-memory recorder. One command per write: no committer thread.
    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1,
                    gateway_hosts=GatewayHostPolicy())
    yield ledger
    ledger.close()


def test_sites_gateways_and_tariffs_through_the_ledger(ledger):
    mall = ledger.execute(CreateSite("Mall", idempotency_key="s1"), STAFF)
    assert ledger.execute(CreateSite("Mall", idempotency_key="s1"), STAFF).id == mall.id
    ledger.execute(AddBuilding(mall.id, "A", "North wing"), STAFF)
    ledger.execute(AddUnit(mall.id, "A-101", "A", "1", "40.00"), STAFF)
    assert set(ledger.metering.get_site(mall.id).units) == {"A-101"}
    gateway = ledger.execute(gateway_command(mall.id), STAFF)
    assert isinstance(ledger.metering.get_gateway(gateway.id), Gateway)
    assert ledger.execute(gateway_command(mall.id), STAFF).id == gateway.id
    with pytest.raises(GatewayHostRefused):
        ledger.execute(gateway_command(mall.id, name="GW2", host="127.0.0.1"), STAFF)
    flat = ledger.execute(CreateTariff("Flat", FLAT, T0 - timedelta(days=1),
                                       idempotency_key="t1"), STAFF)
    assert ledger.execute(CreateTariff("Flat", FLAT, T0, idempotency_key="t1"),
                          STAFF).id == flat.id
    ledger.execute(AddTariffVersion(flat.id, T0, FLAT), STAFF)
    assert len(ledger.metering.get_tariff(flat.id).versions) == 2


def shop(ledger: Ledger) -> tuple[Site, uuid.UUID, Tariff]:
    mall = ledger.execute(CreateSite("Mall"), STAFF)
    account_id = uuid.UUID(ledger.accounts.open_account(name="Noodle bar", actor=STAFF)
                           .result["account_id"])
    ledger.accounts.top_up(account_id, amount_fen=10_000, channel="cash", actor=STAFF)
    flat = ledger.execute(CreateTariff("Flat", FLAT, T0 - timedelta(days=1)), STAFF)
    return mall, account_id, flat


def test_meters_and_readings_through_the_ledger(ledger):
    mall, account_id, flat = shop(ledger)
    registered = ledger.execute(meter_command(site_id=mall.id), STAFF)
    with pytest.raises(AlreadyExists):
        ledger.execute(meter_command(site_id=mall.id), STAFF)
    ledger.execute(BindMeter(registered.id, account_id), STAFF)
    ingested = ledger.execute(TakeReadings([ReadingInput(METER_NO, T0, 100_000),
                                            ReadingInput(METER_NO, T0 + timedelta(hours=1),
                                                         102_000),
                                            ReadingInput("bad", T0, 1)]), STAFF)
    assert isinstance(ingested, Ingested) and ingested.position
    assert [a["billing"] for a in ingested.answers] == ["started", "held", "rejected"]
    assigned = ledger.execute(AssignTariff(registered.id, flat.id, T0 - timedelta(days=1)),
                              STAFF)
    assert assigned.tariff_ids() == {flat.id} and not assigned.waiting
    assert ledger.accounts.get_account(account_id).balance_fen("electricity") == 10_000 - 2000
    unbound = ledger.execute(UnbindMeter(registered.id), STAFF)
    assert unbound.account_id is None


def test_a_replacement_through_the_ledger_charges_the_final_reading_first(ledger):
    mall, account_id, flat = shop(ledger)
    old = ledger.execute(meter_command(site_id=mall.id, account_id=account_id,
                                       tariff_id=flat.id, tariff_from=T0 - timedelta(days=1)),
                         STAFF)
    ledger.execute(TakeReadings([ReadingInput(METER_NO, T0, 100_000)]), STAFF)
    new = ledger.execute(ReplaceMeter(old.id, "000000000302",
                                      Reading(T0 + timedelta(hours=1), 101_000, None),
                                      Reading(T0 + timedelta(hours=1), 0, None)), STAFF)
    assert ledger.metering.get_meter(old.id).status == "replaced"
    assert (new.account_id, new.tariff_ids()) == (account_id, {flat.id})
    assert ledger.accounts.get_account(account_id).balance_fen("electricity") == 10_000 - 1000
    with pytest.raises(AlreadyExists):
        ledger.execute(ReplaceMeter(new.id, "000000000302", Reading(T0, 0, None),
                                    Reading(T0, 0, None)), STAFF)


def test_a_month_closed_through_the_ledger(ledger):
    command = ClosePeriod("2026-02", NOW - timedelta(days=30), NOW - timedelta(days=1))
    first = ledger.execute(command, STAFF)
    assert isinstance(first, Period) and ledger.execute(command, STAFF).closed_at == NOW
    assert ledger.periods.period_closed_at("2026-02") == NOW
    with pytest.raises(PeriodNotOver):
        ledger.execute(ClosePeriod("2026-03", NOW, NOW + timedelta(days=30)), STAFF)
