"""Property operations: common-area pools shared among shops, and monthly property fees."""

from __future__ import annotations

from decimal import Decimal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.allocation import largest_remainder
from domain.errors import InvalidRequest

FEE_SCHEDULE_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/property-fee-schedule")
METHODS = ("ratio", "area")
PERIODS = ("day", "month")


def fee_schedule_id_for(account_id: UUID) -> UUID:
    return uuid5(FEE_SCHEDULE_NAMESPACE, str(account_id))


def area_weight(area_m2: str | None) -> int:
    """Floor area in 0.01 m² as an integer weight."""
    if area_m2 is None:
        raise InvalidRequest("an account shared by area needs area_m2")
    return int(Decimal(area_m2) * 100)


class CommonAreaPool(Aggregate):
    """Monitored meters whose cost is shared among shops by a versioned rule."""

    @event("Created")
    def __init__(self, name: str, site_id: UUID, meter_ids: list, method: str, shares: list,
                 period: str, actor: dict) -> None:
        self.name = name
        self.site_id = site_id
        self.meter_ids = meter_ids
        self.period = period
        self.rules: list[dict] = [{"version": 1, "method": method, "shares": shares}]
        self.allocations: dict[str, dict] = {}

    @classmethod
    def create(cls, *, pool_id: UUID, name: str, site_id: UUID, meter_ids: list[UUID],
               method: str, shares: list[dict], period: str, actor: dict) -> CommonAreaPool:
        if not name.strip() or not meter_ids:
            raise InvalidRequest("a pool needs a name and at least one meter")
        _check_rule(method, shares)
        if period not in PERIODS:
            raise InvalidRequest("period must be day or month")
        return cls._create(cls.Created, id=pool_id, name=name, site_id=site_id,
                           meter_ids=list(meter_ids), method=method, shares=shares,
                           period=period, actor=actor)

    @property
    def rule(self) -> dict:
        return self.rules[-1]

    def change_rule(self, method: str, shares: list[dict], actor: dict) -> None:
        _check_rule(method, shares)
        self._rule_changed(version=len(self.rules) + 1, method=method, shares=shares,
                           actor=actor)

    @event("RuleChanged")
    def _rule_changed(self, version: int, method: str, shares: list, actor: dict) -> None:
        self.rules.append({"version": version, "method": method, "shares": shares})

    def allocate(self, period: str, energy_wh: int, total_fen: int,
                 weights: dict[str, int]) -> list[dict]:
        """Split the period's cost by the largest-remainder method, to the fen."""
        if period in self.allocations:
            raise InvalidRequest(f"period {period} is allocated already")
        accounts = [s["account_id"] for s in self.rule["shares"]]
        if sum(weights[a] for a in accounts) <= 0:
            raise InvalidRequest("the shares' weights add up to zero")
        amounts = largest_remainder(total_fen, [weights[a] for a in accounts])
        shares = [{"account_id": a, "amount_fen": f} for a, f in zip(accounts, amounts)]
        assert sum(s["amount_fen"] for s in shares) == total_fen
        self._allocated(period=period, energy_wh=energy_wh, total_fen=total_fen,
                        rule_version=self.rule["version"], shares=shares)
        return shares

    @event("Allocated")
    def _allocated(self, period: str, energy_wh: int, total_fen: int, rule_version: int,
                   shares: list) -> None:
        self.allocations[period] = {"energy_wh": energy_wh, "total_fen": total_fen,
                                    "rule_version": rule_version, "shares": shares}


def _check_fee(monthly_fen: int | None, per_m2_fen: int | None, day_of_month: int) -> None:
    if (monthly_fen is None) == (per_m2_fen is None):
        raise InvalidRequest("give monthly_amount or per_m2, not both")
    if not 1 <= day_of_month <= 28:
        raise InvalidRequest("day_of_month must be 1 to 28 (every month has it)")


def _check_rule(method: str, shares: list[dict]) -> None:
    if method not in METHODS:
        raise InvalidRequest("method must be ratio or area")
    if not shares:
        raise InvalidRequest("a pool is shared among at least one account")
    accounts = [s["account_id"] for s in shares]
    if len(set(accounts)) != len(accounts):
        raise InvalidRequest("an account appears twice in the shares")
    if method == "ratio" and any(not isinstance(s.get("weight"), int) or s["weight"] < 0
                                 for s in shares):
        raise InvalidRequest("ratio shares need whole, non-negative weights")


class PropertyFeeSchedule(Aggregate):
    """What an account pays each month for property management."""

    @event("Set")
    def __init__(self, account_id: UUID, monthly_fen: int | None, per_m2_fen: int | None,
                 day_of_month: int, actor: dict) -> None:
        self.account_id = account_id
        self.monthly_fen = monthly_fen
        self.per_m2_fen = per_m2_fen
        self.day_of_month = day_of_month

    @classmethod
    def set(cls, *, account_id: UUID, monthly_fen: int | None, per_m2_fen: int | None,
            day_of_month: int, actor: dict) -> PropertyFeeSchedule:
        _check_fee(monthly_fen, per_m2_fen, day_of_month)
        return cls._create(cls.Set, id=fee_schedule_id_for(account_id), account_id=account_id,
                           monthly_fen=monthly_fen, per_m2_fen=per_m2_fen,
                           day_of_month=day_of_month, actor=actor)

    def change(self, monthly_fen: int | None, per_m2_fen: int | None, day_of_month: int,
               actor: dict) -> None:
        _check_fee(monthly_fen, per_m2_fen, day_of_month)
        self._changed(monthly_fen=monthly_fen, per_m2_fen=per_m2_fen,
                      day_of_month=day_of_month, actor=actor)

    @event("Changed")
    def _changed(self, monthly_fen: int | None, per_m2_fen: int | None, day_of_month: int,
                 actor: dict) -> None:
        self.monthly_fen = monthly_fen
        self.per_m2_fen = per_m2_fen
        self.day_of_month = day_of_month

    def amount_fen(self, area_m2: str | None) -> int:
        if self.monthly_fen is not None:
            return self.monthly_fen
        # per m²: the fee for the area, rounded half up to the fen
        exact = Decimal(area_m2 or "0") * self.per_m2_fen  # type: ignore[operator]
        return int(exact.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
