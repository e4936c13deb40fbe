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
from zoneinfo import ZoneInfo

SEARCH_DAYS = 400  # the furthest a window end or a switch is looked for (a long holiday)
WEEKEND = (5, 6)  # Saturday, Sunday (date.weekday())


class PolicyError(ValueError):
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
        local = moment.astimezone(zone)
        for at, state in self._switches_between(local, SEARCH_DAYS, forward=False):
            if at <= local:
                return state
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
