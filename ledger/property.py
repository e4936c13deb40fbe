"""Common-area pools and property fees.

Read-side facts come through two ports the composition root fills in: the exact cost and
energy of meters over a period (from the daily consumption read model), and the list of
accounts with a property-fee schedule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

from domain.account import Account, MoneyContext
from domain.errors import (
    AccountNotFound,
    Conflict,
    DomainError,
    InvalidRequest,
    MeterNotFound,
    NotFound,
    SiteNotFound,
)
from domain.meter import Meter
from domain.property import (
    CommonAreaPool,
    PropertyFeeSchedule,
    area_weight,
    fee_schedule_id_for,
)
from domain.site import Site
from domain.tariff import round_cost_to_fen
from domain.transaction import account_id_for, fingerprint, transaction_id_for
from ledger.commands import Command, Handler
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader
from ledger.records import transaction_record


POLICY = {"kind": "policy", "id": "property"}
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH = re.compile(r"^\d{4}-\d{2}$")


class PoolNotFound(NotFound):
    code = "pool-not-found"


class UnpricedEnergy(Conflict):
    """A period's energy is partly without a price: sharing it would bill it at zero."""

    code = "unpriced-energy"

    def __init__(self, meters: list[tuple[Meter, int]]) -> None:
        self.meters = meters  # (meter, unpriced Wh)
        named = ", ".join(f"meter {m.meter_no}: {_kwh(wh)} kWh" for m, wh in meters)
        super().__init__(f"energy without a price in this period ({named}); give the "
                         "meters a tariff that covers it, then allocate again")


def _kwh(wh: int) -> str:
    centi = (wh + 5) // 10
    return f"{centi // 100}.{centi % 100:02d}"


# (meter ids, first local day, last local day) -> (energy_wh, cost_units)
PoolCosts = Callable[[list[UUID], str, str], tuple[int, int]]
# The accounts a fee schedule charges.
FeeScheduleAccounts = Callable[[], list[UUID]]


class PropertyService:
    """Common-area pools and property fees, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 pool_costs: PoolCosts | None = None,
                 fee_schedule_accounts: FeeScheduleAccounts | None = None) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.pool_costs = pool_costs
        self.fee_schedule_accounts = fee_schedule_accounts

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {}

    def create_pool(self, *, name: str, site_id: UUID, meter_ids: list[UUID],
                    method: str, shares: list[dict], period: str, actor: dict,
                    idempotency_key: str | None = None) -> CommonAreaPool:
        pool_id = account_id_for(f"pool:{idempotency_key}") if idempotency_key else uuid4()
        existing = self.store.find(pool_id)
        if existing is not None:
            return existing
        self.store.load(site_id, Site, SiteNotFound)
        for meter_id in meter_ids:
            meter = self.store.load(meter_id, Meter, MeterNotFound)
            if meter.mode != "monitoring":
                raise InvalidRequest(f"meter {meter.meter_no} is billed to a tenant; a pool "
                                     "takes monitoring meters")
        for share in shares:
            account = self.store.load(UUID(share["account_id"]), Account, AccountNotFound)
            if method == "area":
                area_weight(account.area_m2)  # every account must have an area
        pool = CommonAreaPool.create(pool_id=pool_id, name=name, site_id=site_id,
                                     meter_ids=[str(m) for m in meter_ids], method=method,
                                     shares=shares, period=period, actor=actor)
        self.store.save_new(pool)
        return pool

    def get_pool(self, pool_id: UUID) -> CommonAreaPool:
        found = self.store.find(pool_id)
        if not isinstance(found, CommonAreaPool):
            raise PoolNotFound(f"pool {pool_id} does not exist")
        return found

    def change_pool_rule(self, pool_id: UUID, method: str, shares: list[dict],
                         actor: dict) -> CommonAreaPool:
        for share in shares:
            account = self.store.load(UUID(share["account_id"]), Account, AccountNotFound)
            if method == "area":
                area_weight(account.area_m2)

        def decide(load: Loader):
            pool = load(pool_id, CommonAreaPool, PoolNotFound)
            pool.change_rule(method, shares, actor)
            return [pool], {}

        self.bus.write(pool_id, uuid4(), "pool-rule", decide)
        return self.get_pool(pool_id)

    def allocate_pool(self, pool_id: UUID, period: str) -> dict[str, Any]:
        """Share the pool's cost for one period; the same period again returns the same."""
        pool = self.get_pool(pool_id)
        if period in pool.allocations:
            return pool.allocations[period]
        if pool.period == "day" and not DAY.match(period) or \
                pool.period == "month" and not MONTH.match(period):
            raise InvalidRequest(f"this pool is shared per {pool.period}: period must be "
                                 f"{'YYYY-MM-DD' if pool.period == 'day' else 'YYYY-MM'}")
        first, last = (period, period) if pool.period == "day" else \
            (f"{period}-01", f"{period}-31")
        unpriced = [(meter, wh) for meter in (self.store.load(UUID(m), Meter, MeterNotFound)
                                              for m in pool.meter_ids)
                    if (wh := meter.unpriced_wh(first, last))]
        if unpriced:
            raise UnpricedEnergy(unpriced)
        assert self.pool_costs is not None
        energy_wh, cost_units = self.pool_costs([UUID(m) for m in pool.meter_ids], first,
                                                last)
        total_fen = round_cost_to_fen(cost_units)
        now = self.clock()

        def decide(load: Loader):
            pool_ = load(pool_id, CommonAreaPool, PoolNotFound)
            if period in pool_.allocations:
                return [], pool_.allocations[period]
            accounts = {s["account_id"]: load(UUID(s["account_id"]), Account, AccountNotFound)
                        for s in pool_.rule["shares"]}
            if pool_.rule["method"] == "ratio":
                weights = {s["account_id"]: s["weight"] for s in pool_.rule["shares"]}
            else:
                weights = {a: area_weight(account.area_m2) for a, account in accounts.items()}
            shares = pool_.allocate(period, energy_wh, total_fen, weights)
            changed: list[Any] = [pool_]
            for share in shares:
                account = accounts[share["account_id"]]
                if share["amount_fen"] and not account.is_closed:
                    key = f"pool:{pool_id}:{period}:{share['account_id']}"
                    ctx = MoneyContext(transaction_id_for(key), now, now, POLICY, key)
                    account.charge_common_area(ctx, amount_fen=share["amount_fen"],
                                               reference=f"{pool_.name} {period}")
                    changed.append(account)
            return changed, pool_.allocations[period]

        return self.bus.write(pool_id, uuid4(), "allocation", decide).result

    # -- property fees -------------------------------------------------------------------

    def set_fee_schedule(self, *, account_id: UUID, monthly_fen: int | None,
                         per_m2_fen: int | None, day_of_month: int,
                         actor: dict) -> PropertyFeeSchedule:
        account = self.store.load(account_id, Account, AccountNotFound)
        if per_m2_fen is not None and account.area_m2 is None:
            raise InvalidRequest("a fee per m² needs the account's area_m2")
        existing = self.store.find(fee_schedule_id_for(account_id))
        if existing is None:
            schedule = PropertyFeeSchedule.set(account_id=account_id, monthly_fen=monthly_fen,
                                               per_m2_fen=per_m2_fen,
                                               day_of_month=day_of_month, actor=actor)
            self.store.save_new(schedule)
            return schedule
        existing.change(monthly_fen=monthly_fen, per_m2_fen=per_m2_fen,
                        day_of_month=day_of_month, actor=actor)
        self.bus.save_changed(existing)
        return existing

    def run_property_fees(self, month: str) -> list[dict[str, Any]]:
        """Deduct each scheduled account's fee for ``month``, at most once per month."""
        if not MONTH.match(month):
            raise InvalidRequest("month must be YYYY-MM")
        assert self.fee_schedule_accounts is not None
        now = self.clock()
        results = []
        for account_id in self.fee_schedule_accounts():
            key = f"property-fee:{account_id}:{month}"
            credit_id = transaction_id_for(key)
            digest = fingerprint("property_fee", account_id=str(account_id), month=month)

            def decide(load: Loader, account_id=account_id, key=key, credit_id=credit_id,
                       digest=digest):
                schedule = load(fee_schedule_id_for(account_id), PropertyFeeSchedule,
                                NotFound)
                account = load(account_id, Account, AccountNotFound)
                amount = schedule.amount_fen(account.area_m2)
                if account.is_closed or amount <= 0:
                    return [], {"account_id": str(account_id), "amount_fen": 0,
                                "balance_after_fen": account.balance_fen("property_fee")}
                ctx = MoneyContext(credit_id, now, now, POLICY, key)
                event = account.charge_property_fee(ctx, amount_fen=amount,
                                                    reference=f"property fee {month}")
                record = transaction_record("property_fee", account, ctx, [event],
                                                  digest)
                return [account, record], record.result

            try:
                outcome = self.bus.write(account_id, credit_id, digest, decide)
            except DomainError as error:
                results.append({"account_id": str(account_id), "error": error.detail})
                continue
            result = outcome.result
            balance = result.get("balance_after_fen", 0)
            results.append({"account_id": str(account_id),
                            "deducted_fen": result.get("amount_fen", 0),
                            "arrears": balance is not None and balance < 0,
                            "first_run": outcome.created})
        return results
