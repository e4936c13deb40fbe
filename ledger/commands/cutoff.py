"""Cut-off commands: the policies, holidays and timetables staff set, and the run of the
agenda (trips planned for later, timetable switches).

A setting changes one book: a site's (policy, holidays, its meters' timetables) or an
account's (its own overrides). The decisions are pure: they see the books only through
``load`` and the world outside only through their context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.cutoff import wanted_relay
from domain.errors import MeterNotFound, SiteNotFound
from domain.meter import Meter
from domain.site import DEFAULT_TIMEZONE, Site
from ledger.arrears import account_book, site_book
from ledger.commands.base import Command
from ledger.core.types import Loader
from ledger.relays import ENFORCEMENT, order_relay


@dataclass(frozen=True)
class CutoffContext:
    """What a cut-off decision needs from outside: who asks, the time, and (for a
    meter's timetable) the site whose book holds it, found before."""

    actor: dict
    now: datetime | None = None
    site_id: UUID | str | None = None


@dataclass(frozen=True)
class SetSiteCutoffPolicy(Command):
    """A site's friendly hours, grace and restore threshold."""

    action: ClassVar[str] = "set_site_cutoff_policy"
    site_id: UUID
    settings: Mapping[str, Any]
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.site_id)

    def decide(self, load: Loader, ctx: CutoffContext) -> tuple[list[Any], dict[str, Any]]:
        book = site_book(load, self.site_id)
        book.set_policy(dict(self.settings), ctx.actor)
        return [book], {}


@dataclass(frozen=True)
class AddHoliday(Command):
    """A date in the site's holiday calendar."""

    action: ClassVar[str] = "add_holiday"
    site_id: UUID
    day: date
    name: str
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.site_id)

    def decide(self, load: Loader, ctx: CutoffContext) -> tuple[list[Any], dict[str, Any]]:
        book = site_book(load, self.site_id)
        book.add_holiday(self.day, self.name, ctx.actor)
        return [book], {}


@dataclass(frozen=True)
class RemoveHoliday(Command):
    """A date taken out of the site's holiday calendar."""

    action: ClassVar[str] = "remove_holiday"
    site_id: UUID
    day: date
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.site_id)

    def decide(self, load: Loader, ctx: CutoffContext) -> tuple[list[Any], dict[str, Any]]:
        book = site_book(load, self.site_id)
        book.remove_holiday(self.day, ctx.actor)
        return [book], {}


@dataclass(frozen=True)
class SetAccountCutoffPolicy(Command):
    """An account's own friendly hours, grace and restore threshold."""

    action: ClassVar[str] = "set_account_cutoff_policy"
    account_id: UUID
    settings: Mapping[str, Any]
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.account_id)

    def decide(self, load: Loader, ctx: CutoffContext) -> tuple[list[Any], dict[str, Any]]:
        book = account_book(load, self.account_id)
        book.set_overrides(dict(self.settings), ctx.actor)
        return [book], {}


@dataclass(frozen=True)
class SetMeterTimetable(Command):
    """A meter's weekly switching timetable (表定时拉合闸), or, with None, none."""

    action: ClassVar[str] = "set_meter_timetable"
    meter_id: UUID
    settings: Mapping[str, Any] | None
    idempotency_key: str | None = None

    def target(self) -> str:
        return str(self.meter_id)

    def decide(self, load: Loader, ctx: CutoffContext) -> tuple[list[Any], dict[str, Any]]:
        book = site_book(load, ctx.site_id)
        if self.settings is None:
            book.clear_timetable(self.meter_id, ctx.actor)
        else:
            book.set_timetable(self.meter_id, dict(self.settings), ctx.actor)
        return [book], {}


@dataclass(frozen=True)
class RunCutoff(Command):
    """Carry out the trips that fell due and the timetable switches whose time came, on
    these sites (and on meters without a site). The trips are enforcement's decisions;
    each switch is decided here, one meter at a time (``decide_one``)."""

    action: ClassVar[str] = "run_cutoff"
    site_ids: tuple[str, ...]
    idempotency_key: str | None = None

    def decide_one(self, load: Loader, ctx: CutoffContext, site_id: str | None,
                   meter_id: UUID) -> tuple[list[Any], dict[str, Any]]:
        """One meter's timetable switch, if it is still due."""
        now = ctx.now
        assert now is not None
        book = site_book(load, site_id)
        zone = zone_of_site(load, site_id)
        due = book.switch_due(str(meter_id), now, zone)
        if due is None:
            return [], {}
        at, state = due
        meter = load(meter_id, Meter, MeterNotFound)
        if meter.status != "active":
            book.record_switch(meter_id, at, state, None, meter.desired_relay,
                               "meter replaced", ENFORCEMENT)
            return [book], {}
        is_open = meter.desired_relay == "open"
        relay, why = wanted_relay(
            arrears_trip=is_open and meter.relay_reason == "arrears",
            manual_open=is_open and meter.relay_reason in ("manual", "overload"),
            keep_power=meter.keep_power, schedule_state=state)
        out: list[Any] = [book]
        command = None
        if relay != meter.desired_relay:
            action = "trip" if relay == "open" else "close"
            command = order_relay(
                meter, action, "schedule", f"schedule:{at.isoformat()}", now,
                reason=f"timetable: {state} at {at.astimezone(zone).isoformat()}")
            out += [meter, command]
        book.record_switch(meter_id, at, state, command.id if command else None,
                           relay, why, ENFORCEMENT)
        return out, {"issued": 1 if command else 0}


def zone_of_site(load: Loader, site_id: str | None) -> ZoneInfo:
    """The time zone of a site by id, the default when there is none."""
    if not site_id:
        return ZoneInfo(DEFAULT_TIMEZONE)
    try:
        return load(UUID(site_id), Site, SiteNotFound).zone
    except SiteNotFound:
        return ZoneInfo(DEFAULT_TIMEZONE)
