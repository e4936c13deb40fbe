"""Cut-off policies and timetables as pure functions, with the examples staff give."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cutoff import (CutoffPolicy, DailyWindow, FriendlyHours, PolicyError, Switch,
                           Timetable, decide_cutoff, should_restore, wanted_relay)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


EVENINGS_AND_WEEKENDS = CutoffPolicy(friendly=FriendlyHours(
    daily=(DailyWindow.parse("18:00-09:00"),), weekends=True,
    holidays=frozenset({date(2026, 10, 1)})))


def test_arrears_on_a_saturday_evening_trip_when_the_window_ends():
    # 2026-11-28 is a Saturday: the weekend window runs into Monday's 09:00 morning end.
    decision = decide_cutoff(EVENINGS_AND_WEEKENDS, -120, local(2026, 11, 28, 19, 30),
                             local(2026, 11, 28, 19, 30), SHANGHAI)
    assert decision.action == "hold"
    assert decision.until == local(2026, 11, 30, 9, 0)
    assert decision.until.tzinfo == timezone.utc
    at_the_end = decide_cutoff(EVENINGS_AND_WEEKENDS, -120, local(2026, 11, 28, 19, 30),
                               decision.until, SHANGHAI)
    assert at_the_end.action == "trip"


def test_paid_inside_the_window_never_trips():
    assert decide_cutoff(EVENINGS_AND_WEEKENDS, 5000, None, local(2026, 11, 30, 9, 0),
                         SHANGHAI).action == "none"


def test_a_weekday_afternoon_trips_at_once_and_a_holiday_is_a_weekend():
    assert decide_cutoff(EVENINGS_AND_WEEKENDS, 0, None, local(2026, 11, 25, 14, 0),
                         SHANGHAI).action == "trip"
    holiday = decide_cutoff(EVENINGS_AND_WEEKENDS, 0, None, local(2026, 10, 1, 14, 0),
                            SHANGHAI)
    assert holiday.action == "hold" and holiday.until == local(2026, 10, 2, 9, 0)


def test_a_window_within_one_day_and_the_plain_default():
    lunch = CutoffPolicy(friendly=FriendlyHours(daily=(DailyWindow.parse("11:00-14:00"),)))
    assert decide_cutoff(lunch, -1, None, local(2026, 11, 25, 13, 59), SHANGHAI).until == \
        local(2026, 11, 25, 14, 0)
    assert decide_cutoff(lunch, -1, None, local(2026, 11, 25, 14, 0), SHANGHAI).action == "trip"
    plain = CutoffPolicy()
    assert decide_cutoff(plain, 0, None, local(2026, 11, 28, 19, 30), SHANGHAI).action == "trip"
    assert decide_cutoff(plain, 1, None, local(2026, 11, 28, 19, 30), SHANGHAI).action == "none"


def test_credit_limit():
    limit = CutoffPolicy(credit_limit_fen=5000)
    now = local(2026, 11, 25, 14, 0)
    assert decide_cutoff(limit, -4999, now, now, SHANGHAI).action == "grace"
    assert decide_cutoff(limit, -5001, now, now, SHANGHAI).action == "trip"
    assert decide_cutoff(limit, -5000, now, now, SHANGHAI).action == "trip"


def test_grace_period_runs_out_exactly_once():
    day = CutoffPolicy(grace_period=timedelta(hours=24))
    zero_at = local(2026, 11, 25, 14, 0)
    decision = decide_cutoff(day, -300, zero_at, zero_at + timedelta(hours=5), SHANGHAI)
    assert decision.action == "grace" and decision.until == zero_at + timedelta(hours=24)
    assert "in grace until" in decision.reason
    assert decide_cutoff(day, -300, zero_at, decision.until - timedelta(seconds=1),
                         SHANGHAI).action == "grace"
    assert decide_cutoff(day, -300, zero_at, decision.until, SHANGHAI).action == "trip"


def test_credit_limit_and_grace_period_whichever_runs_out_first():
    both = CutoffPolicy(credit_limit_fen=5000, grace_period=timedelta(hours=24))
    zero_at = local(2026, 11, 25, 14, 0)
    assert decide_cutoff(both, -6000, zero_at, zero_at, SHANGHAI).action == "trip"
    assert decide_cutoff(both, -100, zero_at, zero_at + timedelta(hours=25),
                         SHANGHAI).action == "trip"
    assert decide_cutoff(both, -100, zero_at, zero_at + timedelta(hours=2),
                         SHANGHAI).action == "grace"


def test_grace_that_ends_inside_a_friendly_window_holds_until_the_window_ends():
    policy = CutoffPolicy(friendly=EVENINGS_AND_WEEKENDS.friendly,
                          grace_period=timedelta(hours=2))
    zero_at = local(2026, 11, 25, 17, 0)  # a Wednesday
    assert decide_cutoff(policy, -1, zero_at, local(2026, 11, 25, 19, 0),
                         SHANGHAI).until == local(2026, 11, 26, 9, 0)


def test_restore_threshold():
    policy = CutoffPolicy(restore_threshold_fen=1000)
    assert not should_restore(policy, 500)
    assert not should_restore(policy, 1000)
    assert should_restore(policy, 1001)
    assert should_restore(CutoffPolicy(), 1) and not should_restore(CutoffPolicy(), 0)


def test_timetable_on_at_seven_off_at_eleven_with_a_holiday_off_all_day():
    table = Timetable.daily("07:00", "23:00", holidays=frozenset({date(2026, 12, 2)}))
    assert table.state_at(local(2026, 12, 1, 6, 59), SHANGHAI) == "off"
    assert table.state_at(local(2026, 12, 1, 7, 0), SHANGHAI) == "on"
    assert table.state_at(local(2026, 12, 1, 23, 0), SHANGHAI) == "off"
    assert table.next_switch(local(2026, 12, 1, 7, 0), SHANGHAI) == (
        local(2026, 12, 1, 23, 0), "off")
    # 2 December is a holiday: no switching, so it stays off until the 3rd at 07:00.
    assert table.next_switch(local(2026, 12, 1, 23, 0), SHANGHAI) == (
        local(2026, 12, 3, 7, 0), "on")
    assert table.state_at(local(2026, 12, 2, 12, 0), SHANGHAI) == "off"


def test_weekday_timetable():
    weekdays = Timetable(tuple(Switch(day, time(8), "on") for day in range(5))
                         + tuple(Switch(day, time(20), "off") for day in range(5)))
    friday_night = local(2026, 11, 27, 20, 0)
    assert weekdays.next_switch(friday_night, SHANGHAI) == (local(2026, 11, 30, 8, 0), "on")
    assert weekdays.state_at(local(2026, 11, 29, 12, 0), SHANGHAI) == "off"


def test_precedence():
    assert wanted_relay(arrears_trip=True, manual_open=False, keep_power=True,
                        schedule_state="off") == ("closed", "keep-power")
    assert wanted_relay(arrears_trip=True, manual_open=False, keep_power=False,
                        schedule_state="on") == ("open", "arrears")
    assert wanted_relay(arrears_trip=False, manual_open=True, keep_power=False,
                        schedule_state="on") == ("open", "manual")
    assert wanted_relay(arrears_trip=False, manual_open=False, keep_power=False,
                        schedule_state="off") == ("open", "schedule")


def test_bad_settings_are_refused():
    for text in ("18:00", "25:00-09:00", "09:00-09:00", "a-b"):
        with pytest.raises(PolicyError):
            DailyWindow.parse(text)
    with pytest.raises(PolicyError, match="whole day"):
        FriendlyHours(daily=(DailyWindow.parse("18:00-09:00"), DailyWindow.parse("08:00-19:00")))
    with pytest.raises(PolicyError):
        CutoffPolicy(credit_limit_fen=-1)
    with pytest.raises(PolicyError):
        Switch(7, time(8), "on")


instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(timezone.utc))
windows = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23),
                    st.integers(0, 59)).filter(lambda t: t[:2] != t[2:]).map(
    lambda t: DailyWindow(time(t[0], t[1]), time(t[2], t[3])))


@given(instants, st.lists(windows, max_size=3), st.booleans())
def test_a_window_end_is_the_first_unfriendly_instant(moment, daily, weekends):
    try:
        friendly = FriendlyHours(daily=tuple(daily), weekends=weekends)
    except PolicyError:  # windows that leave no time of day to trip are refused
        covered = [any(w.contains(time(h, m)) for w in daily) for h in range(24)
                   for m in range(60)]
        assert all(covered)
        return
    end = friendly.window_end(moment, SHANGHAI)
    if end is None:
        assert not friendly.is_friendly(moment.astimezone(SHANGHAI))
        return
    assert end > moment and not friendly.is_friendly(end.astimezone(SHANGHAI))
    # friendly all the way: probe every minute boundary in between (at most a few days)
    probe = moment
    while probe < end and probe < moment + timedelta(days=4):
        assert friendly.is_friendly(probe.astimezone(SHANGHAI))
        probe += timedelta(minutes=13)


@given(instants)
def test_state_changes_exactly_at_the_next_switch(moment):
    table = Timetable.daily("07:00", "23:00")
    at, state = table.next_switch(moment, SHANGHAI)
    assert table.state_at(at, SHANGHAI) == state
    assert table.state_at(at - timedelta(seconds=1), SHANGHAI) != state


def test_a_book_carries_out_each_switch_once_and_a_new_timetable_applies_at_once():
    from uuid import uuid4

    from domain.cutoff import SiteCutoff

    book = SiteCutoff.start(None)
    meter = uuid4()
    staff = {"kind": "operator", "id": "staff"}
    book.set_timetable(meter, {"switches": [{"weekday": d, "at": at, "state": s}
                                            for d in range(7)
                                            for at, s in (("07:00", "on"), ("23:00", "off"))]},
                       staff)
    now = local(2026, 12, 1, 12, 0)
    assert book.switch_due(str(meter), now, SHANGHAI) == (local(2026, 12, 1, 7, 0), "on")
    book.record_switch(meter, local(2026, 12, 1, 7, 0), "on", None, "closed", "schedule",
                       staff)
    assert book.switch_due(str(meter), now, SHANGHAI) is None
    assert book.switch_due(str(meter), local(2026, 12, 1, 23, 0), SHANGHAI) == (
        local(2026, 12, 1, 23, 0), "off")
    assert not book.set_timetable(meter, book.timetables[str(meter)], staff)  # no change


def test_stored_settings_are_checked():
    from domain.cutoff import check_policy, check_timetable

    assert check_policy({}, partial=False)["credit_limit_fen"] == 0
    assert check_policy({"credit_limit_fen": 5000}, partial=True) == {"credit_limit_fen": 5000}
    for bad in ({"daily": ["09:00-09:00"]}, {"credit_limit_fen": -1}, {"limit": 1}):
        with pytest.raises(PolicyError):
            check_policy(bad, partial=True)
    with pytest.raises(PolicyError):
        check_timetable({"switches": []})
    with pytest.raises(PolicyError):
        check_timetable({"switches": [{"weekday": 0, "at": "07:00", "state": "dim"}]})
