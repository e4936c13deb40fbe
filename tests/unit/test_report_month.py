"""The month a money event counts in for the account-period report (Shanghai time),
remembered per minute: the same answer as converting every time, at every offset."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.accounts.view import REPORT_ZONE, _report_month

MONTH_START = datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)  # 2026-02-01 00:00 Shanghai
OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=8), timedelta(hours=5, minutes=30),
                           timedelta(hours=-3, minutes=-45), timedelta(hours=2, seconds=17)])


@settings(max_examples=2000)
@given(around=st.integers(-4 * 3600 * 10**6, 4 * 3600 * 10**6), offset=OFFSETS)
def test_the_month_near_a_month_start_is_the_converted_months(around, offset):
    when = (MONTH_START + timedelta(microseconds=around)).astimezone(timezone(offset))
    assert _report_month(when) == when.astimezone(REPORT_ZONE).strftime("%Y-%m")


def test_one_microsecond_either_side_of_midnight_in_shanghai():
    for offset in (timedelta(hours=5, minutes=30), timedelta(0), timedelta(hours=-10)):
        zone = timezone(offset)
        assert _report_month((MONTH_START - timedelta(microseconds=1)).astimezone(zone)) \
            == "2026-01"
        assert _report_month(MONTH_START.astimezone(zone)) == "2026-02"
