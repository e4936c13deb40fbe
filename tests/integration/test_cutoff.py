"""Cut-off the way malls run it, through the API and the enforcement process, on SQLite and
PostgreSQL, with a frozen clock the tests step: friendly hours, grace (credit limit and
grace period), restore thresholds, and a restart inside a friendly window."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from tests.conftest import login

API = "/api/v1"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SYSTEM = {"kind": "system", "id": "tests"}


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


@pytest.fixture
def mall(platform, client, clock):
    """A site in Shanghai with one shop and its prepaid electricity meter, at 10.00 yuan."""
    clock.now = local(2026, 11, 28, 12, 0)  # a Saturday
    ledger = platform.ledger
    site = ledger.metering.create_site(name="Mall", actor=SYSTEM)
    account = uuid.UUID(ledger.accounts.open_account(name="Noodle bar", site_id=str(site.id),
                                                     actor=SYSTEM).result["account_id"])
    gateway = ledger.metering.register_gateway(site_id=site.id, name="GW1", host="10.0.0.1",
                                               port=1502, protocol="modbus-tcp", actor=SYSTEM)
    meter = ledger.metering.register_meter(meter_no="000000000001", kind="electricity",
                                           mode="prepaid", gateway_id=gateway.id, address=1,
                                           profile="ref-prepaid-v1", account_id=account,
                                           actor=SYSTEM)
    ledger.accounts.top_up(account, amount_fen=1000, channel="cash", actor=SYSTEM)
    platform.enforce()
    return {"platform": platform, "ledger": ledger, "client": client, "clock": clock,
            "site": str(site.id), "account": account, "meter": meter.id}


def charge(mall, fen: int) -> None:
    """Spend (or, negative, pay) ``fen`` and let enforcement run."""
    ledger = mall["ledger"]
    if fen > 0:
        ledger.accounts.adjust(mall["account"], delta_fen=-fen, reason="usage", actor=SYSTEM,
                               force=True)
    else:
        ledger.accounts.top_up(mall["account"], amount_fen=-fen, channel="cash", actor=SYSTEM)
    mall["platform"].enforce()


def at(mall, when: datetime) -> None:
    mall["clock"].now = when
    mall["platform"].enforce()


def relay(mall) -> str:
    return mall["ledger"].metering.get_meter(mall["meter"]).desired_relay


def trips(mall) -> list[dict]:
    mall["platform"].catch_up()
    return [c for c in mall["platform"].device_queries.commands_of_meter(str(mall["meter"]))
            if c["action"] == "trip"]


def state(mall) -> dict:
    answer = mall["client"].get(f"{API}/meters/{mall['meter']}/state")
    assert answer.status_code == 200, answer.text
    return answer.json()["cutoff"]


def put_policy(mall, **body) -> dict:
    answer = mall["client"].put(f"{API}/sites/{mall['site']}/cutoff-policy", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


EVENINGS_AND_WEEKENDS = {"friendly_hours": {"daily": ["18:00-09:00"], "weekends": True}}


def test_the_default_policy_trips_at_zero_at_once(mall):
    charge(mall, 1000)
    assert relay(mall) == "open" and len(trips(mall)) == 1
    assert state(mall)["why"] == "arrears"


def test_arrears_on_a_saturday_evening_trip_when_the_window_ends(mall):
    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    at(mall, local(2026, 11, 28, 19, 30))
    charge(mall, 1120)  # -1.20 at dinner
    assert relay(mall) == "closed" and trips(mall) == []
    seen = state(mall)
    assert seen["why"] == "friendly-window"
    assert seen["until"] == local(2026, 11, 30, 9, 0).isoformat()
    assert seen["next_change"]["at"] == local(2026, 11, 30, 9, 0).isoformat()
    assert seen["next_change"]["relay"] == "open"
    assert "friendly window until" in seen["next_change"]["reason"]
    account = mall["client"].get(f"{API}/accounts/{mall['account']}").json()
    assert account["arrears"]["electricity"]["state"] == "hold"
    charge(mall, 100)  # more dinner: the same plan stands
    at(mall, local(2026, 11, 30, 8, 59, 59))
    assert relay(mall) == "closed"
    at(mall, local(2026, 11, 30, 9, 0))
    assert relay(mall) == "open"
    assert len(trips(mall)) == 1
    assert state(mall)["why"] == "arrears" and state(mall)["next_change"] is None
    at(mall, local(2026, 11, 30, 9, 5))
    charge(mall, 10)
    assert len(trips(mall)) == 1


def test_paid_inside_the_window_never_trips(mall):
    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    at(mall, local(2026, 11, 28, 19, 30))
    charge(mall, 1120)
    at(mall, local(2026, 11, 28, 23, 0))
    charge(mall, -5000)
    assert state(mall)["next_change"] is None
    for when in (local(2026, 11, 30, 9, 0), local(2026, 12, 1, 12, 0)):
        at(mall, when)
        assert relay(mall) == "closed"
    assert trips(mall) == []
    account = mall["client"].get(f"{API}/accounts/{mall['account']}").json()
    assert account["arrears"] == {}


def test_taking_a_window_away_trips_what_it_held_and_adding_one_holds_it_longer(mall):
    put_policy(mall, friendly_hours={"daily": ["18:00-09:00"]})
    at(mall, local(2026, 12, 4, 19, 30))  # a Friday evening
    charge(mall, 1100)
    assert state(mall)["next_change"]["at"] == local(2026, 12, 5, 9, 0).isoformat()
    put_policy(mall, **EVENINGS_AND_WEEKENDS)  # weekends too: held until Monday
    assert state(mall)["next_change"]["at"] == local(2026, 12, 7, 9, 0).isoformat()
    put_policy(mall)  # back to the plain rule: the arrears trip now
    assert relay(mall) == "open" and len(trips(mall)) == 1


def test_a_holiday_behaves_as_a_weekend(mall):
    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    added = mall["client"].post(f"{API}/sites/{mall['site']}/holidays",
                                json={"date": "2026-12-02", "name": "Mall anniversary"})
    assert added.status_code == 201, added.text
    assert added.json()["holidays"] == [{"date": "2026-12-02", "name": "Mall anniversary"}]
    at(mall, local(2026, 12, 2, 14, 0))  # a Wednesday afternoon, but a holiday
    charge(mall, 1100)
    assert relay(mall) == "closed"
    assert state(mall)["next_change"]["at"] == local(2026, 12, 3, 9, 0).isoformat()
    at(mall, local(2026, 12, 3, 9, 0))
    assert relay(mall) == "open"


def test_without_the_holiday_a_weekday_afternoon_trips_at_once(mall):
    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    client = mall["client"]
    client.post(f"{API}/sites/{mall['site']}/holidays", json={"date": "2026-12-02"})
    removed = client.delete(f"{API}/sites/{mall['site']}/holidays",
                            params={"date": "2026-12-02"})
    assert removed.status_code == 200 and removed.json()["holidays"] == []
    assert client.delete(f"{API}/sites/{mall['site']}/holidays",
                         params={"date": "2026-12-02"}).status_code == 404
    at(mall, local(2026, 12, 2, 14, 0))
    charge(mall, 1100)
    assert relay(mall) == "open"


@pytest.mark.parametrize("spent, wanted", [(5999, "closed"), (6001, "open")])
def test_a_credit_limit_keeps_power_down_to_it(mall, spent, wanted):
    put_policy(mall, credit_limit="50.00")
    at(mall, local(2026, 12, 1, 14, 0))  # a Tuesday afternoon: no friendly window
    charge(mall, spent)  # 10.00 - 59.99 = -49.99; 10.00 - 60.01 = -50.01
    assert relay(mall) == wanted
    if wanted == "closed":
        seen = state(mall)
        assert seen["why"] == "grace" and seen["next_change"] is None
        account = mall["client"].get(f"{API}/accounts/{mall['account']}").json()
        assert account["arrears"]["electricity"]["state"] == "grace"
        assert account["wallets"]["electricity"] == "-49.99"
        # In the trial balance the wallet (a liability) then has a debit balance: what
        # the shop owes, a receivable.
        rows = mall["client"].get(f"{API}/ledger/trial-balance").json()["accounts"]
        wallet = next(r for r in rows
                      if r["ledger_account"] == f"wallet:{mall['account']}:electricity")
        assert wallet["balance"] == "49.99"
        charge(mall, 2)  # -50.01
        assert relay(mall) == "open"
    assert len(trips(mall)) == 1


def test_a_grace_period_trips_exactly_when_it_runs_out_and_never_twice(mall):
    put_policy(mall, grace_period_hours=24)
    zero_at = local(2026, 12, 1, 14, 0)
    at(mall, zero_at)
    charge(mall, 1000)  # exactly zero
    seen = state(mall)
    assert seen["why"] == "grace" and seen["until"] == (zero_at + timedelta(hours=24)).isoformat()
    at(mall, zero_at + timedelta(hours=12))
    charge(mall, 300)  # further into arrears: the grace still runs from the first zero
    at(mall, zero_at + timedelta(hours=24) - timedelta(seconds=1))
    assert relay(mall) == "closed"
    at(mall, zero_at + timedelta(hours=24))
    assert relay(mall) == "open" and len(trips(mall)) == 1
    for hours in (25, 30):
        at(mall, zero_at + timedelta(hours=hours))
        charge(mall, 100)
    assert len(trips(mall)) == 1


def test_a_restore_threshold_closes_once_the_balance_passes_it(mall):
    put_policy(mall, restore_threshold="10.00")
    at(mall, local(2026, 12, 1, 14, 0))
    charge(mall, 1100)  # -1.00
    assert relay(mall) == "open"
    charge(mall, -600)  # 5.00, under 10.00
    assert relay(mall) == "open"
    assert mall["ledger"].accounts.get_account(mall["account"]).balance_fen("electricity") == 500
    charge(mall, -600)  # 11.00
    assert relay(mall) == "closed"
    charge(mall, -600)
    closes = [c for c in mall["platform"].device_queries.commands_of_meter(str(mall["meter"]))
              if c["action"] == "close"]
    assert len(closes) == 1


def test_an_account_override_wins_over_the_site(mall):
    put_policy(mall, credit_limit="50.00")
    answer = mall["client"].put(f"{API}/accounts/{mall['account']}/cutoff-policy",
                                json={"credit_limit": "0.00"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["overrides"] == {"credit_limit": "0.00"}
    at(mall, local(2026, 12, 1, 14, 0))
    charge(mall, 1500)
    assert relay(mall) == "open"


def test_manual_trips_are_not_held_back(mall):
    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    at(mall, local(2026, 11, 28, 19, 30))
    mall["ledger"].devices.command_meter(mall["meter"], action="trip", actor=SYSTEM)
    assert relay(mall) == "open" and state(mall)["why"] == "manual"


def test_every_setting_is_an_event_in_the_audit_log(mall):
    client = mall["client"]
    put_policy(mall, credit_limit="20.00")
    put_policy(mall, credit_limit="30.00", grace_period_hours=48)
    got = client.get(f"{API}/sites/{mall['site']}/cutoff-policy").json()
    assert got["credit_limit"] == "30.00" and got["grace_period_hours"] == 48
    log = client.get(f"{API}/audit/log", params={"action": "SiteCutoff.PolicySet"}).json()
    assert len(log["items"]) == 2
    assert log["items"][0]["actor"]["name"] == "test-admin"
    events = list(mall["ledger"].events.get(uuid.UUID(log["items"][1]["aggregate_id"])))
    changed = [e for e in events if type(e).__qualname__ == "SiteCutoff.PolicySet"][-1]
    assert changed.previous["credit_limit_fen"] == 2000
    assert changed.policy["credit_limit_fen"] == 3000


@pytest.mark.parametrize("body", [
    {"friendly_hours": {"daily": ["18:00-18:00"]}},
    {"friendly_hours": {"daily": ["25:00-09:00"]}},
    {"friendly_hours": {"daily": ["00:00-12:00", "11:00-00:00"]}},
    {"credit_limit": "-1.00"},
    {"grace_period_hours": -1},
    {"restore_threshold": "abc"},
    {"something": 1},
])
def test_bad_policies_are_refused_and_change_nothing(mall, body):
    before = mall["ledger"].recorder.max_notification_id()
    answer = mall["client"].put(f"{API}/sites/{mall['site']}/cutoff-policy", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert mall["ledger"].recorder.max_notification_id() == before


def test_alerts_say_in_grace_until(mall):
    put_policy(mall, grace_period_hours=24)
    zero_at = local(2026, 12, 1, 14, 0)
    at(mall, zero_at)
    charge(mall, 1100)
    platform = mall["platform"]
    texts = [platform.ledger.find(uuid.UUID(n)).text
             for n in platform.alert_queries.due_notifications(zero_at + timedelta(days=1))]
    arrears = [t for t in texts if "used up" in t]
    assert arrears and "in grace until 2026-12-02 14:00" in arrears[0]


def test_a_restart_inside_a_friendly_window_loses_no_pending_trip(settings, clock):
    clock.now = local(2026, 11, 28, 19, 30)
    first = Platform(settings, clock=clock)
    ledger = first.ledger
    site = ledger.metering.create_site(name="Mall", actor=SYSTEM)
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", site_id=str(site.id),
                                                     actor=SYSTEM).result["account_id"])
    gateway = ledger.metering.register_gateway(site_id=site.id, name="GW1", host="10.0.0.1",
                                               port=1502, protocol="modbus-tcp", actor=SYSTEM)
    meter = ledger.metering.register_meter(meter_no="000000000001", kind="electricity",
                                           mode="prepaid", gateway_id=gateway.id, address=1,
                                           profile="ref-prepaid-v1", account_id=account,
                                           actor=SYSTEM)
    ledger.cutoff.set_site_cutoff_policy(site.id, {"daily": ["18:00-09:00"], "weekends": True},
                                         {"kind": "operator", "id": "staff"})
    ledger.accounts.top_up(account, amount_fen=100, channel="cash", actor=SYSTEM)
    ledger.accounts.adjust(account, delta_fen=-300, reason="usage", actor=SYSTEM, force=True)
    first.enforce()
    assert ledger.metering.get_meter(meter.id).desired_relay == "closed"
    first.close()

    clock.now = local(2026, 11, 29, 10, 0)  # Sunday, still inside the window
    second = Platform(settings, clock=clock)
    try:
        second.enforce()
        assert second.ledger.metering.get_meter(meter.id).desired_relay == "closed"
        clock.now = local(2026, 11, 30, 9, 0)
        second.enforce()
        assert second.ledger.metering.get_meter(meter.id).desired_relay == "open"
        second.catch_up()
        assert [c["action"] for c in second.device_queries.commands_of_meter(
            str(meter.id))] == ["trip"]
    finally:
        second.close()


def test_a_tenant_sees_its_grace_but_may_not_change_it(mall):
    platform = mall["platform"]
    headers = login(platform, "shop", "shop-password", roles=("tenant",),
                    account_ids=(str(mall["account"]),))
    with TestClient(create_app(platform, background=False), headers=headers) as tenant:
        assert tenant.get(f"{API}/accounts/{mall['account']}/cutoff-policy").status_code == 200
        assert tenant.put(f"{API}/accounts/{mall['account']}/cutoff-policy",
                          json={"credit_limit": "999.00"}).status_code == 403


# -- timetables, against the meter simulator over Modbus TCP ------------------------------

from tests.integration.test_devices import sim, site, work  # noqa: E402,F401  (fixtures)

DAILY_7_TO_23 = {"switches": [{"at": "07:00", "state": "on"}, {"at": "23:00", "state": "off"}],
                 "holidays": ["2026-03-04"]}


def _common_area_meter(site):
    meters = site["sim"].simulation.gateways[0].meters
    sim_meter = next(m for a, m in meters.items() if a != site["sim_meter"].address)
    gateway = site["ledger"].metering.get_meter(site["meter"].id).gateway_id
    meter = site["ledger"].metering.register_meter(
        meter_no=sim_meter.meter_no, kind="electricity", mode="monitoring",
        gateway_id=gateway, address=sim_meter.address, profile="ref-prepaid-v1", actor={})
    site["platform"].catch_up()
    return meter, sim_meter


def _admin(site) -> TestClient:
    platform = site["platform"]
    return TestClient(create_app(platform, background=False), headers=login(platform))


def test_a_timetable_switches_a_common_area_across_a_week_with_a_holiday(site):
    clock = site["clock"]
    clock.now = local(2026, 3, 2, 5, 0)  # a Monday, before dawn
    meter, sim_meter = _common_area_meter(site)
    with _admin(site) as client:
        answer = client.put(f"{API}/meters/{meter.id}/timetable", json=DAILY_7_TO_23)
        assert answer.status_code == 200, answer.text
        assert answer.json()["timetable"]["switches"][0]["days"] == [
            "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        work(site)
        assert sim_meter.relay == 1  # off before 07:00
        state = client.get(f"{API}/meters/{meter.id}/state").json()["cutoff"]
        assert state["why"] == "schedule" and state["schedule"] == "off"
        assert state["next_change"]["at"] == local(2026, 3, 2, 7, 0).isoformat()
        assert state["next_change"]["relay"] == "closed"
    seen = []
    for day in range(2, 9):  # Monday 2 March to Sunday 8 March; Wednesday is a holiday
        for hour, minute in ((6, 59), (7, 0), (22, 59), (23, 0)):
            clock.now = local(2026, 3, day, hour, minute)
            work(site)
            seen.append(sim_meter.relay)
    on_off = [1, 0, 0, 1]
    assert seen == on_off * 2 + [1, 1, 1, 1] + on_off * 4
    commands = site["platform"].device_queries.commands_of_meter(str(meter.id), limit=100)
    assert len(commands) == 1 + 2 * 6
    assert all(c["status"] == "acknowledged" for c in commands)
    work(site)  # nothing is switched twice
    assert len(site["platform"].device_queries.commands_of_meter(str(meter.id),
                                                                 limit=100)) == 13


def test_arrears_win_over_the_timetable(site):
    clock, ledger = site["clock"], site["ledger"]
    meter, sim_meter = site["meter"], site["sim_meter"]
    clock.now = local(2026, 3, 2, 6, 0)  # a Monday
    ledger.cutoff.set_meter_timetable(meter.id, {
        "switches": [{"weekday": d, "at": at, "state": state} for d in range(7)
                     for at, state in (("07:00", "on"), ("23:00", "off"))]},
        {"kind": "operator", "id": "staff"})
    work(site)
    assert sim_meter.relay == 1  # the timetable has it off
    ledger.accounts.adjust(site["account"], delta_fen=-1500, reason="usage", actor={}, force=True)
    work(site)
    assert ledger.metering.get_meter(meter.id).relay_reason == "arrears"
    clock.now = local(2026, 3, 2, 7, 0)
    work(site)
    assert sim_meter.relay == 1  # the timetable would switch it on: arrears win
    assert ledger.cutoff.meter_cutoff_state(ledger.metering.get_meter(meter.id))["why"] == "arrears"
    ledger.accounts.top_up(site["account"], amount_fen=2000, channel="cash", actor={})
    work(site)
    assert sim_meter.relay == 0  # paid, and the timetable has it on
    clock.now = local(2026, 3, 2, 23, 0)
    work(site)
    assert sim_meter.relay == 1
    assert ledger.metering.get_meter(meter.id).relay_reason == "schedule"


def test_keep_power_ending_inside_a_friendly_window_does_not_trip_before_it_ends(mall):
    from adapters.scheduler import lapse_keep_power

    put_policy(mall, **EVENINGS_AND_WEEKENDS)
    at(mall, local(2026, 11, 28, 19, 30))
    mall["ledger"].devices.command_meter(mall["meter"], action="keep_power", reason="banquet",
                                         until=local(2026, 11, 28, 21, 0), actor=SYSTEM)
    charge(mall, 1500)
    assert relay(mall) == "closed" and state(mall)["why"] == "keep-power"
    at(mall, local(2026, 11, 28, 21, 0))
    assert lapse_keep_power(mall["platform"]) == 1
    assert relay(mall) == "closed"  # the friendly window still holds
    charge(mall, 10)  # the next charge plans the trip for the window's end
    assert state(mall)["next_change"]["at"] == local(2026, 11, 30, 9, 0).isoformat()
    at(mall, local(2026, 11, 30, 9, 0))
    assert relay(mall) == "open"
