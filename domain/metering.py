"""From two cumulative readings to an exact charge: slicing, attribution and rounding.

An interval between two readings is cut only where the price in effect can change: where
the tariff version in effect changes (a new version of the meter's tariff, or another
tariff assigned), at the start of a local month (tiers and rounding restart), and, for
meters without band registers, at each segment start of the time-of-use schedule in
effect at that instant. Versions of tariffs the meter does not have at the time, and
versions or assignments that start after the interval, cut nothing: announcing a price
never reprices energy already used. Energy is attributed to the pieces in proportion to
their duration (the meter cannot say more), apportioned in whole Wh with the
largest-remainder method so that the pieces add up exactly to the measured energy.

A meter with band registers: the total register is the measured energy, divided among the
bands in proportion to the band registers (which leaves them as measured when they add up
to it). When any part of the interval is under a time-of-use tariff, each band's energy
is attributed to the pieces, and a piece under another tariff takes the sum of its bands;
otherwise the band registers play no part. Either way the pieces add up to the total.

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

    def as_dict(self) -> dict:
        """``dataclasses.asdict(self)`` (the same keys in the same order), without its
        recursive copy: every field is a str or an int."""
        return {"month": self.month, "energy_wh": self.energy_wh,
                "cost_units": self.cost_units, "charged_fen": self.charged_fen}


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


Found = tuple[str, int, TariffSpec] | None  # what TariffAt answers


def tariff_periods(start: datetime, end: datetime, tariff_at: TariffAt,
                   change_points: Sequence[datetime]) -> list[tuple[datetime, datetime, Found]]:
    """The interval cut where the tariff version in effect changes, and nowhere else.

    ``change_points`` are candidates (every assignment of the meter and every version of
    every tariff it had); one counts only where the tariff or version in effect differs
    from the one just before it, so a version of a tariff the meter no longer has, or one
    taking effect after the interval, changes nothing.
    """
    periods: list[tuple[datetime, Found]] = [(start, tariff_at(start))]
    for point in sorted({p for p in change_points if start < p < end}):
        found = tariff_at(point)
        if _version_key(found) != _version_key(periods[-1][1]):
            periods.append((point, found))
    ends = [p for p, _ in periods[1:]] + [end]
    return [(a, b, found) for (a, found), b in zip(periods, ends)]


def _version_key(found: Found) -> tuple[str, int] | None:
    return None if found is None else (found[0], found[1])


def band_mix(energy_wh: int, band_energy_wh: dict[str, int] | None) -> dict[str, int] | None:
    """The measured energy divided among the bands as the band registers say.

    The total register is the measured energy; band registers round on their own, so
    their sum may differ from it by a few units. The total is divided in proportion to
    them (largest remainder), which leaves them unchanged when they add up to it. None
    when there are no band registers, or they did not advance while the total did: the
    schedule then says which band the energy was used in.
    """
    if band_energy_wh is None:
        return None
    weights = [band_energy_wh.get(band, 0) for band in BANDS]
    if sum(weights) == 0:
        return None if energy_wh else dict.fromkeys(BANDS, 0)
    return dict(zip(BANDS, largest_remainder(energy_wh, weights)))


def price_interval(*, start: datetime, end: datetime, energy_wh: int,
                   band_energy_wh: dict[str, int] | None, tariff_at: TariffAt,
                   change_points: Sequence[datetime], zone: ZoneInfo,
                   month: MonthState) -> Priced:
    """Price the energy measured between two readings. Pure; raises ``NoTariff``.

    The priced pieces' energies always add up exactly to ``energy_wh``.
    """
    assert start < end and energy_wh >= 0
    periods = tariff_periods(start, end, tariff_at, change_points)
    for a, _, found in periods:
        if found is None:
            raise NoTariff(f"no tariff in effect at {a.isoformat()}")
    mix = band_mix(energy_wh, band_energy_wh)
    cuts = {a for a, _, _ in periods[1:]} | set(month_starts_between(start, end, zone))
    if mix is None:  # only the schedule in effect in each period can cut it
        for a, b, found in periods:
            assert found is not None
            cuts |= set(schedule_starts_between(a, b, zone, [found[2]]))
    bounds = [start, *sorted(cuts), end]
    pieces = list(zip(bounds, bounds[1:]))
    weights = [int((b - a) / timedelta(microseconds=1)) for a, b in pieces]

    if mix is not None and any(f is not None and f[2].kind == "tou" for _, _, f in periods):
        # Band registers matter: each band's energy is attributed to the pieces, and a
        # piece under a tariff without bands takes the sum of its bands.
        split = {band: largest_remainder(mix[band], weights) for band in BANDS}
        per_piece: list[dict[str | None, int]] = [
            {band: split[band][i] for band in BANDS} for i in range(len(pieces))]
    else:
        per_piece = [{None: e} for e in largest_remainder(energy_wh, weights)]

    slices: list[Slice] = []
    charge_fen = 0
    state = month
    period = 0
    for (a, b), energies in zip(pieces, per_piece):
        while periods[period][1] <= a:
            period += 1
        found = periods[period][2]
        assert found is not None
        tariff_id, version, spec = found
        piece_month = local_month(a, zone)
        if piece_month != state.month:
            charge_fen += round_cost_to_fen(state.cost_units) - state.charged_fen
            state = MonthState(piece_month)
        if spec.kind != "tou":  # one price whatever the band: the piece's energy counts
            energies = {None: sum(energies.values())}
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
    assert sum(s.energy_wh for s in slices) == energy_wh
    rounded = round_cost_to_fen(state.cost_units)
    charge_fen += rounded - state.charged_fen
    state = replace(state, charged_fen=rounded)
    assert charge_fen >= 0, charge_fen
    return Priced(tuple(slices), charge_fen, state)
