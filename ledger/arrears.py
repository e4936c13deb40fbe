"""What arrears mean for one prepaid meter now, under its cut-off policy: the decision
enforcement makes (``ledger/devices.py``, after a balance crossed zero) and the books it
keeps (``ledger/cutoff.py``, where staff set the policies and the agenda is run).

Shared by both features so that neither imports the other. Functions of what they are
given: a loader inside a decision and the time.
The rules themselves are pure functions in ``domain/cutoff.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.account import Account
from domain.cutoff import (
    AccountCutoff,
    SiteCutoff,
    account_cutoff_id,
    decide_cutoff,
    in_arrears,
    should_restore,
    site_cutoff_id,
)
from domain.device_command import DeviceCommand, command_id_for
from domain.errors import NotFound
from domain.meter import Meter
from domain.money import fen_to_yuan_text
from ledger.core.types import Loader
from ledger.relays import ENFORCEMENT, order_relay, zone_of


def site_book(load: Loader, site_id: UUID | str | None) -> SiteCutoff:
    """A site's cut-off book, started (unsaved) on first use."""
    try:
        return load(site_cutoff_id(site_id), SiteCutoff, NotFound)
    except NotFound:
        return SiteCutoff.start(site_id)


def account_book(load: Loader, account_id: UUID) -> AccountCutoff:
    """An account's cut-off book (overrides, arrears episodes), started on first use."""
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


def relay_by_policy(meter: Meter, account: Account, load: Loader, now: datetime) -> str:
    """The relay arrears want now, without keep-power (it was just released): open
    only if the policy trips at this moment; in grace or a friendly window it stays
    closed, and the next decision on the account plans the trip."""
    balance = effective_balance(account, meter.kind)
    if not in_arrears(balance):
        return "closed"
    book = site_book(load, meter.site_id)
    accounts_book = account_book(load, account.id)
    found = accounts_book.arrears_of(meter.kind)
    since = datetime.fromisoformat(found["since"]) if found else now
    decision = decide_cutoff(book.policy_for(accounts_book.overrides), balance, since, now,
                             zone_of(meter, load))
    return "open" if decision.action == "trip" else "closed"


def decide_arrears(meter: Meter, account: Account, cause: str, now: datetime,
                   load: Loader) -> list[Any]:
    """What arrears mean for one prepaid meter now, under its policy: trip, plan a
    trip for later (grace, a friendly window), cancel a plan (paid), restore (above
    the threshold). Returns the aggregates to save."""
    book = site_book(load, meter.site_id)
    accounts_book = account_book(load, account.id)
    zone = zone_of(meter, load)
    policy = book.policy_for(accounts_book.overrides)
    balance = effective_balance(account, meter.kind)
    text = (f"balance {fen_to_yuan_text(account.balance_fen(meter.kind))} yuan, "
            f"property fee {fen_to_yuan_text(account.balance_fen('property_fee'))} yuan")
    out: list[Any] = [book, accounts_book]
    if in_arrears(balance):
        episode = accounts_book.begin_arrears(meter.kind, now, cause)
        decision = decide_cutoff(policy, balance, datetime.fromisoformat(episode["since"]),
                                 now, zone)
        accounts_book.decided(meter.kind, decision)
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
            if issued(load, command_id_for(meter.id, "trip", key)):
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
    accounts_book.end_arrears(meter.kind, balance)
    book.end_plan(meter.id, "cancelled", f"paid: {text}", None, ENFORCEMENT)
    if meter.desired_relay != "open" or meter.relay_reason != "arrears":
        return changed(out)
    if not should_restore(policy, balance):
        accounts_book.withhold_restore(meter.kind, meter.id, balance,
                                       policy.restore_threshold_fen)
        return changed(out)
    key = f"restore:{cause}"
    table = book.timetable_of(meter.id)
    if table is not None and table.state_at(now, zone) == "off":
        # paid, but the timetable has the circuit off now: it stays open, for that
        action, why = "trip", "schedule"
    else:
        action, why = "close", "restored"
    if issued(load, command_id_for(meter.id, action, key)):
        return changed(out)
    command = order_relay(meter, action, why, key, now, reason=text)
    return changed([*out, meter, command])


def issued(load: Loader, command_id: UUID) -> bool:
    """Whether a device command with this id was issued already."""
    try:
        load(command_id, DeviceCommand, NotFound)
    except NotFound:
        return False
    return True


def drop_plan(meter: Meter, load: Loader) -> list[Any]:
    """A trip planned for a meter that no longer takes part in enforcement: cancelled."""
    try:
        book = load(site_cutoff_id(meter.site_id), SiteCutoff, NotFound)
    except NotFound:
        return []
    if book.plan_of(meter.id) is None:
        return []
    book.end_plan(meter.id, "cancelled", "the meter is no longer enforced", None,
                  ENFORCEMENT)
    return [book]
