"""Where an interval is cut, and that its pieces add up, checked against a reference pricer.

The reference below is written from docs/metering.md ("How an interval is priced") alone:
it shares no code with domain/metering.py or domain/tariff.py beyond parsing a spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.metering import MonthState, price_interval
from domain.tariff import TariffSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
BANDS = ("sharp", "peak", "flat", "valley")
PRICES = {"sharp": 15000, "peak": 10000, "flat": 6000, "valley": 3000}
SCHEDULE = [{"start": "00:00", "band": "valley"}, {"start": "08:00", "band": "peak"},
            {"start": "11:00", "band": "sharp"}, {"start": "13:00", "band": "flat"},
            {"start": "22:00", "band": "valley"}]
TOU = {"kind": "tou", "band_prices_1e4": PRICES, "schedule": SCHEDULE}
# The price change announced for April: dearer, and with other segment starts.
TOU_APRIL = {"kind": "tou",
             "band_prices_1e4": {"sharp": 16000, "peak": 11000, "flat": 6500, "valley": 3000},
             "schedule": [{"start": "00:00", "band": "valley"},
                          {"start": "07:30", "band": "flat"}, {"start": "09:30", "band": "peak"},
                          {"start": "11:30", "band": "sharp"}, {"start": "13:00", "band": "flat"},
                          {"start": "21:30", "band": "valley"}]}
FLAT = {"kind": "flat", "price_1e4": 6000}


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(timezone.utc)


@dataclass
class History:
    """A meter's tariff assignments and its tariffs' versions, as the ledger keeps them."""

    assignments: list[tuple[datetime, str]]  # (effective from, tariff name), in order
    versions: dict[str, list[tuple[datetime, dict]]] = field(default_factory=dict)

    def in_effect(self, when: datetime) -> tuple[str, int, dict] | None:
        names = [name for start, name in self.assignments if start <= when]
        if not names:
            return None
        found = [(n + 1, spec) for n, (start, spec) in enumerate(self.versions[names[-1]])
                 if start <= when]
        return (names[-1], *found[-1]) if found else None

    def tariff_at(self, when: datetime):
        found = self.in_effect(when)
        return None if found is None else (found[0], found[1], TariffSpec.from_dict(found[2]))

    def change_points(self) -> list[datetime]:
        """What the ledger hands the pricing: every assignment and every version."""
        return [start for start, _ in self.assignments] + [
            start for versions in self.versions.values() for start, _ in versions]


def price(history: History, start, end, energy_wh, bands=None, zone=SHANGHAI, month=None):
    return price_interval(start=start, end=end, energy_wh=energy_wh, band_energy_wh=bands,
                          tariff_at=history.tariff_at, change_points=history.change_points(),
                          zone=zone, month=month or MonthState(f"{start.astimezone(zone):%Y-%m}"))


def energy_by_band(priced) -> dict:
    out: dict = {}
    for piece in priced.slices:
        out[piece.band] = out.get(piece.band, 0) + piece.energy_wh
    return out


# -- the reference pricer ----------------------------------------------------------------

def shares(total: int, weights: list[int]) -> list[int]:
    """Largest remainder: floors, then one unit each to the largest remainders (ties to
    the earlier weight)."""
    whole = sum(weights)
    out = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:total - sum(out)]:
        out[i] += 1
    return out


def schedule_of(spec: dict, month: int) -> list[tuple[int, str]]:
    for season in spec.get("seasons") or ():
        if month in season["months"]:
            chosen = season["schedule"]
            break
    else:
        chosen = spec["schedule"]
    out = []
    for segment in chosen:
        hours, minutes = segment["start"].split(":")
        out.append((int(hours) * 60 + int(minutes), segment["band"]))
    return out


def reference_price(history: History, start: datetime, end: datetime, energy_wh: int,
                    bands: dict | None, zone: ZoneInfo, month: tuple[str, int, int, int]):
    """(piece energies, charge in fen, month after) as docs/metering.md describes them."""
    # 1. The tariff in effect, and the instants where it changes.
    changes = sorted({t for t in history.change_points() if start < t < end})
    periods = [(start, history.in_effect(start))]
    for t in changes:
        found = history.in_effect(t)
        if (found and found[:2]) != (periods[-1][1] and periods[-1][1][:2]):
            periods.append((t, found))
    assert all(found is not None for _, found in periods), "held: no tariff"
    period_ends = [t for t, _ in periods[1:]] + [end]
    # 2. Band registers: the total divided among the bands as they say.
    mix = None
    if bands is not None and sum(bands.values()) > 0:
        mix = dict(zip(BANDS, shares(energy_wh, [bands[b] for b in BANDS])))
    elif bands is not None and energy_wh == 0:
        mix = dict.fromkeys(BANDS, 0)
    # 3. The cuts: tariff changes, local month starts, and the in-effect schedule's starts.
    cuts = {t for t, _ in periods[1:]}
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        first = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)
        if day.day == 1 and start < first < end:
            cuts.add(first)
        for (a, found), b in zip(periods, period_ends):
            if mix is None and found[2]["kind"] == "tou":
                for minute, _ in schedule_of(found[2], day.month):
                    t = datetime(day.year, day.month, day.day, minute // 60, minute % 60,
                                 tzinfo=zone).astimezone(timezone.utc)
                    if a < t < b:
                        cuts.add(t)
        day += timedelta(days=1)
    bounds = [start, *sorted(cuts), end]
    pieces = list(zip(bounds, bounds[1:]))
    durations = [(b - a) // timedelta(microseconds=1) for a, b in pieces]
    by_band = mix is not None and any(found[2]["kind"] == "tou" for _, found in periods)
    if by_band:
        per_band = {band: shares(mix[band], durations) for band in BANDS}
        energies = [{band: per_band[band][i] for band in BANDS} for i in range(len(pieces))]
    else:
        energies = [{None: e} for e in shares(energy_wh, durations)]
    # 4. Prices, tiers on the month's energy, and the month's one rounding.
    name, month_energy, cost, charged = month
    charge = 0
    out = []
    for (a, _), energy in zip(pieces, energies):
        spec = [found for t, found in periods if t <= a][-1][2]
        here = a.astimezone(zone)
        if f"{here:%Y-%m}" != name:
            charge += (cost + 50_000) // 100_000 - charged
            name, month_energy, cost, charged = f"{here:%Y-%m}", 0, 0, 0
        if spec["kind"] != "tou":
            energy = {None: sum(energy.values())}
        elif None in energy:
            minute = here.hour * 60 + here.minute
            schedule = schedule_of(spec, here.month)
            band = [b for m, b in schedule if m <= minute][-1]
            energy = {band: energy[None]}
        for band, wh in energy.items():
            out.append(wh)
            tiers = spec.get("tiers") or [{"up_to_wh": None, "price_1e4": 0}]
            for tier in tiers:
                limit = tier["up_to_wh"]
                room = wh if limit is None else max(0, min(wh, limit - month_energy))
                if spec["kind"] == "flat":
                    unit = spec["price_1e4"]
                elif spec["kind"] == "tiered":
                    unit = tier["price_1e4"]
                else:
                    unit = spec["band_prices_1e4"][band] + tier["price_1e4"]
                cost += room * unit
                month_energy += room
                wh -= room
    rounded = (cost + 50_000) // 100_000
    charge += rounded - charged
    return out, charge, (name, month_energy, cost, rounded)


# -- concrete cases ----------------------------------------------------------------------

def test_a_reading_wholly_before_an_announced_price_change_keeps_its_price():
    start, end = local(SHANGHAI, 2026, 3, 10, 3, 0), local(SHANGHAI, 2026, 3, 10, 8, 35)
    now = History([(local(SHANGHAI, 2026, 1, 1), "t")],
                  {"t": [(local(SHANGHAI, 2026, 1, 1), TOU)]})
    announced = History(now.assignments, {"t": [*now.versions["t"],
                                                (local(SHANGHAI, 2026, 4, 1), TOU_APRIL)]})
    before, after = price(now, start, end, 18_640), price(announced, start, end, 18_640)
    # 5 h valley and 35 min peak: 16 693 Wh at 0.30 and 1 947 Wh at 1.00 is 6.9549 yuan.
    assert energy_by_band(before) == {"valley": 16_693, "peak": 1_947}
    assert before.charge_fen == 695
    assert after == before


def test_the_schedule_of_the_previous_tariff_does_not_cut_an_interval():
    start, end = local(SHANGHAI, 2026, 3, 10, 3, 0), local(SHANGHAI, 2026, 3, 10, 8, 35)
    history = History([(local(SHANGHAI, 2026, 1, 1), "old"), (local(SHANGHAI, 2026, 3, 1), "new")],
                      {"old": [(local(SHANGHAI, 2026, 1, 1), TOU_APRIL)],
                       "new": [(local(SHANGHAI, 2026, 1, 1), TOU)]})
    priced = price(history, start, end, 18_640)
    assert energy_by_band(priced) == {"valley": 16_693, "peak": 1_947}
    assert priced.charge_fen == 695


def test_a_version_of_a_tariff_the_meter_left_does_not_cut_an_interval():
    start, end = local(SHANGHAI, 2026, 3, 10, 3, 0), local(SHANGHAI, 2026, 3, 10, 8, 35)
    history = History([(local(SHANGHAI, 2026, 1, 1), "old"), (local(SHANGHAI, 2026, 3, 1), "new")],
                      {"old": [(local(SHANGHAI, 2026, 1, 1), FLAT),
                               (local(SHANGHAI, 2026, 3, 10, 5, 17), TOU_APRIL)],
                       "new": [(local(SHANGHAI, 2026, 1, 1), TOU)]})
    priced = price(history, start, end, 18_640)
    assert [(s.band, s.energy_wh) for s in priced.slices] == [("valley", 16_693),
                                                              ("peak", 1_947)]
    assert priced.charge_fen == 695


def flat_then_tou(switch: datetime) -> History:
    return History([(local(SHANGHAI, 2026, 1, 1), "flat"), (switch, "tou")],
                   {"flat": [(local(SHANGHAI, 2026, 1, 1), FLAT)],
                    "tou": [(local(SHANGHAI, 2026, 1, 1), TOU)]})


def test_a_switch_from_flat_to_time_of_use_with_band_registers_adds_up():
    start, end = local(SHANGHAI, 2026, 3, 10, 9), local(SHANGHAI, 2026, 3, 10, 10)
    history = flat_then_tou(local(SHANGHAI, 2026, 3, 10, 9, 40))
    bands = {"sharp": 1050, "peak": 2210, "flat": 140, "valley": 750}  # 4.15 kWh
    priced = price(history, start, end, 4150, bands)
    assert sum(s.energy_wh for s in priced.slices) == 4150
    # Each band's energy by duration, two thirds under the flat tariff:
    # flat tariff 700 + 1473 + 93 + 500 = 2766 Wh at 0.60; then 350 sharp, 737 peak,
    # 47 flat, 250 valley: 1.6596 + 1.3652 = 3.0248 yuan.
    assert [(s.tariff_id, s.band, s.energy_wh) for s in priced.slices] == [
        ("flat", None, 2766), ("tou", "sharp", 350), ("tou", "peak", 737),
        ("tou", "flat", 47), ("tou", "valley", 250)]
    assert priced.charge_fen == 302


def test_a_switch_from_time_of_use_to_flat_with_band_registers_adds_up():
    start, end = local(SHANGHAI, 2026, 3, 10, 9), local(SHANGHAI, 2026, 3, 10, 10)
    history = History([(local(SHANGHAI, 2026, 1, 1), "tou"),
                       (local(SHANGHAI, 2026, 3, 10, 9, 20), "flat")],
                      {"flat": [(local(SHANGHAI, 2026, 1, 1), FLAT)],
                       "tou": [(local(SHANGHAI, 2026, 1, 1), TOU)]})
    bands = {"sharp": 2040, "peak": 1400, "flat": 2720, "valley": 2840}  # 9.00 kWh
    priced = price(history, start, end, 9000, bands)
    assert sum(s.energy_wh for s in priced.slices) == 9000


def test_band_registers_that_do_not_add_up_to_the_total_divide_it():
    # Each register rounds on its own: here the bands say 4.16 kWh, the total 4.15 kWh.
    start, end = local(SHANGHAI, 2026, 3, 10, 9), local(SHANGHAI, 2026, 3, 10, 10)
    history = History([(start, "tou")], {"tou": [(start, TOU)]})
    priced = price(history, start, end, 4150, {"sharp": 0, "peak": 4160, "flat": 0,
                                               "valley": 0})
    assert energy_by_band(priced) == {"peak": 4150}
    assert priced.charge_fen == 415


def test_band_registers_that_did_not_move_leave_the_schedule_to_say():
    start, end = local(SHANGHAI, 2026, 3, 10, 7, 30), local(SHANGHAI, 2026, 3, 10, 8, 30)
    history = History([(start, "tou")], {"tou": [(start, TOU)]})
    priced = price(history, start, end, 1000, dict.fromkeys(BANDS, 0))
    assert energy_by_band(priced) == {"valley": 500, "peak": 500}


# -- properties --------------------------------------------------------------------------

MINUTE = timedelta(minutes=1)
# Around the end of March in Shanghai, so that month starts fall inside many intervals.
ORIGIN = local(SHANGHAI, 2026, 3, 30, 0, 0)


@st.composite
def schedules(draw):
    starts = sorted(draw(st.sets(st.integers(min_value=1, max_value=24 * 60 - 1), max_size=5)))
    return [{"start": f"{m // 60:02d}:{m % 60:02d}", "band": draw(st.sampled_from(BANDS))}
            for m in [0, *starts]]


@st.composite
def tier_lists(draw, allow_zero):
    limits = sorted(draw(st.sets(st.integers(min_value=1, max_value=60_000), min_size=0,
                                 max_size=2)))
    low = 0 if allow_zero else 1
    return [{"up_to_wh": limit, "price_1e4": draw(st.integers(min_value=low, max_value=20_000))}
            for limit in [*limits, None]]


@st.composite
def specs(draw):
    kind = draw(st.sampled_from(["flat", "tou", "tou", "tiered"]))
    if kind == "flat":
        return {"kind": "flat", "price_1e4": draw(st.integers(min_value=1, max_value=20_000))}
    if kind == "tiered":
        return {"kind": "tiered", "tiers": draw(tier_lists(False))}
    spec = {"kind": "tou", "schedule": draw(schedules()),
            "band_prices_1e4": {b: draw(st.integers(min_value=1, max_value=20_000))
                                for b in BANDS}}
    if draw(st.booleans()):
        spec["seasons"] = [{"months": [4], "schedule": draw(schedules())}]
    if draw(st.booleans()):
        spec["tiers"] = draw(tier_lists(True))
    return spec


@st.composite
def scenarios(draw):
    """A meter's tariff history and an interval inside it, with or without band registers."""
    start = ORIGIN + draw(st.integers(min_value=0, max_value=3 * 24 * 60)) * MINUTE \
        + timedelta(seconds=draw(st.integers(min_value=0, max_value=59)))
    end = start + draw(st.integers(min_value=1, max_value=2 * 24 * 60)) * MINUTE
    span = int((end - start) / MINUTE)

    def instant():  # inside the interval, mostly, or just around it
        return start + draw(st.integers(min_value=-60, max_value=span + 60)) * MINUTE

    names = ["a", "b", "c"][:draw(st.integers(min_value=1, max_value=3))]
    versions = {}
    for name in names:
        starts = sorted({instant() for _ in range(draw(st.integers(min_value=0, max_value=2)))})
        versions[name] = [(ORIGIN - timedelta(days=30), draw(specs()))] + [
            (t, draw(specs())) for t in starts]
    assignments = [(ORIGIN - timedelta(days=30), names[0])]
    for t in sorted({instant() for _ in range(draw(st.integers(min_value=0, max_value=3)))}):
        assignments.append((t, draw(st.sampled_from(names))))
    energy = draw(st.integers(min_value=0, max_value=80_000))
    bands = None
    if draw(st.booleans()):
        parts = [draw(st.integers(min_value=0, max_value=20_000)) for _ in BANDS]
        if draw(st.booleans()) and sum(parts):  # registers that add up to the total
            energy = sum(parts)
        bands = dict(zip(BANDS, parts))
    month = draw(st.sampled_from([(f"{start.astimezone(SHANGHAI):%Y-%m}", 0, 0, 0),
                                  (f"{start.astimezone(SHANGHAI):%Y-%m}", 55_000,
                                   55_000 * 6000 + 12_345, (55_000 * 6000 + 12_345
                                                            + 50_000) // 100_000)]))
    return History(assignments, versions), start, end, energy, bands, month


def month_state(month) -> MonthState:
    return MonthState(*month)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_pieces_add_up_and_agree_with_the_reference_to_the_fen(scenario):
    history, start, end, energy, bands, month = scenario
    priced = price(history, start, end, energy, bands, month=month_state(month))
    assert sum(s.energy_wh for s in priced.slices) == energy
    pieces, charge, month_after = reference_price(history, start, end, energy, bands,
                                                  SHANGHAI, month)
    assert sum(pieces) == energy
    assert priced.charge_fen == charge
    assert priced.month_after == month_state(month_after)


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.data())
def test_announcing_a_price_or_tariff_after_an_interval_changes_nothing_in_it(scenario, data):
    history, start, end, energy, bands, month = scenario
    priced = price(history, start, end, energy, bands, month=month_state(month))
    later = end + data.draw(st.integers(min_value=0, max_value=40 * 24 * 60)) * MINUTE
    name = data.draw(st.sampled_from(sorted(history.versions)))
    versions = dict(history.versions)
    if later > versions[name][-1][0]:
        versions[name] = [*versions[name], (later, data.draw(specs()))]
    assignments = list(history.assignments)
    if data.draw(st.booleans()) and later > assignments[-1][0]:
        assignments.append((later, data.draw(st.sampled_from(sorted(versions)))))
    announced = History(assignments, versions)
    assert price(announced, start, end, energy, bands, month=month_state(month)) == priced


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_a_new_version_of_a_tariff_not_in_effect_changes_nothing(scenario, data):
    history, start, end, energy, bands, month = scenario
    in_effect = {history.in_effect(t)[0] for t in [start, *history.change_points()]
                 if start <= t < end and history.in_effect(t)}
    idle = sorted(set(history.versions) - in_effect)
    if not idle:
        return
    priced = price(history, start, end, energy, bands, month=month_state(month))
    name = data.draw(st.sampled_from(idle))
    when = start + (end - start) * data.draw(st.floats(min_value=0.01, max_value=0.99))
    when = when.replace(microsecond=0)
    if when <= history.versions[name][-1][0]:
        return
    versions = {**history.versions, name: [*history.versions[name], (when, data.draw(specs()))]}
    assert price(History(history.assignments, versions), start, end, energy, bands,
                 month=month_state(month)) == priced


def test_a_month_state_is_stored_as_dataclasses_would_store_it() -> None:
    from dataclasses import asdict

    from domain.metering import MonthState

    for state in (MonthState("2026-03"), MonthState("2026-12", 1, 2, 3)):
        assert state.as_dict() == asdict(state)
        assert list(state.as_dict()) == list(asdict(state))  # the same keys, same order
