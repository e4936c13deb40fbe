"""The property commands' decisions on the in-memory event store: what each saves, what it
answers and each of its errors; then each carried out through ``Ledger.execute``. No
database, no threads (group commit off), a frozen clock, fakes for the read-side ports."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from domain.account import Account
from domain.errors import (
    AccountNotFound,
    InvalidRequest,
    MeterNotFound,
    NotFound,
    SiteNotFound,
)
from domain.meter import Meter
from domain.property import CommonAreaPool, PropertyFeeSchedule, fee_schedule_id_for
from domain.site import Site
from domain.tariff import COST_UNITS_PER_FEN
from domain.transaction import Transaction, transaction_id_for
from ledger.app import Ledger
from ledger.commands import (
    AllocatePool,
    AllocationContext,
    ChangePoolRule,
    ChargePropertyFee,
    CreatePool,
    FeeScheduleContext,
    PoolContext,
    PoolNotFound,
    RunPropertyFees,
    SetFeeSchedule,
    UnpricedEnergy,
)
from ledger.core.store import EventStore

NOW = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}
POOL_ID = uuid.UUID(int=7)


def open_account(store: EventStore, name: str, area_m2: str | None) -> uuid.UUID:
    account = Account.open(account_id=uuid.uuid4(), name=name, site_id=None, unit=None,
                           contact=None, phone=None, area_m2=area_m2, actor=STAFF,
                           idempotency_key=None, request_fingerprint="")
    store.save(account)
    return account.id


@pytest.fixture
def world():
    """A site, a monitoring and a billed meter, two shops (one without an area)."""
    store = EventStore()  # no env: the library's in-memory recorder
    site = Site.create(site_id=uuid.uuid4(), name="Mall", timezone="Asia/Shanghai",
                       poll_interval_s=900, actor=STAFF)
    meters = [Meter.register(meter_no=f"00000000050{i}", kind="electricity", mode=mode,
                             site_id=site.id, gateway_id=None, address=i + 1,
                             profile="ref-prepaid-v1", ct_ratio=1, actor=STAFF)
              for i, mode in enumerate(("monitoring", "prepaid"))]
    store.save(site, *meters)
    shops = [open_account(store, "Tea", "30"), open_account(store, "Rice", None)]
    yield SimpleNamespace(store=store, load=store.load, site=site, common=meters[0],
                          billed=meters[1], shops=shops)
    store.close()


def create(world, *, method="ratio", shares=None, meters=None, period="month") -> CreatePool:
    shares = shares or ({"account_id": str(world.shops[0]), "weight": 2},
                        {"account_id": str(world.shops[1]), "weight": 1})
    return CreatePool(name="Lobby", site_id=world.site.id,
                      meter_ids=tuple(meters or (world.common.id,)), method=method,
                      shares=tuple(shares), period=period, idempotency_key="p1")


def saved_pool(world, **kwargs) -> CommonAreaPool:
    new, pool = create(world, **kwargs).decide(world.load, PoolContext(STAFF, POOL_ID))
    world.store.save(*new)
    return pool


# -- pools --------------------------------------------------------------------------------


def test_a_new_pool_is_decided_under_the_id_it_was_given(world):
    new, pool = create(world).decide(world.load, PoolContext(STAFF, POOL_ID))
    assert new == [pool] and pool.id == POOL_ID
    assert (pool.meter_ids, pool.period) == ([str(world.common.id)], "month")
    assert pool.rule["shares"][0] == {"account_id": str(world.shops[0]), "weight": 2}


def test_a_pool_made_under_the_id_before_is_answered_and_nothing_is_saved(world):
    first = saved_pool(world)
    again, pool = create(world).decide(world.load, PoolContext(STAFF, POOL_ID))
    assert (again, pool.id, pool.version) == ([], first.id, first.version)


@pytest.mark.parametrize("change, error, says", [
    (lambda w: dict(meters=[w.billed.id]), InvalidRequest, "monitoring meters"),
    (lambda w: dict(meters=[uuid.uuid4()]), MeterNotFound, "does not exist"),
    (lambda w: dict(shares=[{"account_id": str(uuid.uuid4()), "weight": 1}]),
     AccountNotFound, "does not exist"),
    (lambda w: dict(method="area", shares=[{"account_id": str(s)} for s in w.shops]),
     InvalidRequest, "shared by area needs area_m2"),  # the second shop has none
])
def test_a_pool_is_refused_what_it_cannot_share(world, change, error, says):
    with pytest.raises(error, match=says):
        create(world, **change(world)).decide(world.load, PoolContext(STAFF, POOL_ID))


def test_a_pool_needs_a_site_that_exists(world):
    command = CreatePool(name="Lobby", site_id=uuid.uuid4(), meter_ids=(world.common.id,),
                         method="ratio", shares=({"account_id": str(world.shops[0]),
                                                  "weight": 1},))
    with pytest.raises(SiteNotFound):
        command.decide(world.load, PoolContext(STAFF, POOL_ID))


def test_a_rule_change_is_the_pools_next_version(world):
    saved_pool(world)
    command = ChangePoolRule(POOL_ID, method="area",
                             shares=({"account_id": str(world.shops[0])},))
    changed, answer = command.decide(world.load, PoolContext(STAFF))
    assert (len(changed), answer) == (1, {})
    rule = changed[0].rule
    assert (rule["version"], rule["method"], rule["shares"]) == (
        2, "area", [{"account_id": str(world.shops[0])}])


@pytest.mark.parametrize("pool_id, shares, error", [
    (uuid.uuid4(), lambda w: ({"account_id": str(w.shops[0]), "weight": 1},), PoolNotFound),
    (POOL_ID, lambda w: ({"account_id": str(uuid.uuid4()), "weight": 1},), AccountNotFound),
    (POOL_ID, lambda w: ({"account_id": str(w.shops[1])},), InvalidRequest),  # no area
])
def test_a_rule_change_is_refused_for_what_does_not_exist(world, pool_id, shares, error):
    saved_pool(world)
    method = "ratio" if "weight" in shares(world)[0] else "area"
    with pytest.raises(error):
        ChangePoolRule(pool_id, method=method, shares=shares(world)).decide(
            world.load, PoolContext(STAFF))


def allocation(energy_wh=120_000, total_fen=1001, unpriced=()) -> AllocationContext:
    return AllocationContext(NOW, energy_wh, total_fen, unpriced)


def test_an_allocation_charges_each_share_to_the_fen_with_keys_from_the_period(world):
    saved_pool(world)
    changed, answer = AllocatePool(POOL_ID, "2026-03").decide(world.load, allocation())
    assert [s["amount_fen"] for s in answer["shares"]] == [667, 334]  # 2:1 of 10.01
    assert (answer["total_fen"], answer["energy_wh"]) == (1001, 120_000)
    pool, *accounts = changed
    assert pool.allocations["2026-03"] == answer
    assert [a.id for a in accounts] == world.shops
    key = f"pool:{POOL_ID}:2026-03:{world.shops[0]}"
    assert accounts[0].balance_fen("electricity") == -667
    assert transaction_id_for(key) in {e.transaction_id for e in accounts[0].pending_events
                                       if hasattr(e, "transaction_id")}


def test_a_period_allocated_before_answers_the_same_and_saves_nothing(world):
    saved_pool(world)
    changed, first = AllocatePool(POOL_ID, "2026-03").decide(world.load, allocation())
    world.store.save(*changed)
    # Whatever the figures now, even energy without a price: the stored allocation.
    again = AllocatePool(POOL_ID, "2026-03").decide(
        world.load, allocation(total_fen=5, unpriced=((world.common, 10),)))
    assert again == ([], first)


def test_energy_without_a_price_refuses_the_allocation_with_the_meters(world):
    saved_pool(world)
    with pytest.raises(UnpricedEnergy) as refused:
        AllocatePool(POOL_ID, "2026-03").decide(
            world.load, allocation(0, 0, unpriced=((world.common, 1234),)))
    assert refused.value.meters == [(world.common, 1234)]
    assert "meter 000000000500: 1.23 kWh" in refused.value.detail
    assert refused.value.code == "unpriced-energy"


@pytest.mark.parametrize("pool_period, period, says", [
    ("month", "2026-03-01", "YYYY-MM"), ("day", "2026-03", "YYYY-MM-DD"),
    ("month", "March", "YYYY-MM")])
def test_an_allocation_for_a_period_the_pool_does_not_use_is_refused(world, pool_period,
                                                                     period, says):
    saved_pool(world, period=pool_period)
    with pytest.raises(InvalidRequest, match=f"per {pool_period}: period must be {says}"):
        AllocatePool(POOL_ID, period).decide(world.load, allocation())


@pytest.mark.parametrize("pool_period, period, days", [
    ("month", "2026-02", ("2026-02-01", "2026-02-31")),
    ("day", "2026-02-03", ("2026-02-03", "2026-02-03"))])
def test_the_days_an_allocation_asks_the_cost_of(world, pool_period, period, days):
    pool = saved_pool(world, period=pool_period)
    assert AllocatePool(POOL_ID, period).days(pool) == days


def test_an_allocation_of_an_unknown_pool_is_refused(world):
    with pytest.raises(PoolNotFound):
        AllocatePool(uuid.uuid4(), "2026-03").decide(world.load, allocation())


# -- property fees ------------------------------------------------------------------------


def test_a_first_fee_schedule_is_new_and_a_second_changes_it(world):
    tea = world.shops[0]
    new, schedule = SetFeeSchedule(tea, monthly_fen=None, per_m2_fen=500).decide(
        world.load, FeeScheduleContext(STAFF))
    assert new == [schedule] and schedule.id == fee_schedule_id_for(tea)
    assert schedule.amount_fen("30") == 15_000 and schedule.version == 1
    world.store.save(schedule)
    changed, again = SetFeeSchedule(tea, monthly_fen=2500, per_m2_fen=None,
                                    day_of_month=5).decide(world.load, FeeScheduleContext(STAFF))
    assert changed == [again] and again.version == 2
    assert (again.monthly_fen, again.day_of_month) == (2500, 5)


def test_a_fee_schedule_needs_the_account_and_per_m2_its_area(world):
    with pytest.raises(AccountNotFound):
        SetFeeSchedule(uuid.uuid4(), monthly_fen=100, per_m2_fen=None).decide(
            world.load, FeeScheduleContext(STAFF))
    with pytest.raises(InvalidRequest, match="needs the account's area_m2"):
        SetFeeSchedule(world.shops[1], monthly_fen=None, per_m2_fen=500).decide(
            world.load, FeeScheduleContext(STAFF))


def schedule(world, account_id, **fee) -> None:
    _, saved = SetFeeSchedule(account_id, **fee).decide(world.load, FeeScheduleContext(STAFF))
    world.store.save(saved)


def test_a_months_fee_is_charged_with_its_record_under_the_key_of_account_and_month(world):
    tea = world.shops[0]
    schedule(world, tea, monthly_fen=None, per_m2_fen=500)
    command = ChargePropertyFee(tea, "2026-03")
    ctx = command.context(NOW)
    assert command.idempotency_key == f"property-fee:{tea}:2026-03"
    assert ctx.transaction_id == transaction_id_for(command.idempotency_key)
    (account, record), answer = command.decide(world.load, ctx)
    assert isinstance(record, Transaction) and record.id == ctx.transaction_id
    assert record.request_fingerprint == command.digest()
    assert (answer["amount_fen"], answer["balance_after_fen"]) == (15_000, -15_000)
    assert account.balance_fen("property_fee") == -15_000


def test_a_zero_fee_is_answered_without_a_charge(world):
    rice = world.shops[1]  # no area: a fee per m² of nothing (set before the check was)
    world.store.save(PropertyFeeSchedule.set(account_id=rice, monthly_fen=None, per_m2_fen=500,
                                             day_of_month=1, actor=STAFF))
    command = ChargePropertyFee(rice, "2026-03")
    assert command.decide(world.load, command.context(NOW)) == (
        [], {"account_id": str(rice), "amount_fen": 0, "balance_after_fen": 0})


def test_a_fee_without_a_schedule_or_with_a_bad_month_is_refused(world):
    unscheduled = ChargePropertyFee(world.shops[0], "2026-03")
    with pytest.raises(NotFound):
        unscheduled.decide(world.load, unscheduled.context(NOW))
    for command in (ChargePropertyFee(world.shops[0], "2026-3"), RunPropertyFees("March")):
        with pytest.raises(InvalidRequest, match="month must be YYYY-MM"):
            command.check()


def test_a_run_is_one_charge_per_account_with_the_keys_as_before():
    accounts = [uuid.UUID(int=1), uuid.UUID(int=2)]
    charges = RunPropertyFees("2026-03").charges(accounts)
    assert [c.idempotency_key for c in charges] == [
        f"property-fee:{a}:2026-03" for a in accounts]


# -- carried out through the ledger --------------------------------------------------------


class PoolCosts:
    def __init__(self, energy_wh: int, cost_fen: int) -> None:
        self.answer = (energy_wh, cost_fen * COST_UNITS_PER_FEN)
        self.asked: list = []

    def __call__(self, meter_ids, first, last):
        self.asked.append((list(meter_ids), first, last))
        return self.answer


@pytest.fixture
def ledger():
    costs = PoolCosts(energy_wh=120_000, cost_fen=1001)
    scheduled: list[uuid.UUID] = []
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1, pool_costs=costs,
                    fee_schedule_accounts=lambda: list(scheduled))
    site = Site.create(site_id=uuid.uuid4(), name="Mall", timezone="Asia/Shanghai",
                       poll_interval_s=900, actor=STAFF)
    meter = Meter.register(meter_no="000000000601", kind="electricity", mode="monitoring",
                           site_id=site.id, gateway_id=None, address=1,
                           profile="ref-prepaid-v1", ct_ratio=1, actor=STAFF)
    ledger.save(site, meter)
    shops = [open_account(ledger, "Tea", "30"), open_account(ledger, "Rice", "10")]
    yield SimpleNamespace(ledger=ledger, costs=costs, site=site, meter=meter, shops=shops,
                          scheduled=scheduled)
    ledger.close()


def ledger_pool(world, key="p1") -> CommonAreaPool:
    return world.ledger.execute(CreatePool(
        name="Lobby", site_id=world.site.id, meter_ids=(world.meter.id,), method="area",
        shares=tuple({"account_id": str(s)} for s in world.shops), idempotency_key=key),
        STAFF)


def test_the_ledger_creates_a_pool_once_per_key(ledger):
    first, again = ledger_pool(ledger), ledger_pool(ledger)
    assert again.id == first.id
    assert ledger.ledger.property.get_pool(first.id).rule["method"] == "area"


def test_the_ledger_changes_a_rule_and_allocates_by_it_once(ledger):
    pool = ledger_pool(ledger)
    changed = ledger.ledger.execute(ChangePoolRule(
        pool.id, method="ratio", shares=({"account_id": str(ledger.shops[1]), "weight": 1},)),
        STAFF)
    assert changed.rule["version"] == 2
    first = ledger.ledger.execute(AllocatePool(pool.id, "2026-03"), STAFF)
    again = ledger.ledger.execute(AllocatePool(pool.id, "2026-03"), STAFF)
    assert first == again and [s["amount_fen"] for s in first["shares"]] == [1001]
    assert ledger.costs.asked == [([ledger.meter.id], "2026-03-01", "2026-03-31")]
    assert ledger.ledger.accounts.get_account(ledger.shops[1]).balance_fen("electricity") == -1001


def test_the_ledger_refuses_an_allocation_for_a_day_of_a_monthly_pool(ledger):
    pool = ledger_pool(ledger)
    with pytest.raises(InvalidRequest):
        ledger.ledger.execute(AllocatePool(pool.id, "2026-03-01"), STAFF)
    assert ledger.costs.asked == []


def test_the_ledger_sets_schedules_and_runs_the_fees_once_a_month(ledger):
    tea, rice = ledger.shops
    for shop, fee in ((tea, dict(monthly_fen=None, per_m2_fen=500)),
                      (rice, dict(monthly_fen=2500, per_m2_fen=None))):
        saved = ledger.ledger.execute(SetFeeSchedule(shop, **fee), STAFF)
        assert saved.account_id == shop
    ledger.scheduled.extend([tea, rice])
    first = ledger.ledger.execute(RunPropertyFees("2026-03"), STAFF)
    again = ledger.ledger.execute(RunPropertyFees("2026-03"), STAFF)
    assert [(r["deducted_fen"], r["arrears"], r["first_run"]) for r in first] == \
        [(15_000, True, True), (2500, True, True)]
    assert [r["first_run"] for r in again] == [False, False]
    one = ledger.ledger.execute(ChargePropertyFee(tea, "2026-03"), STAFF)
    assert (one.created, one.result["amount_fen"]) == (False, 15_000)


def test_the_ledger_answers_a_refused_account_in_its_place_in_a_run(ledger):
    ledger.scheduled.append(ledger.shops[0])  # listed, but without a schedule
    results = ledger.ledger.execute(RunPropertyFees("2026-03"), STAFF)
    assert results == [{"account_id": str(ledger.shops[0]),
                        "error": results[0]["error"]}] and results[0]["error"]
    with pytest.raises(InvalidRequest):
        ledger.ledger.execute(RunPropertyFees("2026-3"), STAFF)
