"""Cut-off policies (friendly hours, grace, restore threshold), holiday calendars and
meter timetables: each change is an event naming who made it and what it replaced."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from api import render
from api.auth import allow
from api.deps import actor, parse_id
from api.schemas import MONEY_SCHEMA, Strict, _to_fen
from api.services import Accounts, Cutoff, Metering, ReadModels
from domain.cutoff import SiteCutoff
from ledger.accounts import AccountService
from ledger.commands import (
    AddHoliday,
    RemoveHoliday,
    SetAccountCutoffPolicy,
    SetMeterTimetable,
    SetSiteCutoffPolicy,
)
from ledger.cutoff import CutoffService

router = APIRouter(tags=["cut-off"])
Actor = Annotated[dict, Depends(actor)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


def _not_negative(fen: int) -> int:
    if fen < 0:
        raise ValueError("must not be negative")
    return fen


Fen = Annotated[int, BeforeValidator(_to_fen), AfterValidator(_not_negative),
                WithJsonSchema(MONEY_SCHEMA)]
Window = Annotated[str, Field(pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$", examples=["18:00-09:00"])]
Hours = Annotated[float, Field(ge=0, le=24 * 90)]


class FriendlyHoursIn(Strict):
    daily: Annotated[list[Window], Field(max_length=8)] = []
    weekends: bool = False


class SitePolicyIn(Strict):
    """The whole policy: what is left out takes the default (no friendly hours, no
    grace, restore above 0.00: a wallet at or below zero trips at once)."""

    friendly_hours: FriendlyHoursIn = FriendlyHoursIn()
    credit_limit: Fen = Field(0, description="the wallet may go down to minus this; "
                                             "at or below it trips")
    grace_period_hours: Hours = Field(0, description="after the balance first reaches zero")
    restore_threshold: Fen = Field(0, description="after an arrears trip, close only above")


class AccountPolicyIn(Strict):
    """An account's own settings over its site's: what is left out (or null) is the
    site's."""

    friendly_hours: FriendlyHoursIn | None = None
    credit_limit: Fen | None = None
    grace_period_hours: Hours | None = None
    restore_threshold: Fen | None = None


class HolidayIn(Strict):
    date: date
    name: Annotated[str, Field(max_length=100)] = ""


class SwitchIn(Strict):
    days: Annotated[list[Literal[DAYS]], Field(min_length=1, max_length=7)] = list(DAYS)
    at: Annotated[str, Field(pattern=HHMM, examples=["07:00"])]
    state: Literal["on", "off"]


class HolidaySwitchIn(Strict):
    at: Annotated[str, Field(pattern=HHMM)]
    state: Literal["on", "off"]


class TimetableIn(Strict):
    switches: Annotated[list[SwitchIn], Field(min_length=1, max_length=100)]
    holidays: Annotated[list[date], Field(max_length=400)] = Field(
        [], description="this meter's own exceptions, besides the site's holiday calendar")
    holiday_switches: Annotated[list[HolidaySwitchIn], Field(max_length=20)] = Field(
        [], description="on a holiday these replace the weekday's (none: no switching)")


def _settings(body: SitePolicyIn | AccountPolicyIn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.friendly_hours is not None:
        out["daily"] = list(body.friendly_hours.daily)
        out["weekends"] = body.friendly_hours.weekends
    if body.credit_limit is not None:
        out["credit_limit_fen"] = body.credit_limit
    if body.grace_period_hours is not None:
        out["grace_period_s"] = round(body.grace_period_hours * 3600)
    if body.restore_threshold is not None:
        out["restore_threshold_fen"] = body.restore_threshold
    return out


def policy_out(settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "daily" in settings or "weekends" in settings:
        out["friendly_hours"] = {"daily": settings.get("daily", []),
                                 "weekends": settings.get("weekends", False)}
    if "credit_limit_fen" in settings:
        out["credit_limit"] = render.yuan(settings["credit_limit_fen"])
    if "grace_period_s" in settings:
        out["grace_period_hours"] = settings["grace_period_s"] / 3600
    if "restore_threshold_fen" in settings:
        out["restore_threshold"] = render.yuan(settings["restore_threshold_fen"])
    return out


def site_body(book: SiteCutoff, site_id: str) -> dict[str, Any]:
    return {"site_id": site_id, **policy_out(book.policy),
            "holidays": [{"date": d, "name": n} for d, n in sorted(book.holidays.items())]}


@router.get("/sites/{site_id}/cutoff-policy", summary="A site's cut-off policy and holidays",
            **allow("sites.read"))
def get_site_policy(site_id: str, metering: Metering, cutoff: Cutoff) -> dict[str, Any]:
    the_id = parse_id(site_id, "site")
    metering.get_site(the_id)
    return site_body(cutoff.site_cutoff(the_id), str(the_id))


@router.put("/sites/{site_id}/cutoff-policy",
            summary="Set a site's friendly hours, grace and restore threshold",
            **allow("cutoff.write"))
def put_site_policy(site_id: str, body: SitePolicyIn, cutoff: Cutoff, catch_up: ReadModels,
                    who: Actor) -> dict[str, Any]:
    the_id = parse_id(site_id, "site")
    book = cutoff.carry_out_site_setting(SetSiteCutoffPolicy(the_id, _settings(body)), who)
    catch_up()
    return site_body(book, str(the_id))


@router.post("/sites/{site_id}/holidays", status_code=201,
             summary="Add a date to the site's holiday calendar", **allow("cutoff.write"))
def add_holiday(site_id: str, body: HolidayIn, cutoff: Cutoff, catch_up: ReadModels,
                who: Actor) -> JSONResponse:
    the_id = parse_id(site_id, "site")
    book = cutoff.carry_out_site_setting(AddHoliday(the_id, body.date, body.name), who)
    catch_up()
    return JSONResponse(site_body(book, str(the_id)), status_code=201)


@router.delete("/sites/{site_id}/holidays",
               summary="Remove a date from the site's holiday calendar",
               **allow("cutoff.write"))
def remove_holiday(site_id: str, cutoff: Cutoff, catch_up: ReadModels, who: Actor,
                   day: Annotated[date, Query(alias="date")]) -> dict[str, Any]:
    the_id = parse_id(site_id, "site")
    book = cutoff.carry_out_site_setting(RemoveHoliday(the_id, day), who)
    catch_up()
    return site_body(book, str(the_id))


def account_body(accounts: AccountService, cutoff: CutoffService, account_id) -> dict[str, Any]:
    account = accounts.get_account(account_id)
    state = cutoff.account_cutoff_state(account_id)
    return {"account_id": str(account_id), "site_id": account.site_id,
            "overrides": policy_out(state["overrides"]),
            "arrears": render_arrears(state["wallets"])}


def render_arrears(wallets: dict[str, dict]) -> dict[str, Any]:
    return {wallet: {"since": s["since"], "state": s["action"], "until": s["until"],
                     "reason": s["reason"]} for wallet, s in wallets.items()}


@router.get("/accounts/{account_id}/cutoff-policy",
            summary="An account's own cut-off settings and the arrears it is in",
            **allow("accounts.read"))
def get_account_policy(account_id: str, accounts: Accounts, cutoff: Cutoff) -> dict[str, Any]:
    return account_body(accounts, cutoff, parse_id(account_id, "account"))


@router.put("/accounts/{account_id}/cutoff-policy",
            summary="Set an account's own friendly hours, grace and restore threshold",
            **allow("cutoff.write"))
def put_account_policy(account_id: str, body: AccountPolicyIn, accounts: Accounts,
                       cutoff: Cutoff, catch_up: ReadModels, who: Actor) -> dict[str, Any]:
    the_id = parse_id(account_id, "account")
    cutoff.carry_out_account_policy(SetAccountCutoffPolicy(the_id, _settings(body)), who)
    catch_up()
    return account_body(accounts, cutoff, the_id)


def timetable_body(cutoff: CutoffService, meter) -> dict[str, Any]:
    found = cutoff.site_cutoff(meter.site_id).timetables.get(str(meter.id))
    return {"meter_id": str(meter.id), "timetable": timetable_out(found)}


def timetable_out(found: dict | None) -> dict[str, Any] | None:
    if found is None:
        return None
    by_time: dict[tuple[str, str], list[str]] = {}
    for switch in found["switches"]:
        by_time.setdefault((switch["at"], switch["state"]), []).append(
            DAYS[switch["weekday"]])
    return {"switches": [{"days": days, "at": at, "state": state}
                         for (at, state), days in sorted(by_time.items())],
            "holidays": found["holidays"], "holiday_switches": found["holiday_switches"]}


@router.get("/meters/{meter_id}/timetable", summary="A meter's weekly switching timetable",
            **allow("meters.read"))
def get_timetable(meter_id: str, metering: Metering, cutoff: Cutoff) -> dict[str, Any]:
    return timetable_body(cutoff, metering.get_meter(parse_id(meter_id, "meter")))


@router.put("/meters/{meter_id}/timetable",
            summary="Switch a meter on and off at set times of the week (表定时拉合闸)",
            **allow("cutoff.write"))
def put_timetable(meter_id: str, body: TimetableIn, metering: Metering, cutoff: Cutoff,
                  catch_up: ReadModels, who: Actor) -> dict[str, Any]:
    meter = metering.get_meter(parse_id(meter_id, "meter"))
    settings = {
        "switches": [{"weekday": DAYS.index(day), "at": s.at, "state": s.state}
                     for s in body.switches for day in sorted(set(s.days), key=DAYS.index)],
        "holidays": sorted({d.isoformat() for d in body.holidays}),
        "holiday_switches": [{"at": s.at, "state": s.state} for s in body.holiday_switches]}
    cutoff.carry_out_timetable(SetMeterTimetable(meter.id, settings), who)
    catch_up()
    return timetable_body(cutoff, meter)


@router.delete("/meters/{meter_id}/timetable", summary="Stop a meter's timetable",
               **allow("cutoff.write"))
def delete_timetable(meter_id: str, metering: Metering, cutoff: Cutoff, catch_up: ReadModels,
                     who: Actor) -> dict[str, Any]:
    meter = metering.get_meter(parse_id(meter_id, "meter"))
    cutoff.carry_out_timetable(SetMeterTimetable(meter.id, None), who)
    catch_up()
    return timetable_body(cutoff, meter)

