"""From two cumulative readings to an exact charge: slicing, attribution and rounding.

An interval between two readings is cut wherever something that changes the price
happens inside it: a new tariff version, the start of a local month (tiers and rounding
restart), and, for meters without band registers under a time-of-use tariff, the start
of each schedule segment in the site's local time. Energy is attributed to the pieces in
proportion to their duration (the meter cannot say more), apportioned in whole Wh with
the largest-remainder method so that the pieces add up exactly to the measured energy.
A meter with band registers reports each band's energy itself; under a time-of-use
tariff those are priced as measured, under any other tariff the total register is.

Rounding never drifts: the meter keeps the month's exact cost (in 1e-5 fen) and the fen
already charged for the month; each reading charges round(cost after) - charged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from domain.allocation import largest_remainder
from domain.tariff import BANDS, TariffSpec, price_by_tiers, round_cost_to_fen

REGISTER_WH = 10  # electricity registers count 0.01 kWh
REGISTER_MAX = 2**32 - 1  # UINT32 registers roll over to 0 after this
ROLLOVER_WINDOW = 2**32 // 10  # a fall from the top tenth to the bottom tenth is a rollover

TariffAt = Callable[[datetime], "tuple[str, int, TariffSpec] | None"]


@dataclass(frozen=True)
class MonthState:
    month: str  # local "YYYY-MM"
    energy_wh: int = 0
    cost_units: int = 0
    charged_fen: int = 0


@dataclass(frozen=True)
class Slice:
    start: datetime
    end: datetime
    month: str
    tariff_id: str
    tariff_version: int
    band: str | None
    tier: int
    energy_wh: int
    cost_units: int

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "month": self.month, "tariff_id": self.tariff_id,
                "tariff_version": self.tariff_version, "band": self.band, "tier": self.tier,
                "energy_wh": self.energy_wh, "cost_units": self.cost_units}


@dataclass(frozen=True)
class Priced:
    slices: tuple[Slice, ...]
    charge_fen: int
    month_after: MonthState


class NoTariff(Exception):
    """No tariff version is in effect for part of the interval."""


def register_delta(before: int, after: int) -> int | None:
    """Units the register advanced by; None when it went backwards (not a rollover)."""
    if after >= before:
        return after - before
    if before > REGISTER_MAX - ROLLOVER_WINDOW and after < ROLLOVER_WINDOW:
        return after + REGISTER_MAX + 1 - before
    return None


def local_month(when: datetime, tz: ZoneInfo) -> str:
    local = when.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def month_starts_between(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    points = []
    local = start.astimezone(tz)
    year, month = local.year, local.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        point = datetime(year, month, 1, tzinfo=tz).astimezone(timezone.utc)
        if point >= end:
            return points
        points.append(point)


def schedule_starts_between(start: datetime, end: datetime, tz: ZoneInfo,
                            specs: Sequence[TariffSpec]) -> list[datetime]:
    """Local schedule segment starts of every time-of-use spec, between start and end."""
    points: set[datetime] = set()
    day: date = start.astimezone(tz).date()
    last: date = end.astimezone(tz).date()
    while day <= last:
        for spec in specs:
            if spec.kind != "tou":
                continue
            for minute in spec.boundaries_minutes(day.month):
                local = datetime(day.year, day.month, day.day, minute // 60, minute % 60,
                                 tzinfo=tz)
                point = local.astimezone(timezone.utc)
                if start < point < end:
                    points.add(point)
        day += timedelta(days=1)
    return sorted(points)


def price_interval(*, start: datetime, end: datetime, energy_wh: int,
                   band_energy_wh: dict[str, int] | None, tariff_at: TariffAt,
                   change_points: Sequence[datetime], zone: ZoneInfo,
                   month: MonthState) -> Priced:
    """Price the energy measured between two readings. Pure; raises ``NoTariff``."""
    assert start < end and energy_wh >= 0
    specs_seen = [found[2] for found in (tariff_at(start),
                                         *(tariff_at(p) for p in change_points)) if found]
    cuts = set(change_points) | set(month_starts_between(start, end, zone))
    if band_energy_wh is None:
        cuts |= set(schedule_starts_between(start, end, zone, specs_seen))
    bounds = [start, *sorted(c for c in cuts if start < c < end), end]
    pieces = list(zip(bounds, bounds[1:]))
    weights = [int((b - a) / timedelta(microseconds=1)) for a, b in pieces]

    totals = largest_remainder(energy_wh, weights)
    if band_energy_wh is None:
        per_piece = [{None: e} for e in totals]
    else:
        split = {band: largest_remainder(band_energy_wh.get(band, 0), weights) for band in BANDS}
        per_piece = [{band: split[band][i] for band in BANDS} for i in range(len(pieces))]

    slices: list[Slice] = []
    charge_fen = 0
    state = month
    for (a, b), energies, total in zip(pieces, per_piece, totals):
        found = tariff_at(a)
        if found is None:
            raise NoTariff(f"no tariff in effect at {a.isoformat()}")
        tariff_id, version, spec = found
        piece_month = local_month(a, zone)
        if piece_month != state.month:
            charge_fen += round_cost_to_fen(state.cost_units) - state.charged_fen
            state = MonthState(piece_month)
        if spec.kind != "tou":  # one price whatever the band: the total register counts
            energies = {None: total}
        elif None in energies:  # no band registers: the schedule says which band
            energies = {spec.band_at(a.astimezone(zone)): energies[None]}
        for band, energy in energies.items():
            if energy == 0:
                continue
            for tier, piece_energy, cost in price_by_tiers(spec, band, energy, state.energy_wh):
                slices.append(Slice(a, b, piece_month, tariff_id, version, band, tier,
                                    piece_energy, cost))
                state = replace(state, energy_wh=state.energy_wh + piece_energy,
                                cost_units=state.cost_units + cost)
    rounded = round_cost_to_fen(state.cost_units)
    charge_fen += rounded - state.charged_fen
    state = replace(state, charged_fen=rounded)
    assert charge_fen >= 0, charge_fen
    return Priced(tuple(slices), charge_fen, state)
