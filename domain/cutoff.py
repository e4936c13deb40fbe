"""When arrears cut a meter off, and when a timetable switches one: pure functions.

Malls do not cut a restaurant at 19:30 on a Saturday because its balance crossed zero at
dinner. A site (and, overriding it, an account) has a cut-off policy:

* **friendly hours**: windows in which arrears never trip a meter (daily hours such as
  18:00-09:00, weekends, holidays from a calendar staff keep). Arrears that arise inside
  a window trip when it ends, unless paid meanwhile.
* **grace**: a credit limit (the wallet may go down to, say, -50.00) and/or a grace period
  after the balance first reached zero (say 24 hours); whichever runs out first ends it.
* **restore threshold**: after an arrears trip, the relay closes only once the balance is
  above it (default 0.00, the platform's behaviour without a policy).

A *timetable* switches a meter (common-area lighting, dormitory air conditioning) on and
off at set times of the week, with holiday exceptions.

Every function here takes the instant and the zone as parameters and answers the next
instant at which its answer can change, so the process that applies them can plan a
re-evaluation as an event instead of polling, and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidRequest, NotFound

SEARCH_DAYS = 400  # the furthest a window end or a switch is looked for (a long holiday)
WEEKEND = (5, 6)  # Saturday, Sunday (date.weekday())


class PolicyError(InvalidRequest):
    """A policy or timetable that cannot be applied as given."""


def _parse_hhmm(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as error:
        raise PolicyError(f"{text!r} is not a time of day HH:MM") from error


@dataclass(frozen=True)
class DailyWindow:
    """[start, end) in local time; an end at or before the start wraps past midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        try:
            start, end = text.split("-")
        except ValueError as error:
            raise PolicyError(f"{text!r} is not a window HH:MM-HH:MM") from error
        window = cls(_parse_hhmm(start.strip()), _parse_hhmm(end.strip()))
        if window.start == window.end:
            raise PolicyError(f"{text!r} is empty: start and end are the same")
        return window

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class FriendlyHours:
    daily: tuple[DailyWindow, ...] = ()
    weekends: bool = False
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        # Friendliness only changes at a window's start or end, so checking those points
        # tells whether the windows leave any time of day at all for a trip.
        points = {time(0, 0)} | {w.start for w in self.daily} | {w.end for w in self.daily}
        if self.daily and all(any(w.contains(p) for w in self.daily) for p in points):
            raise PolicyError("the daily windows cover the whole day: arrears would never "
                              "trip")

    @property
    def empty(self) -> bool:
        return not self.daily and not self.weekends and not self.holidays

    def is_friendly(self, local: datetime) -> bool:
        day = local.date()
        if day in self.holidays or (self.weekends and day.weekday() in WEEKEND):
            return True
        return any(window.contains(local.time()) for window in self.daily)

    def _boundaries(self, local: datetime):
        """Every local instant after ``local`` at which being friendly can change."""
        day = local.date()
        for offset in range(SEARCH_DAYS + 1):
            current = day + timedelta(days=offset)
            points = {time(0, 0)} | {w.start for w in self.daily} | {w.end for w in self.daily}
            for point in sorted(points):
                candidate = datetime.combine(current, point, local.tzinfo)
                if candidate > local:
                    yield candidate

    def window_end(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """If ``moment`` is inside a friendly window, the instant it ends (UTC-aware)."""
        local = moment.astimezone(zone)
        if not self.is_friendly(local):
            return None
        for boundary in self._boundaries(local):
            if not self.is_friendly(boundary):
                return boundary.astimezone(moment.tzinfo)
        raise PolicyError(f"no end to the friendly window within {SEARCH_DAYS} days")


@dataclass(frozen=True)
class CutoffPolicy:
    """A site's (or one account's) rules for cutting off arrears. The default is the
    platform's plain rule: at or below zero trips at once, above zero restores."""

    friendly: FriendlyHours = field(default_factory=FriendlyHours)
    credit_limit_fen: int = 0  # trips when the balance is at or below minus this
    grace_period: timedelta = timedelta(0)  # after the balance first reached zero
    restore_threshold_fen: int = 0  # closes again only above this

    def __post_init__(self) -> None:
        if self.credit_limit_fen < 0:
            raise PolicyError("a credit limit is not negative")
        if self.grace_period < timedelta(0):
            raise PolicyError("a grace period is not negative")

    def override(self, **changes) -> CutoffPolicy:
        """This policy with an account's own settings laid over it."""
        from dataclasses import replace
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class CutoffDecision:
    action: str  # "none" (in credit), "grace", "hold" (friendly window), "trip"
    until: datetime | None = None  # when to look again (grace or window end); None: never
    reason: str = ""


def in_arrears(balance_fen: int) -> bool:
    return balance_fen <= 0


def decide_cutoff(policy: CutoffPolicy, balance_fen: int, arrears_since: datetime | None,
                  now: datetime, zone: ZoneInfo) -> CutoffDecision:
    """What arrears mean for the relay at ``now``.

    ``arrears_since`` is when the balance last went from above zero to at or below it
    (the start of the grace period); ``None`` when it is above zero.
    """
    if not in_arrears(balance_fen):
        return CutoffDecision("none")
    since = arrears_since or now
    within_limit = policy.credit_limit_fen > 0 and balance_fen > -policy.credit_limit_fen
    grace_until = since + policy.grace_period if policy.grace_period else None
    within_period = grace_until is not None and now < grace_until
    if policy.credit_limit_fen > 0 and policy.grace_period:
        in_grace = within_limit and within_period
    else:
        in_grace = within_limit or within_period
    if in_grace:
        reason = (f"in grace until {grace_until.isoformat()}" if grace_until
                  else "in grace within the credit limit")
        return CutoffDecision("grace", grace_until, reason)
    window_end = policy.friendly.window_end(now, zone)
    if window_end is not None:
        return CutoffDecision("hold", window_end,
                              f"friendly window until {window_end.isoformat()}")
    return CutoffDecision("trip", None, "arrears")


def should_restore(policy: CutoffPolicy, balance_fen: int) -> bool:
    """After an arrears trip: close again only once the balance is above the threshold."""
    return balance_fen > max(policy.restore_threshold_fen, 0)


# -- timetables -------------------------------------------------------------------------

@dataclass(frozen=True)
class Switch:
    weekday: int  # 0 Monday .. 6 Sunday
    at: time
    state: str  # "on" or "off"

    def __post_init__(self) -> None:
        if self.state not in ("on", "off") or not 0 <= self.weekday <= 6:
            raise PolicyError("a switch is a weekday 0-6, a time and 'on' or 'off'")


@dataclass(frozen=True)
class Timetable:
    """Weekly switching. On a holiday, the holiday's own switches (often none: the
    circuit stays as it was, typically off) replace the weekday's."""

    switches: tuple[Switch, ...]
    holidays: frozenset[date] = frozenset()
    holiday_switches: tuple[tuple[time, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.switches:
            raise PolicyError("a timetable needs at least one switch")

    @classmethod
    def daily(cls, on: str, off: str, **kwargs) -> Timetable:
        """On at ``on`` and off at ``off`` every day (HH:MM)."""
        switches = tuple(Switch(day, _parse_hhmm(text), state) for day in range(7)
                         for text, state in ((on, "on"), (off, "off")))
        return cls(switches, **kwargs)

    def _switches_on(self, day: date) -> list[tuple[time, str]]:
        if day in self.holidays:
            return sorted(self.holiday_switches)
        return sorted((s.at, s.state) for s in self.switches if s.weekday == day.weekday())

    def _switches_between(self, local: datetime, days: int, forward: bool):
        start = local.date()
        offsets = range(days + 1) if forward else range(0, -days - 1, -1)
        for offset in offsets:
            day = start + timedelta(days=offset)
            todays = self._switches_on(day)
            for at, state in (todays if forward else reversed(todays)):
                yield datetime.combine(day, at, local.tzinfo), state

    def state_at(self, moment: datetime, zone: ZoneInfo) -> str:
        """The state the timetable wants at ``moment``: the last switch at or before it."""
        return self.last_switch(moment, zone)[1]

    def last_switch(self, moment: datetime, zone: ZoneInfo) -> tuple[datetime, str]:
        """The last switch at or before ``moment`` (UTC-aware) and its state."""
        local = moment.astimezone(zone)
        for at, state in self._switches_between(local, SEARCH_DAYS, forward=False):
            if at <= local:
                return at.astimezone(moment.tzinfo), state
        raise PolicyError("the timetable never switches")

    def next_switch(self, moment: datetime, zone: ZoneInfo) -> tuple[datetime, str]:
        """The first switch strictly after ``moment`` (UTC-aware) and its state."""
        local = moment.astimezone(zone)
        for at, state in self._switches_between(local, SEARCH_DAYS, forward=True):
            if at > local:
                return at.astimezone(moment.tzinfo), state
        raise PolicyError(f"no switch within {SEARCH_DAYS} days")


def wanted_relay(*, arrears_trip: bool, manual_open: bool, keep_power: bool,
                 schedule_state: str | None) -> tuple[str, str]:
    """The relay a meter should have and why, by precedence: keep-power wins over
    arrears, arrears and manual trips win over the timetable."""
    if keep_power:
        return "closed", "keep-power"
    if arrears_trip:
        return "open", "arrears"
    if manual_open:
        return "open", "manual"
    if schedule_state == "off":
        return "open", "schedule"
    if schedule_state == "on":
        return "closed", "schedule"
    return "closed", "credit"


# -- settings and plans as events --------------------------------------------------------

CUTOFF_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/cutoff")
POLICY_KEYS = ("daily", "weekends", "credit_limit_fen", "grace_period_s",
               "restore_threshold_fen")
DEFAULT_POLICY: dict[str, Any] = {"daily": [], "weekends": False, "credit_limit_fen": 0,
                                  "grace_period_s": 0, "restore_threshold_fen": 0}


class HolidayNotFound(NotFound):
    code = "holiday-not-found"


def site_cutoff_id(site_id: UUID | str | None) -> UUID:
    """The cut-off book of a site (meters without a site share one)."""
    return uuid5(CUTOFF_NAMESPACE, f"site/{site_id or 'none'}")


def account_cutoff_id(account_id: UUID | str) -> UUID:
    return uuid5(CUTOFF_NAMESPACE, f"account/{account_id}")


def check_policy(settings: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """A policy as stored (plain values), checked; ``partial`` for an account's overrides,
    which name only what they change."""
    unknown = set(settings) - set(POLICY_KEYS)
    if unknown:
        raise PolicyError(f"unknown policy settings: {', '.join(sorted(unknown))}")
    full = settings if partial else {**DEFAULT_POLICY, **settings}
    checked = {key: full[key] for key in POLICY_KEYS if key in full}
    policy_from({**DEFAULT_POLICY, **checked}, frozenset())  # refuses what cannot apply
    return checked


def policy_from(settings: dict[str, Any], holidays: frozenset[date]) -> CutoffPolicy:
    return CutoffPolicy(
        friendly=FriendlyHours(daily=tuple(DailyWindow.parse(w) for w in settings["daily"]),
                               weekends=bool(settings["weekends"]), holidays=holidays),
        credit_limit_fen=int(settings["credit_limit_fen"]),
        grace_period=timedelta(seconds=int(settings["grace_period_s"])),
        restore_threshold_fen=int(settings["restore_threshold_fen"]))


def check_timetable(settings: dict[str, Any]) -> dict[str, Any]:
    """A timetable as stored: ``switches`` [{weekday, at, state}], ``holidays`` (its own
    dates, besides the site's calendar) and ``holiday_switches`` [{at, state}]."""
    timetable_from(settings, frozenset())
    return {"switches": [dict(s) for s in settings["switches"]],
            "holidays": sorted(settings.get("holidays", [])),
            "holiday_switches": [dict(s) for s in settings.get("holiday_switches", [])]}


def timetable_from(settings: dict[str, Any], site_holidays: frozenset[date]) -> Timetable:
    try:
        own = frozenset(date.fromisoformat(d) for d in settings.get("holidays", []))
    except (TypeError, ValueError) as error:
        raise PolicyError("holidays are dates YYYY-MM-DD") from error
    return Timetable(
        switches=tuple(Switch(int(s["weekday"]), _parse_hhmm(s["at"]), s["state"])
                       for s in settings["switches"]),
        holidays=own | site_holidays,
        holiday_switches=tuple((_parse_hhmm(s["at"]), _check_state(s["state"]))
                               for s in settings.get("holiday_switches", [])))


def _check_state(state: str) -> str:
    if state not in ("on", "off"):
        raise PolicyError("a switch state is 'on' or 'off'")
    return state


class SiteCutoff(Aggregate):
    """A site's cut-off book: its policy and holiday calendar, its meters' timetables
    (staff settings, each change an event naming who made it and what it replaced), and
    the enforcement's agenda: trips planned for later, timetable switches carried out."""

    @event("Started")
    def __init__(self, site_id: str | None) -> None:
        self.site_id = site_id
        self.policy: dict[str, Any] = dict(DEFAULT_POLICY)
        self.holidays: dict[str, str] = {}  # YYYY-MM-DD -> name
        self.timetables: dict[str, dict] = {}  # meter id -> timetable settings
        self.switched: dict[str, str] = {}  # meter id -> the last switch carried out (ISO)
        self.plans: dict[str, dict] = {}  # meter id -> {due_at, cause, reason}

    @classmethod
    def start(cls, site_id: UUID | str | None) -> SiteCutoff:
        return cls._create(cls.Started, id=site_cutoff_id(site_id),
                           site_id=None if site_id is None else str(site_id))

    @property
    def holiday_dates(self) -> frozenset[date]:
        return frozenset(date.fromisoformat(d) for d in self.holidays)

    def policy_for(self, overrides: dict[str, Any] | None = None) -> CutoffPolicy:
        return policy_from({**self.policy, **(overrides or {})}, self.holiday_dates)

    def timetable_of(self, meter_id: UUID | str) -> Timetable | None:
        found = self.timetables.get(str(meter_id))
        return None if found is None else timetable_from(found, self.holiday_dates)

    # -- staff settings ----------------------------------------------------------------

    def set_policy(self, settings: dict[str, Any], actor: dict) -> bool:
        checked = check_policy(settings, partial=False)
        if checked == self.policy:
            return False
        self._policy_set(policy=checked, previous=dict(self.policy), actor=actor)
        return True

    @event("PolicySet")
    def _policy_set(self, policy: dict, previous: dict, actor: dict) -> None:
        self.policy = dict(policy)

    def add_holiday(self, day: date, name: str, actor: dict) -> bool:
        if self.holidays.get(day.isoformat()) == name:
            return False
        self._holiday_added(day=day.isoformat(), name=name,
                            previous=self.holidays.get(day.isoformat()), actor=actor)
        return True

    @event("HolidayAdded")
    def _holiday_added(self, day: str, name: str, previous: str | None, actor: dict) -> None:
        self.holidays[day] = name

    def remove_holiday(self, day: date, actor: dict) -> None:
        if day.isoformat() not in self.holidays:
            raise HolidayNotFound(f"{day.isoformat()} is not in the holiday calendar")
        self._holiday_removed(day=day.isoformat(), previous=self.holidays[day.isoformat()],
                              actor=actor)

    @event("HolidayRemoved")
    def _holiday_removed(self, day: str, previous: str, actor: dict) -> None:
        del self.holidays[day]

    def set_timetable(self, meter_id: UUID, settings: dict[str, Any], actor: dict) -> bool:
        checked = check_timetable(settings)
        if self.timetables.get(str(meter_id)) == checked:
            return False
        self._timetable_set(meter_id=str(meter_id), timetable=checked,
                            previous=self.timetables.get(str(meter_id)), actor=actor)
        return True

    @event("TimetableSet")
    def _timetable_set(self, meter_id: str, timetable: dict, previous: dict | None,
                       actor: dict) -> None:
        self.timetables[meter_id] = timetable
        self.switched.pop(meter_id, None)  # the new timetable's current state applies

    def clear_timetable(self, meter_id: UUID, actor: dict) -> None:
        if str(meter_id) not in self.timetables:
            raise NotFound("this meter has no timetable")
        self._timetable_cleared(meter_id=str(meter_id),
                                previous=self.timetables[str(meter_id)], actor=actor)

    @event("TimetableCleared")
    def _timetable_cleared(self, meter_id: str, previous: dict, actor: dict) -> None:
        self.timetables.pop(meter_id, None)
        self.switched.pop(meter_id, None)

    # -- the agenda --------------------------------------------------------------------

    def plan_trip(self, meter_id: UUID, due_at: datetime, cause: str, reason: str,
                  actor: dict) -> None:
        """Trip ``meter_id`` at ``due_at`` for the arrears named by ``cause``, unless paid
        meanwhile (a plan already made for the same instant and arrears stands)."""
        found = self.plans.get(str(meter_id))
        if found == {"due_at": due_at.isoformat(), "cause": cause, "reason": reason}:
            return
        self._trip_planned(meter_id=str(meter_id), due_at=due_at, cause=cause, reason=reason,
                           actor=actor)

    @event("TripPlanned")
    def _trip_planned(self, meter_id: str, due_at: datetime, cause: str, reason: str,
                      actor: dict) -> None:
        self.plans[meter_id] = {"due_at": due_at.isoformat(), "cause": cause,
                                "reason": reason}

    def end_plan(self, meter_id: UUID, outcome: str, reason: str,
                 command_id: UUID | None, actor: dict) -> None:
        """``outcome``: ``tripped`` (carried out) or ``cancelled`` (paid, or no longer
        applies)."""
        if str(meter_id) in self.plans:
            self._plan_ended(meter_id=str(meter_id), outcome=outcome, reason=reason,
                             command_id=command_id, actor=actor)

    @event("TripPlanEnded")
    def _plan_ended(self, meter_id: str, outcome: str, reason: str,
                    command_id: UUID | None, actor: dict) -> None:
        self.plans.pop(meter_id, None)

    def due_plans(self, now: datetime) -> list[str]:
        return [meter_id for meter_id, plan in self.plans.items()
                if datetime.fromisoformat(plan["due_at"]) <= now]

    def plan_of(self, meter_id: UUID | str) -> dict | None:
        return self.plans.get(str(meter_id))

    def record_switch(self, meter_id: UUID, at: datetime, state: str,
                      command_id: UUID | None, relay: str, why: str, actor: dict) -> None:
        """A timetable switch was carried out (``command_id`` None: nothing to do, the
        relay was as wanted, or arrears, a manual trip or keep-power won)."""
        self._switch_done(meter_id=str(meter_id), at=at, state=state, command_id=command_id,
                          relay=relay, why=why, actor=actor)

    @event("SwitchCarriedOut")
    def _switch_done(self, meter_id: str, at: datetime, state: str, command_id: UUID | None,
                     relay: str, why: str, actor: dict) -> None:
        self.switched[meter_id] = at.isoformat()

    def switch_due(self, meter_id: str, now: datetime, zone: ZoneInfo
                   ) -> tuple[datetime, str] | None:
        """The timetable's last switch at or before ``now``, if not carried out yet."""
        table = self.timetable_of(meter_id)
        if table is None:
            return None
        at, state = table.last_switch(now, zone)
        done = self.switched.get(meter_id)
        if done is not None and datetime.fromisoformat(done) >= at:
            return None
        return at, state


class AccountCutoff(Aggregate):
    """One account's own cut-off settings (laid over its site's) and, per wallet, the
    arrears it is in: since when, which money event began them, and what enforcement
    last decided (grace until, held in a friendly window until, tripped)."""

    @event("Started")
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.overrides: dict[str, Any] = {}
        self.arrears: dict[str, dict] = {}  # wallet -> {since, cause, action, until, reason}

    @classmethod
    def start(cls, account_id: UUID | str) -> AccountCutoff:
        return cls._create(cls.Started, id=account_cutoff_id(account_id),
                           account_id=str(account_id))

    def set_overrides(self, settings: dict[str, Any], actor: dict) -> bool:
        checked = check_policy(settings, partial=True)
        if checked == self.overrides:
            return False
        self._overrides_set(overrides=checked, previous=dict(self.overrides), actor=actor)
        return True

    @event("PolicySet")
    def _overrides_set(self, overrides: dict, previous: dict, actor: dict) -> None:
        self.overrides = dict(overrides)

    def arrears_of(self, wallet: str) -> dict | None:
        return self.arrears.get(wallet)

    def begin_arrears(self, wallet: str, since: datetime, cause: str) -> dict:
        if wallet not in self.arrears:
            self._arrears_began(wallet=wallet, since=since, cause=cause)
        return self.arrears[wallet]

    @event("ArrearsBegan")
    def _arrears_began(self, wallet: str, since: datetime, cause: str) -> None:
        self.arrears[wallet] = {"since": since.isoformat(), "cause": cause, "action": None,
                                "until": None, "reason": None}

    def decided(self, wallet: str, decision: CutoffDecision) -> None:
        """Record what the policy said about the wallet's arrears, when it changed."""
        found = self.arrears.get(wallet)
        until = decision.until.isoformat() if decision.until else None
        if found is None or (found["action"], found["until"]) == (decision.action, until):
            return
        self._cutoff_decided(wallet=wallet, action=decision.action, until=decision.until,
                             reason=decision.reason)

    @event("CutoffDecided")
    def _cutoff_decided(self, wallet: str, action: str, until: datetime | None,
                        reason: str) -> None:
        self.arrears[wallet] = {**self.arrears[wallet], "action": action,
                                "until": until.isoformat() if until else None,
                                "reason": reason}

    def withhold_restore(self, wallet: str, meter_id: UUID, balance_fen: int,
                         threshold_fen: int) -> None:
        """Paid, but not above the restore threshold: the relay stays open."""
        self._restore_withheld(wallet=wallet, meter_id=meter_id, balance_fen=balance_fen,
                               threshold_fen=threshold_fen)

    @event("RestoreWithheld")
    def _restore_withheld(self, wallet: str, meter_id: UUID, balance_fen: int,
                          threshold_fen: int) -> None:
        pass

    def end_arrears(self, wallet: str, balance_fen: int) -> bool:
        if wallet not in self.arrears:
            return False
        self._arrears_ended(wallet=wallet, balance_fen=balance_fen)
        return True

    @event("ArrearsEnded")
    def _arrears_ended(self, wallet: str, balance_fen: int) -> None:
        self.arrears.pop(wallet, None)
