"""The cut-off commands on the in-memory event store: no database, no threads (group
commit off), a clock the tests set. Each command's decision (what it would save, what it
answers) on the stored state, its errors, and the command carried out through
``Ledger.execute``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.cutoff import AccountCutoff, HolidayNotFound, PolicyError, SiteCutoff
from domain.device_command import DeviceCommand
from domain.errors import AccountNotFound, MeterNotFound, NotFound, SiteNotFound
from domain.meter import Meter
from ledger.app import Ledger
from ledger.commands import (
    AddHoliday,
    CutoffContext,
    RemoveHoliday,
    RunCutoff,
    SetAccountCutoffPolicy,
    SetMeterTimetable,
    SetSiteCutoffPolicy,
)
from ledger.relays import ENFORCEMENT
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)  # a Monday, noon in Shanghai
STAFF = {"kind": "operator", "id": "staff"}
# On every day from 07:00 to 23:00 local time.
DAILY = {"switches": [{"weekday": d, "at": at, "state": state} for d in range(7)
                      for at, state in (("07:00", "on"), ("23:00", "off"))]}
# Off all day Monday and on the rest of the week (so at NOW the meter is to be off).
OFF_ON_MONDAY = {"switches": [{"weekday": 0, "at": "00:00", "state": "off"},
                              {"weekday": 1, "at": "00:00", "state": "on"}]}


@pytest.fixture
def ledger():
    # No env: the library's in-memory recorder. One command per write: no committer thread.
    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1)
    yield ledger
    ledger.close()


def shop(ledger: Ledger, balance_fen: int = 1000) -> Meter:
    """A site, an account at ``balance_fen`` and its prepaid electricity meter."""
    site = ledger.metering.create_site(name="Mall", actor=STAFF)
    account = uuid.UUID(ledger.accounts.open_account(name="Noodle bar", site_id=str(site.id),
                                            actor=STAFF).result["account_id"])
    if balance_fen:
        ledger.accounts.adjust(account, delta_fen=balance_fen, reason="opening", actor=STAFF,
                      force=True)
    return ledger.metering.register_meter(meter_no="000000000001", kind="electricity",
                                 mode="prepaid", gateway_id=None, address=1,
                                 profile="ref-prepaid-v1", actor=STAFF, account_id=account,
                                 site_id=site.id)


STAFF_CTX = CutoffContext(STAFF)


# -- a site's policy and calendar ------------------------------------------------------


def test_a_site_policy_is_decided_on_the_site_book_started_on_first_use(ledger):
    meter = shop(ledger)
    saved, answer = SetSiteCutoffPolicy(meter.site_id, {"grace_period_s": 3600}).decide(
        ledger.load, STAFF_CTX)
    [book] = saved
    assert isinstance(book, SiteCutoff) and answer == {}
    assert book.policy["grace_period_s"] == 3600


def test_an_unknown_policy_setting_is_refused(ledger):
    meter = shop(ledger)
    with pytest.raises(PolicyError, match="unknown policy settings"):
        SetSiteCutoffPolicy(meter.site_id, {"grace": 1}).decide(ledger.load, STAFF_CTX)


def test_a_site_policy_carried_out_by_the_ledger_decides_planned_trips_again(ledger):
    meter = shop(ledger, balance_fen=100)
    ledger.execute(SetSiteCutoffPolicy(meter.site_id, {"grace_period_s": 3600}), STAFF)
    spend = ledger.accounts.adjust(meter.account_id, delta_fen=-300, reason="usage", actor=STAFF,
                          force=True)
    ledger.devices.enforce_balances([(meter.id, "electricity", -200,
                              spend.result["transaction_id"])])
    assert ledger.cutoff.site_cutoff(meter.site_id).plan_of(meter.id) is not None
    book = ledger.execute(SetSiteCutoffPolicy(meter.site_id, {"grace_period_s": 0}), STAFF)
    assert book.plan_of(meter.id) is None  # no grace any more: tripped at once
    assert ledger.metering.get_meter(meter.id).desired_relay == "open"
    with pytest.raises(SiteNotFound):
        ledger.execute(SetSiteCutoffPolicy(uuid.uuid4(), {"grace_period_s": 0}), STAFF)


def test_a_holiday_is_added_and_removed(ledger):
    meter = shop(ledger)
    saved, _ = AddHoliday(meter.site_id, NOW.date(), "Spring").decide(ledger.load, STAFF_CTX)
    assert saved[0].holidays == {NOW.date().isoformat(): "Spring"}
    book = ledger.execute(AddHoliday(meter.site_id, NOW.date(), "Spring"), STAFF)
    assert book.holidays == {NOW.date().isoformat(): "Spring"}
    saved, _ = RemoveHoliday(meter.site_id, NOW.date()).decide(ledger.load, STAFF_CTX)
    assert saved[0].holidays == {}
    book = ledger.execute(RemoveHoliday(meter.site_id, NOW.date()), STAFF)
    assert book.holidays == {}


def test_removing_a_day_not_in_the_calendar_is_refused(ledger):
    meter = shop(ledger)
    with pytest.raises(HolidayNotFound):
        RemoveHoliday(meter.site_id, NOW.date()).decide(ledger.load, STAFF_CTX)
    with pytest.raises(HolidayNotFound):
        ledger.execute(RemoveHoliday(meter.site_id, NOW.date()), STAFF)
    with pytest.raises(SiteNotFound):
        ledger.execute(AddHoliday(uuid.uuid4(), NOW.date(), "Spring"), STAFF)


# -- an account's own policy ------------------------------------------------------------


def test_an_account_override_is_decided_on_its_book(ledger):
    meter = shop(ledger)
    saved, answer = SetAccountCutoffPolicy(meter.account_id, {"credit_limit_fen": 500}).decide(
        ledger.load, STAFF_CTX)
    assert isinstance(saved[0], AccountCutoff) and answer == {}
    assert saved[0].overrides == {"credit_limit_fen": 500}
    with pytest.raises(PolicyError, match="unknown policy settings"):
        SetAccountCutoffPolicy(meter.account_id, {"credit": 500}).decide(ledger.load,
                                                                          STAFF_CTX)


def test_an_account_override_carried_out_by_the_ledger(ledger):
    meter = shop(ledger)
    book = ledger.execute(SetAccountCutoffPolicy(meter.account_id,
                                                 {"credit_limit_fen": 500}), STAFF)
    assert book.overrides == {"credit_limit_fen": 500}
    with pytest.raises(AccountNotFound):
        ledger.execute(SetAccountCutoffPolicy(uuid.uuid4(), {"credit_limit_fen": 500}),
                       STAFF)


# -- a meter's timetable ----------------------------------------------------------------


def test_a_timetable_is_decided_on_the_book_of_the_site_it_was_given(ledger):
    meter = shop(ledger)
    context = CutoffContext(STAFF, site_id=meter.site_id)
    saved, _ = SetMeterTimetable(meter.id, DAILY).decide(ledger.load, context)
    assert str(meter.id) in saved[0].timetables
    with pytest.raises(NotFound, match="no timetable"):
        SetMeterTimetable(meter.id, None).decide(ledger.load, context)
    with pytest.raises(PolicyError, match="at least one switch"):
        SetMeterTimetable(meter.id, {"switches": []}).decide(ledger.load, context)


def test_a_timetable_set_and_cleared_by_the_ledger(ledger):
    meter = shop(ledger)
    book = ledger.execute(SetMeterTimetable(meter.id, DAILY), STAFF)
    assert str(meter.id) in book.timetables
    book = ledger.execute(SetMeterTimetable(meter.id, None), STAFF)
    assert book.timetables == {}
    with pytest.raises(MeterNotFound):
        ledger.execute(SetMeterTimetable(uuid.uuid4(), DAILY), STAFF)


# -- the agenda -------------------------------------------------------------------------


def test_a_due_switch_trips_the_meter_once(ledger):
    meter = shop(ledger)
    ledger.execute(SetMeterTimetable(meter.id, OFF_ON_MONDAY), STAFF)
    command = RunCutoff((str(meter.site_id),))
    context = CutoffContext(ENFORCEMENT, now=NOW)
    saved, answer = command.decide_one(ledger.load, context, str(meter.site_id), meter.id)
    assert answer == {"issued": 1}
    trips = [a for a in saved if isinstance(a, DeviceCommand)]
    assert [(c.action, c.payload) for c in trips] == [("trip", {"relay": "open"})]
    assert ledger.execute(command, ENFORCEMENT) == 1
    assert ledger.metering.get_meter(meter.id).relay_reason == "schedule"
    assert ledger.execute(command, ENFORCEMENT) == 0  # carried out already
    assert command.decide_one(ledger.load, context, str(meter.site_id), meter.id) == ([], {})


def test_a_switch_that_asks_for_the_relay_as_it_is_records_it_and_issues_nothing(ledger):
    meter = shop(ledger)
    ledger.execute(SetMeterTimetable(meter.id, DAILY), STAFF)  # noon: on, as it is
    saved, answer = RunCutoff(()).decide_one(
        ledger.load, CutoffContext(ENFORCEMENT, now=NOW), str(meter.site_id), meter.id)
    assert answer == {"issued": 0}
    assert [type(a) for a in saved] == [SiteCutoff]


def test_a_planned_trip_falls_due_and_is_carried_out_by_the_ledger(ledger):
    meter = shop(ledger, balance_fen=100)
    ledger.execute(SetSiteCutoffPolicy(meter.site_id, {"grace_period_s": 600}), STAFF)
    spend = ledger.accounts.adjust(meter.account_id, delta_fen=-300, reason="usage", actor=STAFF,
                          force=True)
    ledger.devices.enforce_balances([(meter.id, "electricity", -200,
                              spend.result["transaction_id"])])
    command = RunCutoff((str(meter.site_id),))
    assert ledger.execute(command, ENFORCEMENT) == 0
    ledger.clock.now = NOW + timedelta(minutes=10)
    assert ledger.execute(command, ENFORCEMENT) == 1
    assert ledger.metering.get_meter(meter.id).desired_relay == "open"
