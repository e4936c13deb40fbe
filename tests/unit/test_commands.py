"""The ledger's commands on the in-memory event store: no database, no threads (group
commit off), a frozen clock. Each command's decision and its typed errors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.errors import (
    AccountNotFound,
    AlreadyReversed,
    AmountTooLarge,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidRequest,
)
from ledger.app import Ledger
from ledger.commands import (
    Adjust,
    ApprovalPolicy,
    KeepPower,
    Refund,
    Reverse,
    TopUp,
    command_from_approval,
)
from ledger.periods import PeriodNotOver
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}


@pytest.fixture
def ledger():
    # No env: the library's in-memory recorder. One command per write: no committer thread.
    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1, max_top_up_fen=100_000)
    yield ledger
    ledger.close()


def open_account(ledger: Ledger) -> uuid.UUID:
    return uuid.UUID(ledger.accounts.open_account(name="Tea shop",
                                                  actor=STAFF).result["account_id"])


def balance(ledger: Ledger, account_id: uuid.UUID) -> int:
    return ledger.accounts.get_account(account_id).balance_fen("electricity")


def test_a_top_up_credits_the_wallet_and_answers_the_balance(ledger):
    account = open_account(ledger)
    outcome = ledger.execute(TopUp(account, amount_fen=5000, channel="cash",
                                   idempotency_key="k1"), STAFF)
    assert outcome.created
    assert outcome.result["balance_after_fen"] == 5000
    assert balance(ledger, account) == 5000


def test_a_repeated_key_answers_the_first_result_and_credits_once(ledger):
    account = open_account(ledger)
    first = ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=STAFF,
                                   idempotency_key="k1")
    again = ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=STAFF,
                                   idempotency_key="k1")
    assert (again.created, again.result) == (False, first.result)
    assert balance(ledger, account) == 5000


def test_a_key_used_for_another_request_is_refused(ledger):
    account = open_account(ledger)
    ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=STAFF,
                           idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        ledger.accounts.top_up(account, amount_fen=6000, channel="cash", actor=STAFF,
                               idempotency_key="k1")


@pytest.mark.parametrize("command, error", [
    (lambda a: TopUp(a, amount_fen=100_001, channel="cash"), AmountTooLarge),
    (lambda a: TopUp(a, amount_fen=100, channel="barter"), InvalidRequest),
    (lambda a: TopUp(a, amount_fen=100, channel="cash", wallet="gold"), InvalidRequest),
    (lambda a: Refund(a, amount_fen=1, channel="cash"), InsufficientBalance),
    (lambda a: Adjust(a, delta_fen=-100_001, reason="typo"), AmountTooLarge),
    (lambda a: TopUp(uuid.uuid4(), amount_fen=100, channel="cash"), AccountNotFound),
    (lambda a: TopUp(a, amount_fen=100, channel="cash",
                     effective_at=NOW + timedelta(hours=1)), InvalidRequest),
])
def test_refused_commands_change_nothing(ledger, command, error):
    account = open_account(ledger)
    with pytest.raises(error):
        ledger.execute(command(account), STAFF)
    assert balance(ledger, account) == 0


def test_a_gift_needs_a_reason(ledger):
    account = open_account(ledger)
    with pytest.raises(InvalidRequest):
        ledger.accounts.gift(account, amount_fen=100, reason=" ", actor=STAFF)


def test_a_reversal_mirrors_the_original_once(ledger):
    account = open_account(ledger)
    top_up = ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=STAFF)
    original = uuid.UUID(top_up.result["transaction_id"])
    ledger.execute(Reverse(original, reason="wrong shop", idempotency_key="r1"), STAFF)
    assert balance(ledger, account) == 0
    with pytest.raises(AlreadyReversed):
        ledger.execute(Reverse(original, reason="again", idempotency_key="r2"), STAFF)


def test_a_closed_month_answers_its_first_close_and_a_running_one_is_refused(ledger):
    start, end = NOW - timedelta(days=30), NOW - timedelta(days=1)
    first = ledger.periods.close_period("2026-02", starts_at=start, ends_at=end, actor=STAFF)
    again = ledger.periods.close_period("2026-02", starts_at=start, ends_at=end, actor=STAFF)
    assert again.closed_at == first.closed_at == ledger.periods.period_closed_at("2026-02")
    with pytest.raises(PeriodNotOver):
        ledger.periods.close_period("2026-03", starts_at=NOW, ends_at=NOW + timedelta(days=30),
                                    actor=STAFF)


# -- which commands need a second person --------------------------------------------------

ACCOUNT = uuid.UUID(int=1)


@pytest.mark.parametrize("command, actions, needs", [
    (Refund(ACCOUNT, amount_fen=100_001, channel="cash"), {"refund"}, True),
    (Refund(ACCOUNT, amount_fen=100_000, channel="cash"), {"refund"}, False),  # at the limit
    (Refund(ACCOUNT, amount_fen=100_001, channel="cash"), set(), False),
    (Adjust(ACCOUNT, delta_fen=1, reason="r"), {"adjustment"}, True),
    (Adjust(ACCOUNT, delta_fen=1, reason="r"), {"refund"}, False),
    (Reverse(ACCOUNT), {"reversal"}, True),
    (KeepPower(ACCOUNT, reason="hospital"), {"keep_power"}, True),
    (TopUp(ACCOUNT, amount_fen=1, channel="cash"), {"refund", "adjustment"}, False),
])
def test_the_approval_policy(command, actions, needs):
    policy = ApprovalPolicy(frozenset(actions), refund_above_fen=100_000)
    assert policy.needs_second_person(command) is needs


@pytest.mark.parametrize("command", [
    Refund(ACCOUNT, amount_fen=500, channel="wechat", wallet="water", reason="moving out",
           reference="R1", effective_at=NOW, idempotency_key="k"),
    Adjust(ACCOUNT, delta_fen=-300, reason="meter swap", wallet="electricity", force=True,
           idempotency_key="k"),
    Reverse(ACCOUNT, reason="typo", force=False, idempotency_key="k"),
    KeepPower(ACCOUNT, reason="hospital", until=NOW, idempotency_key="k"),
])
def test_a_command_stored_with_an_approval_comes_back_the_same(command):
    again = command_from_approval(command.action, command.target(), command.params(), "k")
    assert again == command


def test_an_approval_carries_out_the_stored_command_as_the_requester(ledger):
    account = open_account(ledger)
    ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor=STAFF)
    command = Refund(account, amount_fen=2000, channel="cash", reason="moving out",
                     idempotency_key="a1")
    requested = ledger.access.request_approval(action=command.action, target=command.target(),
                                               params=command.params(),
                                               idempotency_key=command.idempotency_key,
                                               site_id=None,
                                               summary="refund 20.00", actor=STAFF)
    approval_id = uuid.UUID(requested.result["id"])
    boss = {"kind": "operator", "id": "boss"}
    ledger.access.approve(approval_id, note="ok", actor=boss)
    assert balance(ledger, account) == 3000
    assert ledger.access.get_approval(approval_id).status == "approved"


def test_the_account_service_stands_on_the_core_alone():
    """Built from exactly what it needs: an event store, a bus, a clock, a limit."""
    from ledger.accounts import AccountService
    from ledger.core.bus import CommandBus
    from ledger.core.store import EventStore
    from ledger.core.writer import Writer

    store = EventStore()
    bus = CommandBus(store, Writer(store), max_commands=1)
    accounts = AccountService(store, bus, clock=FrozenClock(NOW), max_top_up_fen=1000)
    account = uuid.UUID(accounts.open_account(name="Noodles", actor=STAFF)
                        .result["account_id"])
    accounts.top_up(account, amount_fen=1000, channel="cash", actor=STAFF)
    with pytest.raises(AmountTooLarge):
        accounts.top_up(account, amount_fen=1001, channel="cash", actor=STAFF)
    assert accounts.get_account(account).balance_fen("electricity") == 1000


def test_opening_an_account_is_a_command_and_its_key_answers_a_repeat(ledger):
    from ledger.commands import OpenAccount

    first = ledger.execute(OpenAccount("Tea shop", unit="L1-07", idempotency_key="o1"), STAFF)
    again = ledger.execute(OpenAccount("Tea shop", unit="L1-07", idempotency_key="o1"), STAFF)
    assert first.created and not again.created
    assert again.result == first.result
    account = ledger.accounts.get_account(uuid.UUID(first.result["account_id"]))
    assert (account.name, account.unit, account.status) == ("Tea shop", "L1-07", "open")
    with pytest.raises(IdempotencyConflict):
        ledger.execute(OpenAccount("Noodle bar", idempotency_key="o1"), STAFF)
