"""Tariff maths as tables of cases: bands, tiers, tariff changes, months, time zones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import largest_remainder
from domain.errors import InvalidRequest
from domain.metering import MonthState, price_interval, register_delta
from domain.tariff import TariffSpec, round_cost_to_fen

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
FLAT = TariffSpec.from_dict({"kind": "flat", "price_1e4": 6000})  # 0.60 yuan per kWh
TOU = TariffSpec.from_dict({
    "kind": "tou",
    "band_prices_1e4": {"sharp": 15000, "peak": 10000, "flat": 6000, "valley": 3000},
    "schedule": [{"start": "00:00", "band": "valley"}, {"start": "08:00", "band": "peak"},
                 {"start": "11:00", "band": "sharp"}, {"start": "13:00", "band": "flat"},
                 {"start": "22:00", "band": "valley"}]})
TIERED = TariffSpec.from_dict({"kind": "tiered", "tiers": [
    {"up_to_wh": 100_000, "price_1e4": 5000}, {"up_to_wh": None, "price_1e4": 8000}]})


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(timezone.utc)


def one(spec):
    return lambda when: ("t1", 1, spec)


def price(start, end, energy_wh, spec=FLAT, zone=SHANGHAI, bands=None, month=None,
          tariff_at=None, changes=()):
    return price_interval(start=start, end=end, energy_wh=energy_wh, band_energy_wh=bands,
                          tariff_at=tariff_at or one(spec), change_points=list(changes),
                          zone=zone, month=month or MonthState(f"{start.astimezone(zone):%Y-%m}"))


def energy_by(priced, key):
    out = {}
    for s in priced.slices:
        out[getattr(s, key)] = out.get(getattr(s, key), 0) + s.energy_wh
    return out


def test_flat_price():
    priced = price(local(SHANGHAI, 2026, 3, 2, 10), local(SHANGHAI, 2026, 3, 2, 10, 30), 1000)
    assert priced.charge_fen == 60  # 1 kWh at 0.60 yuan
    assert priced.month_after == MonthState("2026-03", 1000, 6_000_000, 60)


@pytest.mark.parametrize("start, end, expected", [
    ((7, 30), (8, 30), {"valley": 500, "peak": 500}),
    ((10, 0), (12, 0), {"peak": 500, "sharp": 500}),
    ((21, 0), (23, 0), {"flat": 500, "valley": 500}),
    ((9, 0), (10, 0), {"peak": 1000}),
])
def test_time_of_use_without_band_registers_splits_by_local_schedule(start, end, expected):
    priced = price(local(SHANGHAI, 2026, 3, 2, *start), local(SHANGHAI, 2026, 3, 2, *end),
                   1000, TOU)
    assert energy_by(priced, "band") == expected


def test_band_registers_are_priced_as_measured():
    bands = {"sharp": 100, "peak": 200, "flat": 300, "valley": 400}
    priced = price(local(SHANGHAI, 2026, 3, 2, 9), local(SHANGHAI, 2026, 3, 2, 9, 30), 1000,
                   TOU, bands=bands)
    assert energy_by(priced, "band") == bands
    exact = 100 * 15000 + 200 * 10000 + 300 * 6000 + 400 * 3000
    assert priced.charge_fen == round_cost_to_fen(exact)


def test_a_tier_boundary_inside_one_interval():
    month = MonthState("2026-03", energy_wh=99_500, cost_units=99_500 * 5000,
                       charged_fen=round_cost_to_fen(99_500 * 5000))
    priced = price(local(SHANGHAI, 2026, 3, 20, 10), local(SHANGHAI, 2026, 3, 20, 11), 1000,
                   TIERED, month=month)
    assert [(s.tier, s.energy_wh) for s in priced.slices] == [(0, 500), (1, 500)]
    assert priced.charge_fen == round_cost_to_fen(500 * 5000 + 500 * 8000)


def test_a_tariff_change_inside_one_interval():
    change = local(SHANGHAI, 2026, 3, 2, 12)
    dearer = TariffSpec.from_dict({"kind": "flat", "price_1e4": 9000})

    def tariff_at(when):
        return ("t1", 2, dearer) if when >= change else ("t1", 1, FLAT)

    priced = price(local(SHANGHAI, 2026, 3, 2, 11), local(SHANGHAI, 2026, 3, 2, 13), 2000,
                   tariff_at=tariff_at, changes=[change])
    assert [(s.tariff_version, s.energy_wh) for s in priced.slices] == [(1, 1000), (2, 1000)]
    assert priced.charge_fen == 60 + 90


def test_a_local_month_boundary_restarts_tiers_and_rounding():
    month = MonthState("2026-03", energy_wh=150_000,
                       cost_units=100_000 * 5000 + 50_000 * 8000, charged_fen=9_000)
    priced = price(local(SHANGHAI, 2026, 3, 31, 23, 30), local(SHANGHAI, 2026, 4, 1, 0, 30),
                   2000, TIERED, month=month)
    assert [(s.month, s.tier, s.energy_wh) for s in priced.slices] == [
        ("2026-03", 1, 1000), ("2026-04", 0, 1000)]
    assert priced.month_after == MonthState("2026-04", 1000, 5_000_000, 50)
    assert priced.charge_fen == 80 + 50


def test_month_boundary_is_local_not_utc():
    # 2026-03-31 16:30 UTC is 2026-04-01 00:30 in Shanghai.
    start = datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)
    priced = price(start, start + timedelta(hours=1), 1000)
    assert energy_by(priced, "month") == {"2026-03": 500, "2026-04": 500}


def test_daylight_saving_day_uses_real_elapsed_time():
    # Berlin springs forward at 02:00 on 2026-03-29: 01:30 to 03:30 local is one hour.
    start = local(BERLIN, 2026, 3, 29, 1, 30)
    end = local(BERLIN, 2026, 3, 29, 3, 30)
    assert end - start == timedelta(hours=1)
    spec = TariffSpec.from_dict({
        "kind": "tou",
        "band_prices_1e4": {"sharp": 4, "peak": 3, "flat": 2, "valley": 1},
        "schedule": [{"start": "00:00", "band": "valley"}, {"start": "03:00", "band": "peak"}]})
    priced = price(start, end, 1000, spec, zone=BERLIN)
    assert energy_by(priced, "band") == {"valley": 500, "peak": 500}


def test_seasons_choose_the_schedule_by_local_month():
    spec = TariffSpec.from_dict({
        "kind": "tou",
        "band_prices_1e4": {"sharp": 4, "peak": 3, "flat": 2, "valley": 1},
        "schedule": [{"start": "00:00", "band": "flat"}],
        "seasons": [{"months": [7, 8], "schedule": [{"start": "00:00", "band": "sharp"}]}]})
    assert spec.band_at(datetime(2026, 7, 1, 12)) == "sharp"
    assert spec.band_at(datetime(2026, 3, 1, 12)) == "flat"


@pytest.mark.parametrize("spec", [
    {"kind": "flat"},
    {"kind": "flat", "price_1e4": 0},
    {"kind": "tou", "band_prices_1e4": {"peak": 1}, "schedule": [{"start": "00:00",
                                                                  "band": "peak"}]},
    {"kind": "tou", "band_prices_1e4": {"sharp": 1, "peak": 1, "flat": 1, "valley": 1},
     "schedule": [{"start": "01:00", "band": "peak"}]},
    {"kind": "tou", "band_prices_1e4": {"sharp": 1, "peak": 1, "flat": 1, "valley": 1},
     "schedule": [{"start": f"{h:02d}:00", "band": "peak"} for h in range(15)]},
    {"kind": "tiered", "tiers": [{"up_to_wh": 5, "price_1e4": 1},
                                 {"up_to_wh": 3, "price_1e4": 1},
                                 {"up_to_wh": None, "price_1e4": 1}]},
    {"kind": "tiered", "tiers": [{"up_to_wh": 5, "price_1e4": 1}]},
    {"kind": "gas"},
])
def test_invalid_tariffs_are_refused(spec):
    with pytest.raises(InvalidRequest):
        TariffSpec.from_dict(spec)


@pytest.mark.parametrize("before, after, delta", [
    (100, 150, 50), (100, 100, 0), (100, 99, None),
    (2**32 - 10, 5, 15),  # rollover of a UINT32 register
    (2**31, 5, None),  # a fall from the middle is not a rollover
])
def test_register_deltas(before, after, delta):
    assert register_delta(before, after) == delta


@given(st.integers(min_value=0, max_value=10**9),
       st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30)
       .filter(lambda w: sum(w) > 0))
def test_largest_remainder_adds_up_and_stays_within_one_unit(total, weights):
    shares = largest_remainder(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights):
        assert abs(share * sum(weights) - total * weight) < sum(weights)


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=120),
                          st.integers(min_value=0, max_value=50_000)), min_size=1, max_size=60),
       st.integers(min_value=1, max_value=20_000))
def test_charges_within_a_month_sum_to_the_rounded_total(steps, price_1e4):
    spec = TariffSpec.from_dict({"kind": "flat", "price_1e4": price_1e4})
    when = local(SHANGHAI, 2026, 3, 1, 0, 30)
    month = MonthState("2026-03")
    charged = total = 0
    for minutes, energy in steps:
        nxt = when + timedelta(minutes=minutes)
        priced = price(when, nxt, energy, spec, month=month)
        charged += priced.charge_fen
        total += energy
        month, when = priced.month_after, nxt
    assert charged == round_cost_to_fen(total * price_1e4)
