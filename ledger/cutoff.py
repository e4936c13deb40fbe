"""Cut-off policies, holiday calendars and timetables as staff set them, and the agenda
enforcement keeps: trips planned for later and timetable switches.

The rules are pure functions in ``domain/cutoff.py``; the arrears decisions themselves are
made in ``enforce_balances`` (``ledger/devices.py``) with the shared cut-off rules of
``ledger/arrears.py``, which this feature keeps its books with too. What it needs of other
features (an account, a site or a meter, enforcement) comes in through its constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from domain.account import Account
from domain.cutoff import AccountCutoff, SiteCutoff, account_cutoff_id, site_cutoff_id
from domain.meter import Meter
from domain.site import Site
from ledger.commands import (
    AddHoliday,
    Command,
    CutoffContext,
    Handler,
    RemoveHoliday,
    RunCutoff,
    SetAccountCutoffPolicy,
    SetMeterTimetable,
    SetSiteCutoffPolicy,
)
from ledger.arrears import changed, effective_balance  # noqa: F401  (importable from here)
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.outcome import Outcome
from ledger.relays import ENFORCEMENT, site_zone, zone_of


SETTINGS = "cutoff-settings"


class AccountReader(Protocol):
    """The accounts a policy override is set on."""

    def get_account(self, account_id: UUID) -> Account: ...


class SiteReader(Protocol):
    """The sites and meters (of metering) that policies and timetables are set on."""

    def get_site(self, site_id: UUID) -> Site: ...

    def get_meter(self, meter_id: UUID) -> Meter: ...


class Enforcement(Protocol):
    """What carries out arrears decisions on meters (devices' enforcement)."""

    def enforce_balances(self, decisions: list[tuple[UUID, str, int, str]]) -> int: ...


class CutoffService:
    """Cut-off settings and the agenda, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 accounts: AccountReader, sites: SiteReader,
                 enforcement: Enforcement) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.accounts = accounts
        self.sites = sites
        self.enforcement = enforcement

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {SetSiteCutoffPolicy: self.carry_out_site_setting,
                AddHoliday: self.carry_out_site_setting,
                RemoveHoliday: self.carry_out_site_setting,
                SetAccountCutoffPolicy: self.carry_out_account_policy,
                SetMeterTimetable: self.carry_out_timetable,
                RunCutoff: self.carry_out_run}

    # -- staff settings ----------------------------------------------------------------

    def set_site_cutoff_policy(self, site_id: UUID, settings: dict[str, Any],
                               actor: dict) -> SiteCutoff:
        return self.carry_out_site_setting(SetSiteCutoffPolicy(site_id, settings), actor)

    def add_holiday(self, site_id: UUID, day: date, name: str,
                    actor: dict) -> SiteCutoff:
        return self.carry_out_site_setting(AddHoliday(site_id, day, name), actor)

    def remove_holiday(self, site_id: UUID, day: date, actor: dict) -> SiteCutoff:
        return self.carry_out_site_setting(RemoveHoliday(site_id, day), actor)

    def carry_out_site_setting(self, command: SetSiteCutoffPolicy | AddHoliday |
                               RemoveHoliday, actor: dict) -> SiteCutoff:
        """A change to a site's policy or calendar; the planned trips are decided again."""
        site_id = command.site_id
        self.sites.get_site(site_id)
        ctx = CutoffContext(actor)
        self.bus.write(site_cutoff_id(site_id), uuid4(), SETTINGS,
                       lambda load: command.decide(load, ctx))
        self._redecide_plans(site_id)
        return self.site_cutoff(site_id)

    def set_account_cutoff_policy(self, account_id: UUID, settings: dict[str, Any],
                                  actor: dict) -> AccountCutoff:
        return self.carry_out_account_policy(SetAccountCutoffPolicy(account_id, settings),
                                             actor)

    def carry_out_account_policy(self, command: SetAccountCutoffPolicy,
                                 actor: dict) -> AccountCutoff:
        account_id = command.account_id
        self.accounts.get_account(account_id)
        ctx = CutoffContext(actor)
        self.bus.write(account_cutoff_id(account_id), uuid4(), SETTINGS,
                       lambda load: command.decide(load, ctx))
        return self.account_cutoff(account_id)

    def set_meter_timetable(self, meter_id: UUID, settings: dict[str, Any] | None,
                            actor: dict) -> SiteCutoff:
        """Set (or, with None, clear) a meter's weekly timetable."""
        return self.carry_out_timetable(SetMeterTimetable(meter_id, settings), actor)

    def carry_out_timetable(self, command: SetMeterTimetable, actor: dict) -> SiteCutoff:
        meter = self.sites.get_meter(command.meter_id)
        ctx = CutoffContext(actor, site_id=meter.site_id)
        self.bus.write(site_cutoff_id(meter.site_id), uuid4(), SETTINGS,
                       lambda load: command.decide(load, ctx))
        return self.site_cutoff(meter.site_id)

    def _redecide_plans(self, site_id: UUID) -> int:
        """The policy or the calendar changed: decide the planned trips again now (a
        window taken away trips at once, a longer one plans later)."""
        book = self.site_cutoff(site_id)
        decisions = []
        for meter_id, plan in book.plans.items():
            meter = self.store.find(UUID(meter_id), Meter)
            if isinstance(meter, Meter):
                decisions.append((meter.id, meter.kind, 0, plan["cause"]))
        return self.enforcement.enforce_balances(decisions) if decisions else 0

    def site_cutoff(self, site_id: UUID | str | None) -> SiteCutoff:
        """A site's cut-off book (the defaults, unsaved, if nothing was ever set)."""
        found = self.store.find(site_cutoff_id(site_id), SiteCutoff)
        return found if isinstance(found, SiteCutoff) else SiteCutoff.start(site_id)

    def account_cutoff(self, account_id: UUID) -> AccountCutoff:
        found = self.store.find(account_cutoff_id(account_id), AccountCutoff)
        return found if isinstance(found, AccountCutoff) else AccountCutoff.start(account_id)

    # -- what a client reads -----------------------------------------------------------

    def account_cutoff_state(self, account_id: UUID) -> dict[str, Any]:
        """Per wallet in arrears: since when, and what enforcement last decided."""
        book = self.account_cutoff(account_id)
        return {"overrides": dict(book.overrides),
                "wallets": {wallet: dict(state) for wallet, state in book.arrears.items()}}

    def meter_cutoff_state(self, meter: Meter) -> dict[str, Any]:
        """Why the relay is as it is, and the changes planned for it."""
        now = self.clock()
        book = self.site_cutoff(meter.site_id)
        zone = zone_of(meter, self.store.load)
        arrears = None
        if meter.account_id is not None:
            arrears = self.account_cutoff(meter.account_id).arrears_of(meter.kind)
        table = book.timetable_of(meter.id)
        schedule = table.state_at(now, zone) if table else None
        until = None
        if meter.keep_power:
            why = "keep-power"
            until = meter.keep_power_until
        elif meter.desired_relay == "open":
            why = meter.relay_reason or "manual"
        elif arrears and arrears.get("action") == "grace":
            why, until = "grace", arrears.get("until")
        elif arrears and arrears.get("action") == "hold":
            why, until = "friendly-window", arrears.get("until")
        elif schedule is not None:
            why = "schedule"
        else:
            why = "credit"
        planned = []
        plan = book.plan_of(meter.id)
        if plan is not None:
            planned.append({"at": plan["due_at"], "relay": "open", "why": "arrears",
                            "reason": plan["reason"]})
        if table is not None:
            at, state = table.next_switch(now, zone)
            planned.append({"at": at.isoformat(), "relay": "closed" if state == "on" else "open",
                            "why": "schedule", "reason": f"timetable: {state}"})
        planned.sort(key=lambda p: datetime.fromisoformat(p["at"]))
        return {"why": why, "until": until.isoformat() if isinstance(until, datetime)
                else until, "arrears": arrears, "schedule": schedule,
                "timetable": book.timetables.get(str(meter.id)),
                "next_change": planned[0] if planned else None, "planned": planned}

    # -- the scheduled work ------------------------------------------------------------

    def run_cutoff(self, site_ids: list[str]) -> int:
        """Carry out the trips that fell due and the timetable switches whose time came;
        returns the number of commands issued."""
        return self.carry_out_run(RunCutoff(tuple(site_ids)), ENFORCEMENT)

    def carry_out_run(self, command: RunCutoff, actor: dict) -> int:
        """Everything needed is in the books' events, so a process started anew finds
        every pending trip and switch again."""
        now = self.clock()
        decisions: list[tuple[UUID, str, int, str]] = []
        switches = []
        for site_id in [*command.site_ids, None]:
            book = self.store.find(site_cutoff_id(site_id), SiteCutoff)
            if not isinstance(book, SiteCutoff):
                continue
            for meter_id in book.due_plans(now):
                meter = self.store.find(UUID(meter_id), Meter)
                kind = meter.kind if isinstance(meter, Meter) else "electricity"
                decisions.append((UUID(meter_id), kind, 0, book.plans[meter_id]["cause"]))
            if book.timetables:
                zone = site_zone(self.store.find, site_id)
                switches += [(site_id, UUID(m)) for m in book.timetables
                             if book.switch_due(m, now, zone) is not None]
        issued = self.enforcement.enforce_balances(decisions) if decisions else 0
        return issued + (self._switch(command, switches) if switches else 0)

    def _switch(self, command: RunCutoff, switches: list[tuple[str | None, UUID]]) -> int:
        ctx, decide = CutoffContext(ENFORCEMENT, now=self.clock()), command.decide_one
        outcomes = self.bus.write_many([(uuid4(), "schedule",
                                         lambda load, s=s, m=m: decide(load, ctx, s, m))
                                        for s, m in switches])
        return sum(o.result.get("issued", 0) for o in outcomes if isinstance(o, Outcome))
