"""Common-area pools and property fees on the in-memory event store; the read-side ports
(a period's cost of meters, the accounts with a fee schedule) are fakes written here."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from domain.errors import InvalidRequest, MeterNotFound, SiteNotFound
from domain.meter import Meter
from domain.site import Site
from domain.tariff import COST_UNITS_PER_FEN
from ledger.accounts import AccountService
from ledger.app import Ledger
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.writer import Writer
from ledger.property import PoolNotFound, PropertyService

NOW = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}


class PoolCosts:
    """The pool-cost port: one answer for every period, and the questions it was asked."""

    def __init__(self, energy_wh: int, cost_fen: int) -> None:
        self.answer = (energy_wh, cost_fen * COST_UNITS_PER_FEN)
        self.asked: list[tuple[list[uuid.UUID], str, str]] = []

    def __call__(self, meter_ids, first, last):
        self.asked.append((list(meter_ids), first, last))
        return self.answer


@pytest.fixture
def world():
    store = EventStore()  # no env: the library's in-memory recorder
    bus = CommandBus(store, Writer(store), max_commands=1)
    accounts = AccountService(store, bus, clock=lambda: NOW, max_top_up_fen=1_000_000)
    costs = PoolCosts(energy_wh=120_000, cost_fen=1001)
    scheduled: list[uuid.UUID] = []
    prop = PropertyService(store, bus, clock=lambda: NOW, pool_costs=costs,
                           fee_schedule_accounts=lambda: list(scheduled))
    site = Site.create(site_id=uuid.uuid4(), name="Mall", timezone="Asia/Shanghai",
                       poll_interval_s=900, actor=STAFF)
    meters = [Meter.register(meter_no=f"00000000040{i}", kind="electricity", mode=mode,
                             site_id=site.id, gateway_id=None, address=i + 1,
                             profile="ref-prepaid-v1", ct_ratio=1, actor=STAFF)
              for i, mode in enumerate(("monitoring", "prepaid"))]
    store.save(site, *meters)
    shops = [uuid.UUID(accounts.open_account(name=name, area_m2=area, actor=STAFF)
                       .result["account_id"]) for name, area in (("Tea", "30"), ("Rice", None))]
    for shop in shops:
        accounts.top_up(shop, amount_fen=10_000, channel="cash", actor=STAFF)
    yield SimpleNamespace(property=prop, accounts=accounts, costs=costs, site=site,
                          common=meters[0], billed=meters[1], shops=shops,
                          scheduled=scheduled)
    bus.close()


def balance(world, shop, wallet="electricity") -> int:
    return world.accounts.get_account(shop).balance_fen(wallet)


def pool(world, *, method="ratio", shares=None, meters=None, key="p1", period="month"):
    shares = shares or [{"account_id": str(world.shops[0]), "weight": 2},
                        {"account_id": str(world.shops[1]), "weight": 1}]
    return world.property.create_pool(
        name="Lobby", site_id=world.site.id, meter_ids=meters or [world.common.id],
        method=method, shares=shares, period=period, actor=STAFF, idempotency_key=key)


def test_a_pool_is_created_once_per_key(world):
    first, again = pool(world), pool(world)
    assert again.id == first.id
    assert world.property.get_pool(first.id).meter_ids == [str(world.common.id)]


@pytest.mark.parametrize("change, error", [
    (lambda w: dict(meters=[w.billed.id]), InvalidRequest),  # billed to a tenant
    (lambda w: dict(meters=[uuid.uuid4()]), MeterNotFound),
    (lambda w: dict(method="area", shares=[{"account_id": str(s)} for s in w.shops]),
     InvalidRequest),  # the second shop has no area
])
def test_a_pool_is_refused_what_it_cannot_share(world, change, error):
    with pytest.raises(error):
        pool(world, **change(world))
    with pytest.raises(PoolNotFound):
        world.property.get_pool(uuid.uuid4())


def test_a_pool_needs_a_site_that_exists(world):
    with pytest.raises(SiteNotFound):
        world.property.create_pool(name="Lobby", site_id=uuid.uuid4(),
                                   meter_ids=[world.common.id], method="ratio",
                                   shares=[{"account_id": str(world.shops[0]), "weight": 1}],
                                   period="month", actor=STAFF)


def test_an_allocation_charges_each_share_once_to_the_fen(world):
    created = pool(world)
    first = world.property.allocate_pool(created.id, "2026-03")
    again = world.property.allocate_pool(created.id, "2026-03")
    assert again == first
    assert [s["amount_fen"] for s in first["shares"]] == [667, 334]  # 2:1 of 10.01
    assert (first["total_fen"], first["energy_wh"]) == (1001, 120_000)
    assert world.costs.asked == [([world.common.id], "2026-03-01", "2026-03-31")]
    assert [balance(world, s) for s in world.shops] == [10_000 - 667, 10_000 - 334]


@pytest.mark.parametrize("pool_period, period", [("month", "2026-03-01"), ("day", "2026-03"),
                                                 ("month", "March")])
def test_an_allocation_for_a_period_the_pool_does_not_use_is_refused(world, pool_period,
                                                                     period):
    created = pool(world, period=pool_period)
    with pytest.raises(InvalidRequest):
        world.property.allocate_pool(created.id, period)
    assert world.costs.asked == []
    assert [balance(world, s) for s in world.shops] == [10_000, 10_000]


def test_a_changed_rule_shares_the_next_period_by_it(world):
    created = pool(world)
    world.property.allocate_pool(created.id, "2026-02")
    world.property.change_pool_rule(created.id, "ratio",
                                    [{"account_id": str(world.shops[1]), "weight": 1}], STAFF)
    march = world.property.allocate_pool(created.id, "2026-03")
    assert [s["amount_fen"] for s in march["shares"]] == [1001]
    assert march["rule_version"] == 2


def test_property_fees_are_deducted_once_a_month_and_may_leave_arrears(world):
    tea, rice = world.shops
    world.property.set_fee_schedule(account_id=tea, monthly_fen=None, per_m2_fen=500,
                                    day_of_month=1, actor=STAFF)
    world.property.set_fee_schedule(account_id=rice, monthly_fen=2500, per_m2_fen=None,
                                    day_of_month=1, actor=STAFF)
    world.scheduled.extend([tea, rice])
    first = world.property.run_property_fees("2026-03")
    again = world.property.run_property_fees("2026-03")
    assert [(r["deducted_fen"], r["arrears"], r["first_run"]) for r in first] == \
        [(15_000, True, True), (2500, True, True)]
    assert [r["first_run"] for r in again] == [False, False]
    assert [balance(world, s, "property_fee") for s in world.shops] == [-15_000, -2500]


def test_a_fee_per_m2_needs_an_area(world):
    with pytest.raises(InvalidRequest):
        world.property.set_fee_schedule(account_id=world.shops[1], monthly_fen=None,
                                        per_m2_fen=500, day_of_month=1, actor=STAFF)
    with pytest.raises(InvalidRequest):
        world.property.run_property_fees("2026-3")


def test_the_ledger_answers_for_its_property_service():
    costs = PoolCosts(energy_wh=0, cost_fen=0)
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1, pool_costs=costs)
    try:
        assert isinstance(ledger.property, PropertyService)
        assert ledger.property.pool_costs is costs
        with pytest.raises(PoolNotFound):
            ledger.property.get_pool(uuid.uuid4())
    finally:
        ledger.close()
