"""Cut-off policies, holiday calendars and timetables as staff set them, and the agenda
enforcement keeps: trips planned for later and timetable switches. A mixin of ``Ledger``.

The rules are pure functions in ``domain/cutoff.py``; the arrears decisions themselves are
made in ``enforce_balances`` (``ledger/devices.py``), which calls ``_cutoff_decide`` here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from domain.account import Account
from domain.cutoff import (
    AccountCutoff,
    SiteCutoff,
    account_cutoff_id,
    decide_cutoff,
    in_arrears,
    should_restore,
    site_cutoff_id,
    wanted_relay,
)
from domain.device_command import command_id_for
from domain.errors import MeterNotFound, NotFound
from domain.meter import Meter
from domain.money import fen_to_yuan_text
from ledger.core.types import Loader
from ledger.relays import ENFORCEMENT, order_relay, site_zone, zone_of


SETTINGS = "cutoff-settings"


def _book(load: Loader, site_id: UUID | str | None) -> SiteCutoff:
    try:
        return load(site_cutoff_id(site_id), SiteCutoff, NotFound)
    except NotFound:
        return SiteCutoff.start(site_id)


def _account_book(load: Loader, account_id: UUID) -> AccountCutoff:
    try:
        return load(account_cutoff_id(account_id), AccountCutoff, NotFound)
    except NotFound:
        return AccountCutoff.start(account_id)


def changed(aggregates: list[Any]) -> list[Any]:
    """What is worth saving: a book that would only be started is left unsaved (the
    defaults need no events)."""
    return [a for a in aggregates
            if not (isinstance(a, (SiteCutoff, AccountCutoff)) and a.version == 1
                    and len(a.pending_events) == 1)]


def effective_balance(account: Account, kind: str) -> int:
    """The balance arrears are judged on: an electricity meter is cut off for property
    fees in arrears too (then the lower of the two counts)."""
    balance = account.balance_fen(kind)
    fee = account.balance_fen("property_fee")
    if kind == "electricity" and fee < 0:
        return min(balance, fee)
    return balance


class CutoffCommands:
    # -- staff settings ----------------------------------------------------------------

    def set_site_cutoff_policy(self, site_id: UUID, settings: dict[str, Any],
                               actor: dict) -> SiteCutoff:
        self.get_site(site_id)

        def decide(load: Loader):
            book = _book(load, site_id)
            book.set_policy(settings, actor)
            return [book], {}

        self.bus.write(site_cutoff_id(site_id), uuid4(), SETTINGS, decide)
        self._redecide_plans(site_id)
        return self.site_cutoff(site_id)

    def add_holiday(self, site_id: UUID, day: date, name: str,
                    actor: dict) -> SiteCutoff:
        self.get_site(site_id)

        def decide(load: Loader):
            book = _book(load, site_id)
            book.add_holiday(day, name, actor)
            return [book], {}

        self.bus.write(site_cutoff_id(site_id), uuid4(), SETTINGS, decide)
        self._redecide_plans(site_id)
        return self.site_cutoff(site_id)

    def remove_holiday(self, site_id: UUID, day: date, actor: dict) -> SiteCutoff:
        self.get_site(site_id)

        def decide(load: Loader):
            book = _book(load, site_id)
            book.remove_holiday(day, actor)
            return [book], {}

        self.bus.write(site_cutoff_id(site_id), uuid4(), SETTINGS, decide)
        self._redecide_plans(site_id)
        return self.site_cutoff(site_id)

    def set_account_cutoff_policy(self, account_id: UUID, settings: dict[str, Any],
                                  actor: dict) -> AccountCutoff:
        self.get_account(account_id)

        def decide(load: Loader):
            book = _account_book(load, account_id)
            book.set_overrides(settings, actor)
            return [book], {}

        self.bus.write(account_cutoff_id(account_id), uuid4(), SETTINGS, decide)
        return self.account_cutoff(account_id)

    def set_meter_timetable(self, meter_id: UUID, settings: dict[str, Any] | None,
                            actor: dict) -> SiteCutoff:
        """Set (or, with None, clear) a meter's weekly timetable."""
        meter = self.get_meter(meter_id)

        def decide(load: Loader):
            book = _book(load, meter.site_id)
            if settings is None:
                book.clear_timetable(meter_id, actor)
            else:
                book.set_timetable(meter_id, settings, actor)
            return [book], {}

        self.bus.write(site_cutoff_id(meter.site_id), uuid4(), SETTINGS, decide)
        return self.site_cutoff(meter.site_id)

    def _redecide_plans(self, site_id: UUID) -> int:
        """The policy or the calendar changed: decide the planned trips again now (a
        window taken away trips at once, a longer one plans later)."""
        book = self.site_cutoff(site_id)
        decisions = []
        for meter_id, plan in book.plans.items():
            meter = self.find(UUID(meter_id), Meter)
            if isinstance(meter, Meter):
                decisions.append((meter.id, meter.kind, 0, plan["cause"]))
        return self.enforce_balances(decisions) if decisions else 0

    def site_cutoff(self, site_id: UUID | str | None) -> SiteCutoff:
        """A site's cut-off book (the defaults, unsaved, if nothing was ever set)."""
        found = self.find(site_cutoff_id(site_id), SiteCutoff)
        return found if isinstance(found, SiteCutoff) else SiteCutoff.start(site_id)

    def account_cutoff(self, account_id: UUID) -> AccountCutoff:
        found = self.find(account_cutoff_id(account_id), AccountCutoff)
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
        zone = zone_of(meter, self.load)
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
        returns the number of commands issued. Everything needed is in the books' events,
        so a process started anew finds every pending trip and switch again."""
        now = self.clock()
        decisions: list[tuple[UUID, str, int, str]] = []
        switches = []
        for site_id in [*site_ids, None]:
            book = self.find(site_cutoff_id(site_id), SiteCutoff)
            if not isinstance(book, SiteCutoff):
                continue
            for meter_id in book.due_plans(now):
                meter = self.find(UUID(meter_id), Meter)
                kind = meter.kind if isinstance(meter, Meter) else "electricity"
                decisions.append((UUID(meter_id), kind, 0, book.plans[meter_id]["cause"]))
            if book.timetables:
                zone = site_zone(self.find, site_id)
                switches += [(site_id, UUID(m)) for m in book.timetables
                             if book.switch_due(m, now, zone) is not None]
        issued = self.enforce_balances(decisions) if decisions else 0
        return issued + (self._switch(switches) if switches else 0)

    def _switch(self, switches: list[tuple[str | None, UUID]]) -> int:
        now = self.clock()
        issued = []

        def decide_for(site_id: str | None, meter_id: UUID):
            def decide(load: Loader):
                book = _book(load, site_id)
                zone = site_zone(self.find, site_id)
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
                    issued.append(command.id)
                book.record_switch(meter_id, at, state, command.id if command else None,
                                   relay, why, ENFORCEMENT)
                return out, {}
            return decide

        self.bus.write_many([(uuid4(), "schedule", decide_for(s, m)) for s, m in switches])
        return len(issued)

    # -- arrears -----------------------------------------------------------------------

    def _relay_by_policy(self, meter: Meter, account: Account, load: Loader) -> str:
        """The relay arrears want now, without keep-power (it was just released): open
        only if the policy trips at this moment; in grace or a friendly window it stays
        closed, and the next decision on the account plans the trip."""
        balance = effective_balance(account, meter.kind)
        if not in_arrears(balance):
            return "closed"
        book = _book(load, meter.site_id)
        account_book = _account_book(load, account.id)
        found = account_book.arrears_of(meter.kind)
        now = self.clock()
        since = datetime.fromisoformat(found["since"]) if found else now
        decision = decide_cutoff(book.policy_for(account_book.overrides), balance, since, now,
                                 zone_of(meter, load))
        return "open" if decision.action == "trip" else "closed"

    def _cutoff_decide(self, meter: Meter, account: Account, cause: str,
                       now: datetime, load: Loader) -> list[Any]:
        """What arrears mean for one prepaid meter now, under its policy: trip, plan a
        trip for later (grace, a friendly window), cancel a plan (paid), restore (above
        the threshold). Returns the aggregates to save."""
        book = _book(load, meter.site_id)
        account_book = _account_book(load, account.id)
        zone = zone_of(meter, load)
        policy = book.policy_for(account_book.overrides)
        balance = effective_balance(account, meter.kind)
        text = (f"balance {fen_to_yuan_text(account.balance_fen(meter.kind))} yuan, "
                f"property fee {fen_to_yuan_text(account.balance_fen('property_fee'))} yuan")
        out: list[Any] = [book, account_book]
        if in_arrears(balance):
            episode = account_book.begin_arrears(meter.kind, now, cause)
            decision = decide_cutoff(policy, balance, datetime.fromisoformat(episode["since"]),
                                     now, zone)
            account_book.decided(meter.kind, decision)
            if decision.action == "trip":
                if meter.keep_power:
                    book.end_plan(meter.id, "cancelled", "keep-power", None, ENFORCEMENT)
                    return changed(out)
                if meter.desired_relay == "open" and meter.relay_reason != "schedule":
                    book.end_plan(meter.id, "cancelled", "the relay is open already", None,
                                  ENFORCEMENT)
                    return changed(out)
                # The cause is the money event (or, for a planned trip, the one that began
                # the arrears): the policy running again never trips twice for it.
                key = f"arrears:{cause}"
                if self.find(command_id_for(meter.id, "trip", key)) is not None:
                    book.end_plan(meter.id, "cancelled", "tripped for this cause already",
                                  None, ENFORCEMENT)
                    return changed(out)
                command = order_relay(meter, "trip", "arrears", key, now,
                                      reason=f"{decision.reason}: {text}")
                book.end_plan(meter.id, "tripped", decision.reason, command.id, ENFORCEMENT)
                return changed([*out, meter, command])
            if meter.desired_relay == "closed" and not meter.keep_power and \
                    decision.until is not None:
                book.plan_trip(meter.id, decision.until, episode["cause"],
                               f"{decision.reason}: {text}", ENFORCEMENT)
            elif decision.until is None:
                book.end_plan(meter.id, "cancelled", decision.reason, None, ENFORCEMENT)
            return changed(out)
        account_book.end_arrears(meter.kind, balance)
        book.end_plan(meter.id, "cancelled", f"paid: {text}", None, ENFORCEMENT)
        if meter.desired_relay != "open" or meter.relay_reason != "arrears":
            return changed(out)
        if not should_restore(policy, balance):
            account_book.withhold_restore(meter.kind, meter.id, balance,
                                          policy.restore_threshold_fen)
            return changed(out)
        key = f"restore:{cause}"
        table = book.timetable_of(meter.id)
        if table is not None and table.state_at(now, zone) == "off":
            # paid, but the timetable has the circuit off now: it stays open, for that
            action, why = "trip", "schedule"
        else:
            action, why = "close", "restored"
        if self.find(command_id_for(meter.id, action, key)) is not None:
            return changed(out)
        command = order_relay(meter, action, why, key, now, reason=text)
        return changed([*out, meter, command])

