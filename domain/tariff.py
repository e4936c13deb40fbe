"""Tariffs: versioned price schedules, and the pure maths that prices energy with them.

Units: energy in Wh (electricity) or litres (water); prices in 0.0001 yuan per kWh (or
per m³). Their product is exact in "cost units" of 1e-7 yuan (1e-5 fen):
``Wh × price_per_kwh_1e4`` = (kWh/1000) × (yuan/kWh × 1e4) = 1e-7 yuan. Rounding to fen
happens once, in ``round_cost_to_fen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest

BANDS = ("sharp", "peak", "flat", "valley")
KINDS = ("flat", "tou", "tiered")
COST_UNITS_PER_FEN = 100_000
MAX_SCHEDULE_SEGMENTS = 14
MAX_PRICE_PER_KWH_1E4 = 1_000_000  # 100 yuan per kWh: anything above is a typing error
MINUTES_PER_DAY = 24 * 60


def round_cost_to_fen(cost_units: int) -> int:
    """The one rounding of money from energy: half up, to the fen."""
    assert cost_units >= 0, cost_units
    return (cost_units + COST_UNITS_PER_FEN // 2) // COST_UNITS_PER_FEN


@dataclass(frozen=True)
class Segment:
    start_minute: int  # minutes after local midnight
    band: str


@dataclass(frozen=True)
class Tier:
    up_to_wh: int | None  # monthly cumulative energy up to which this tier applies
    price_1e4: int  # tiered: the price; time of use: a surcharge on the band price


@dataclass(frozen=True)
class TariffSpec:
    kind: str
    price_1e4: int | None = None
    band_prices_1e4: dict[str, int] = field(default_factory=dict)
    schedule: tuple[Segment, ...] = ()
    seasons: tuple[tuple[tuple[int, ...], tuple[Segment, ...]], ...] = ()
    tiers: tuple[Tier, ...] = ()

    # -- construction and validation ---------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TariffSpec:
        """Build and validate a spec from its stored (or requested) dictionary form."""
        kind = data.get("kind")
        if kind not in KINDS:
            raise InvalidRequest(f"tariff kind must be one of {', '.join(KINDS)}")
        spec = cls(
            kind=kind,
            price_1e4=data.get("price_1e4"),
            band_prices_1e4=dict(data.get("band_prices_1e4") or {}),
            schedule=_segments(data.get("schedule") or ()),
            seasons=tuple((tuple(int(m) for m in s["months"]), _segments(s["schedule"]))
                          for s in data.get("seasons") or ()),
            tiers=tuple(Tier(t.get("up_to_wh"), int(t["price_1e4"]))
                        for t in data.get("tiers") or ()),
        )
        spec.validate()
        return spec

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "price_1e4": self.price_1e4,
            "band_prices_1e4": dict(self.band_prices_1e4),
            "schedule": [{"start_minute": s.start_minute, "band": s.band} for s in self.schedule],
            "seasons": [{"months": list(months),
                         "schedule": [{"start_minute": s.start_minute, "band": s.band}
                                      for s in schedule]} for months, schedule in self.seasons],
            "tiers": [{"up_to_wh": t.up_to_wh, "price_1e4": t.price_1e4} for t in self.tiers],
        }

    def validate(self) -> None:
        if self.kind == "flat":
            _price(self.price_1e4, "price")
        elif self.kind == "tou":
            if set(self.band_prices_1e4) != set(BANDS):
                raise InvalidRequest("a time-of-use tariff needs prices for sharp, peak, flat "
                                     "and valley")
            for band, price in self.band_prices_1e4.items():
                _price(price, f"{band} price")
            _check_schedule(self.schedule)
            months_seen: set[int] = set()
            for months, schedule in self.seasons:
                _check_schedule(schedule)
                if not months or any(m < 1 or m > 12 for m in months) or months_seen & set(months):
                    raise InvalidRequest("season months must be distinct numbers 1 to 12")
                months_seen |= set(months)
        if self.kind == "tiered" and not self.tiers:
            raise InvalidRequest("a tiered tariff needs at least one tier")
        if self.tiers:
            limits = [t.up_to_wh for t in self.tiers]
            finite = limits[:-1]
            if limits[-1] is not None or any(limit is None or limit <= 0 for limit in finite):
                raise InvalidRequest("every tier but the last needs a positive up_to_kwh; "
                                     "the last has none")
            if any(b <= a for a, b in zip(finite, finite[1:])):
                raise InvalidRequest("tier limits must increase")
            for tier in self.tiers:
                _price(tier.price_1e4, "tier price", allow_zero=self.kind == "tou")

    # -- pricing -----------------------------------------------------------------------

    def schedule_for_month(self, month: int) -> tuple[Segment, ...]:
        for months, schedule in self.seasons:
            if month in months:
                return schedule
        return self.schedule

    def band_at(self, local: datetime) -> str:
        """The time-of-use band in force at a local wall-clock time."""
        schedule = self.schedule_for_month(local.month)
        minute = local.hour * 60 + local.minute
        band = schedule[-1].band  # the last segment runs over midnight
        for segment in schedule:
            if segment.start_minute <= minute:
                band = segment.band
        return band

    def boundaries_minutes(self, month: int) -> list[int]:
        return [s.start_minute for s in self.schedule_for_month(month)]

    def unit_price(self, band: str | None, tier_index: int) -> int:
        if self.kind == "flat":
            assert self.price_1e4 is not None
            return self.price_1e4
        if self.kind == "tiered":
            return self.tiers[tier_index].price_1e4
        surcharge = self.tiers[tier_index].price_1e4 if self.tiers else 0
        return self.band_prices_1e4[band or "flat"] + surcharge

    def tier_limits(self) -> list[int | None]:
        return [t.up_to_wh for t in self.tiers] if self.tiers else [None]


def price_by_tiers(spec: TariffSpec, band: str | None, energy_wh: int,
                   month_energy_before_wh: int) -> list[tuple[int, int, int]]:
    """Split ``energy_wh`` at the tier limits it crosses, given the month's energy so far.

    Returns (tier_index, energy_wh, cost_units) pieces; their energies sum to the input.
    """
    assert energy_wh >= 0 and month_energy_before_wh >= 0
    pieces = []
    position = month_energy_before_wh
    remaining = energy_wh
    for index, limit in enumerate(spec.tier_limits()):
        if remaining == 0:
            break
        if limit is not None and position >= limit:
            continue
        room = remaining if limit is None else min(remaining, limit - position)
        pieces.append((index, room, room * spec.unit_price(band, index)))
        position += room
        remaining -= room
    assert remaining == 0
    return pieces


def _segments(items: Sequence[Any]) -> tuple[Segment, ...]:
    segments = []
    for item in items:
        if isinstance(item, Segment):
            segments.append(item)
            continue
        if "start_minute" in item:
            minute = int(item["start_minute"])
        else:
            minute = parse_hhmm(item.get("start", ""))
        segments.append(Segment(minute, str(item.get("band"))))
    return tuple(segments)


def parse_hhmm(text: str) -> int:
    try:
        hours, minutes = text.split(":")
        value = int(hours) * 60 + int(minutes)
    except (ValueError, AttributeError):
        raise InvalidRequest(f"schedule start {text!r} must be HH:MM") from None
    if not 0 <= int(hours) < 24 or not 0 <= int(minutes) < 60:
        raise InvalidRequest(f"schedule start {text!r} must be HH:MM")
    return value


def _check_schedule(schedule: tuple[Segment, ...]) -> None:
    if not 1 <= len(schedule) <= MAX_SCHEDULE_SEGMENTS:
        raise InvalidRequest(f"a schedule has 1 to {MAX_SCHEDULE_SEGMENTS} segments")
    starts = [s.start_minute for s in schedule]
    if starts[0] != 0 or starts != sorted(set(starts)):
        raise InvalidRequest("schedule segments must start at 00:00 and in increasing order")
    for segment in schedule:
        if segment.band not in BANDS:
            raise InvalidRequest(f"unknown band {segment.band!r}; one of {', '.join(BANDS)}")


def _price(value: Any, what: str, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or \
            (value == 0 and not allow_zero) or value > MAX_PRICE_PER_KWH_1E4:
        raise InvalidRequest(f"{what} must be a positive price of at most 100 yuan")


class Tariff(Aggregate):
    """A named tariff whose versions each take effect from an instant."""

    @event("Created")
    def __init__(self, name: str, utility: str, effective_from: datetime, spec: dict,
                 actor: dict) -> None:
        self.name = name
        self.utility = utility
        self.versions: list[dict] = [{"effective_from": effective_from, "spec": spec,
                                      "version": 1}]

    @classmethod
    def create(cls, *, tariff_id: UUID, name: str, utility: str, effective_from: datetime,
               spec: TariffSpec, actor: dict) -> Tariff:
        if not name.strip():
            raise InvalidRequest("a tariff needs a name")
        if utility not in ("electricity", "water"):
            raise InvalidRequest("utility must be electricity or water")
        return cls._create(cls.Created, id=tariff_id, name=name, utility=utility,
                           effective_from=effective_from, spec=spec.as_dict(), actor=actor)

    def add_version(self, effective_from: datetime, spec: TariffSpec, actor: dict) -> None:
        if effective_from <= self.versions[-1]["effective_from"]:
            raise InvalidRequest("a new version must take effect after the latest one")
        self._version_added(effective_from=effective_from, spec=spec.as_dict(), actor=actor)

    @event("VersionAdded")
    def _version_added(self, effective_from: datetime, spec: dict, actor: dict) -> None:
        self.versions.append({"effective_from": effective_from, "spec": spec,
                              "version": len(self.versions) + 1})

    def spec_at(self, when: datetime) -> tuple[int, TariffSpec] | None:
        """The version number and spec in force at ``when`` (None before the first)."""
        found = None
        for version in self.versions:
            if version["effective_from"] <= when:
                found = version
        if found is None:
            return None
        return found["version"], TariffSpec.from_dict(found["spec"])

    def change_points(self, start: datetime, end: datetime) -> list[datetime]:
        return [v["effective_from"] for v in self.versions if start < v["effective_from"] < end]
