"""Common-area pools and property fees.

Read-side facts come through two ports the composition root fills in: the exact cost and
energy of meters over a period (from the daily consumption read model), and the list of
accounts with a property-fee schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from domain.errors import DomainError, MeterNotFound
from domain.meter import Meter
from domain.property import CommonAreaPool, PropertyFeeSchedule
from domain.tariff import round_cost_to_fen
from domain.transaction import account_id_for
from ledger.clock import Clock
from ledger.commands import (
    AllocatePool,
    AllocationContext,
    ChangePoolRule,
    ChargePropertyFee,
    Command,
    CreatePool,
    FeeScheduleContext,
    Handler,
    PoolContext,
    PoolNotFound,
    RunPropertyFees,
    SetFeeSchedule,
    UnpricedEnergy,
)
from ledger.commands.property import POLICY
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.outcome import Outcome

__all__ = ["FeeScheduleAccounts", "PoolCosts", "PoolNotFound", "PropertyService",
           "UnpricedEnergy"]


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
        return {CreatePool: self.carry_out_create_pool,
                ChangePoolRule: self.carry_out_change_pool_rule,
                AllocatePool: self.carry_out_allocate_pool,
                SetFeeSchedule: self.carry_out_set_fee_schedule,
                ChargePropertyFee: self.carry_out_property_fee,
                RunPropertyFees: self.carry_out_property_fees}

    # -- pools ---------------------------------------------------------------------------

    def create_pool(self, *, name: str, site_id: UUID, meter_ids: list[UUID],
                    method: str, shares: list[dict], period: str, actor: dict,
                    idempotency_key: str | None = None) -> CommonAreaPool:
        return self.carry_out_create_pool(
            CreatePool(name=name, site_id=site_id, meter_ids=tuple(meter_ids), method=method,
                       shares=tuple(shares), period=period, idempotency_key=idempotency_key),
            actor)

    def carry_out_create_pool(self, command: CreatePool, actor: dict) -> CommonAreaPool:
        """A new pool is saved as new (AlreadyExists on a race); the same key again
        answers the pool it made."""
        key = command.idempotency_key
        pool_id = account_id_for(f"pool:{key}") if key else uuid4()
        new, pool = command.decide(self.store.load, PoolContext(actor, pool_id))
        if new:
            self.store.save_new(*new)
        return pool

    def get_pool(self, pool_id: UUID) -> CommonAreaPool:
        found = self.store.find(pool_id)
        if not isinstance(found, CommonAreaPool):
            raise PoolNotFound(f"pool {pool_id} does not exist")
        return found

    def change_pool_rule(self, pool_id: UUID, method: str, shares: list[dict],
                         actor: dict) -> CommonAreaPool:
        return self.carry_out_change_pool_rule(
            ChangePoolRule(pool_id, method=method, shares=tuple(shares)), actor)

    def carry_out_change_pool_rule(self, command: ChangePoolRule,
                                   actor: dict) -> CommonAreaPool:
        ctx = PoolContext(actor)
        self.bus.write(command.pool_id, uuid4(), "pool-rule",
                       lambda load: command.decide(load, ctx))
        return self.get_pool(command.pool_id)

    def allocate_pool(self, pool_id: UUID, period: str) -> dict[str, Any]:
        """Share the pool's cost for one period; the same period again returns the same."""
        return self.carry_out_allocate_pool(AllocatePool(pool_id, period), POLICY)

    def carry_out_allocate_pool(self, command: AllocatePool, actor: dict) -> dict[str, Any]:
        """The figures the decision needs are read first: the meters' energy without a
        price (then the cost is not asked, and the decision refuses) and the period's
        cost from the ``pool_costs`` port. The shares are charged by the property policy,
        whoever asks."""
        pool = self.get_pool(command.pool_id)
        if command.period in pool.allocations:
            return pool.allocations[command.period]
        first, last = command.days(pool)
        unpriced = tuple((meter, wh) for meter in (self.store.load(UUID(m), Meter,
                                                                   MeterNotFound)
                                                   for m in pool.meter_ids)
                         if (wh := meter.unpriced_wh(first, last)))
        energy_wh = total_fen = 0
        if not unpriced:
            assert self.pool_costs is not None
            energy_wh, cost_units = self.pool_costs([UUID(m) for m in pool.meter_ids], first,
                                                    last)
            total_fen = round_cost_to_fen(cost_units)
        ctx = AllocationContext(self.clock(), energy_wh, total_fen, unpriced)
        return self.bus.write(command.pool_id, uuid4(), "allocation",
                              lambda load: command.decide(load, ctx)).result

    # -- property fees -------------------------------------------------------------------

    def set_fee_schedule(self, *, account_id: UUID, monthly_fen: int | None,
                         per_m2_fen: int | None, day_of_month: int,
                         actor: dict) -> PropertyFeeSchedule:
        return self.carry_out_set_fee_schedule(
            SetFeeSchedule(account_id, monthly_fen=monthly_fen, per_m2_fen=per_m2_fen,
                           day_of_month=day_of_month), actor)

    def carry_out_set_fee_schedule(self, command: SetFeeSchedule,
                                   actor: dict) -> PropertyFeeSchedule:
        """Saved outside the bus: a new schedule as new, a changed one as changed (each
        AlreadyExists on a race)."""
        changed, schedule = command.decide(self.store.load, FeeScheduleContext(actor))
        if _is_new(schedule):
            self.store.save_new(*changed)
        else:
            self.bus.save_changed(*changed)
        return schedule

    def run_property_fees(self, month: str) -> list[dict[str, Any]]:
        """Deduct each scheduled account's fee for ``month``, at most once per month."""
        return self.carry_out_property_fees(RunPropertyFees(month), POLICY)

    def carry_out_property_fees(self, command: RunPropertyFees,
                                actor: dict) -> list[dict[str, Any]]:
        """One decision per scheduled account; an account refused answers its error in
        its place."""
        command.check()
        assert self.fee_schedule_accounts is not None
        now = self.clock()
        results = []
        for charge in command.charges(self.fee_schedule_accounts()):
            try:
                outcome = self._charge(charge, now)
            except DomainError as error:
                results.append({"account_id": str(charge.account_id), "error": error.detail})
                continue
            result = outcome.result
            balance = result.get("balance_after_fen", 0)
            results.append({"account_id": str(charge.account_id),
                            "deducted_fen": result.get("amount_fen", 0),
                            "arrears": balance is not None and balance < 0,
                            "first_run": outcome.created})
        return results

    def carry_out_property_fee(self, command: ChargePropertyFee, actor: dict) -> Outcome:
        """One account's fee for a month (charged by the property policy)."""
        command.check()
        return self._charge(command, self.clock())

    def _charge(self, command: ChargePropertyFee, now: datetime) -> Outcome:
        ctx = command.context(now)
        return self.bus.write(command.account_id, ctx.transaction_id, command.digest(),
                              lambda load: command.decide(load, ctx))


def _is_new(aggregate: Any) -> bool:
    """Every event of the aggregate is still pending: it was never stored."""
    return len(aggregate.pending_events) == aggregate.version
