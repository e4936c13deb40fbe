"""Property commands: common-area pools (公区) and monthly property fees.

Each decision is pure: what it reads from outside (the time, the actor, a pool's new id, a
period's cost from the consumption read model, the meters' unpriced energy) the service
reads first and hands over in the context; stored state comes only through ``load``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.account import Account, MoneyContext
from domain.errors import (
    AccountNotFound,
    Conflict,
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
from domain.transaction import fingerprint, transaction_id_for
from ledger.commands.base import Command
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


def check_shares(load: Loader, method: str, shares: tuple[dict, ...]) -> None:
    """Every share names an account; shared by area, every account has one."""
    for share in shares:
        account = load(UUID(share["account_id"]), Account, AccountNotFound)
        if method == "area":
            area_weight(account.area_m2)  # every account must have an area


# -- pools --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolContext:
    """Who asks, and the id a new pool gets (from its idempotency key, or a new one)."""

    actor: dict
    pool_id: UUID | None = None


@dataclass(frozen=True)
class CreatePool(Command):
    """Monitoring meters whose cost is shared among shops by a rule (ratio or area)."""

    action: ClassVar[str] = "create_pool"
    name: str
    site_id: UUID
    meter_ids: tuple[UUID, ...]
    method: str
    shares: tuple[dict, ...]
    period: str = "month"
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.site_id)

    def decide(self, load: Loader, ctx: PoolContext) -> tuple[list[Any], CommonAreaPool]:
        """The pool made under this key before, or a new one (not yet saved)."""
        assert ctx.pool_id is not None
        try:
            return [], load(ctx.pool_id, CommonAreaPool, PoolNotFound)
        except PoolNotFound:
            pass
        load(self.site_id, Site, SiteNotFound)
        for meter_id in self.meter_ids:
            meter = load(meter_id, Meter, MeterNotFound)
            if meter.mode != "monitoring":
                raise InvalidRequest(f"meter {meter.meter_no} is billed to a tenant; a pool "
                                     "takes monitoring meters")
        check_shares(load, self.method, self.shares)
        pool = CommonAreaPool.create(pool_id=ctx.pool_id, name=self.name, site_id=self.site_id,
                                     meter_ids=[str(m) for m in self.meter_ids],
                                     method=self.method, shares=list(self.shares),
                                     period=self.period, actor=ctx.actor)
        return [pool], pool


@dataclass(frozen=True)
class ChangePoolRule(Command):
    """A new version of the pool's sharing rule, for the periods not yet allocated."""

    action: ClassVar[str] = "change_pool_rule"
    repeat: ClassVar[str] = "records another version of the same rule"
    pool_id: UUID
    method: str
    shares: tuple[dict, ...]

    def target(self) -> str:
        return str(self.pool_id)

    def decide(self, load: Loader, ctx: PoolContext) -> tuple[list[Any], dict[str, Any]]:
        check_shares(load, self.method, self.shares)
        pool = load(self.pool_id, CommonAreaPool, PoolNotFound)
        pool.change_rule(self.method, list(self.shares), ctx.actor)
        return [pool], {}


@dataclass(frozen=True)
class AllocationContext:
    """What an allocation needs from outside, read by the service before it: the time,
    the period's energy and cost of the pool's meters (the ``pool_costs`` port) and the
    meters' energy without a price (then the cost was not asked)."""

    now: datetime
    energy_wh: int
    total_fen: int
    unpriced: tuple[tuple[Meter, int], ...] = ()


@dataclass(frozen=True)
class AllocatePool(Command):
    """Share the pool's cost for one period; the same period again answers the same."""

    action: ClassVar[str] = "allocate_pool"
    repeat: ClassVar[str] = "answers the allocation already made for the period"
    pool_id: UUID
    period: str

    def target(self) -> str:
        return str(self.pool_id)

    def days(self, pool: CommonAreaPool) -> tuple[str, str]:
        """The first and last local day of the period, which must be one the pool uses."""
        if pool.period == "day" and not DAY.match(self.period) or \
                pool.period == "month" and not MONTH.match(self.period):
            raise InvalidRequest(f"this pool is shared per {pool.period}: period must be "
                                 f"{'YYYY-MM-DD' if pool.period == 'day' else 'YYYY-MM'}")
        if pool.period == "day":
            return self.period, self.period
        return f"{self.period}-01", f"{self.period}-31"

    def decide(self, load: Loader, ctx: AllocationContext) -> tuple[list[Any], dict[str, Any]]:
        period = self.period
        pool = load(self.pool_id, CommonAreaPool, PoolNotFound)
        if period in pool.allocations:
            return [], pool.allocations[period]
        self.days(pool)
        if ctx.unpriced:
            raise UnpricedEnergy(list(ctx.unpriced))
        accounts = {s["account_id"]: load(UUID(s["account_id"]), Account, AccountNotFound)
                    for s in pool.rule["shares"]}
        if pool.rule["method"] == "ratio":
            weights = {s["account_id"]: s["weight"] for s in pool.rule["shares"]}
        else:
            weights = {a: area_weight(account.area_m2) for a, account in accounts.items()}
        shares = pool.allocate(period, ctx.energy_wh, ctx.total_fen, weights)
        changed: list[Any] = [pool]
        for share in shares:
            account = accounts[share["account_id"]]
            if share["amount_fen"] and not account.is_closed:
                key = f"pool:{self.pool_id}:{period}:{share['account_id']}"
                money = MoneyContext(transaction_id_for(key), ctx.now, ctx.now, POLICY, key)
                account.charge_common_area(money, amount_fen=share["amount_fen"],
                                           reference=f"{pool.name} {period}")
                changed.append(account)
        return changed, pool.allocations[period]


# -- property fees ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeScheduleContext:
    actor: dict


@dataclass(frozen=True)
class SetFeeSchedule(Command):
    """An account's monthly property fee: a fixed amount or so much per m²."""

    action: ClassVar[str] = "set_fee_schedule"
    repeat: ClassVar[str] = "sets the same schedule again"
    account_id: UUID
    monthly_fen: int | None
    per_m2_fen: int | None
    day_of_month: int = 1

    def target(self) -> str:
        return str(self.account_id)

    def decide(self, load: Loader,
               ctx: FeeScheduleContext) -> tuple[list[Any], PropertyFeeSchedule]:
        """The schedule set or changed (not yet saved: a new one is saved as new)."""
        account = load(self.account_id, Account, AccountNotFound)
        if self.per_m2_fen is not None and account.area_m2 is None:
            raise InvalidRequest("a fee per m² needs the account's area_m2")
        try:
            schedule = load(fee_schedule_id_for(self.account_id), PropertyFeeSchedule,
                            NotFound)
        except NotFound:
            schedule = PropertyFeeSchedule.set(account_id=self.account_id,
                                               monthly_fen=self.monthly_fen,
                                               per_m2_fen=self.per_m2_fen,
                                               day_of_month=self.day_of_month,
                                               actor=ctx.actor)
            return [schedule], schedule
        schedule.change(monthly_fen=self.monthly_fen, per_m2_fen=self.per_m2_fen,
                        day_of_month=self.day_of_month, actor=ctx.actor)
        return [schedule], schedule


def check_month(month: str) -> None:
    if not MONTH.match(month):
        raise InvalidRequest("month must be YYYY-MM")


@dataclass(frozen=True)
class ChargePropertyFee(Command):
    """One scheduled account's fee for a month, at most once: its key is fixed by both."""

    action: ClassVar[str] = "charge_property_fee"
    repeat: ClassVar[str] = "answers the first charge: its key is the account and the month"
    account_id: UUID
    month: str

    @property
    def idempotency_key(self) -> str:
        return f"property-fee:{self.account_id}:{self.month}"

    def target(self) -> str:
        return str(self.account_id)

    def check(self) -> None:
        check_month(self.month)

    def digest(self) -> str:
        return fingerprint("property_fee", account_id=str(self.account_id), month=self.month)

    def context(self, now: datetime) -> MoneyContext:
        """The fee's money context: its transaction id comes from its key."""
        key = self.idempotency_key
        return MoneyContext(transaction_id_for(key), now, now, POLICY, key)

    def decide(self, load: Loader, ctx: MoneyContext) -> tuple[list[Any], dict[str, Any]]:
        schedule = load(fee_schedule_id_for(self.account_id), PropertyFeeSchedule, NotFound)
        account = load(self.account_id, Account, AccountNotFound)
        amount = schedule.amount_fen(account.area_m2)
        if account.is_closed or amount <= 0:
            return [], {"account_id": str(self.account_id), "amount_fen": 0,
                        "balance_after_fen": account.balance_fen("property_fee")}
        event = account.charge_property_fee(ctx, amount_fen=amount,
                                            reference=f"property fee {self.month}")
        record = transaction_record("property_fee", account, ctx, [event], self.digest())
        return [account, record], record.result


@dataclass(frozen=True)
class RunPropertyFees(Command):
    """Every scheduled account's fee for a month: one ``ChargePropertyFee`` each."""

    action: ClassVar[str] = "run_property_fees"
    repeat: ClassVar[str] = "answers each account's first charge for the month"
    month: str

    def target(self) -> str:
        return self.month

    def check(self) -> None:
        check_month(self.month)

    def charges(self, account_ids: list[UUID]) -> list[ChargePropertyFee]:
        return [ChargePropertyFee(account_id, self.month) for account_id in account_ids]
