"""The account's money rules, on the aggregate alone (no I/O)."""

import uuid
from datetime import datetime, timezone

import pytest

from domain.account import Account, MoneyContext
from domain.chart import Wallet, effect_on
from domain.errors import (
    AccountClosed,
    AccountInArrears,
    InsufficientBalance,
    InvalidAmount,
    InvalidRequest,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
E = Wallet.electricity


def new_account() -> Account:
    return Account.open(account_id=uuid.uuid4(), name="Shop 1", site_id=None, unit="1F-01",
                        contact=None, phone=None, area_m2=None, actor={"kind": "test"},
                        idempotency_key=None, request_fingerprint="x")


def ctx() -> MoneyContext:
    return MoneyContext(uuid.uuid4(), NOW, NOW, {"kind": "test"})


def test_top_up_credits_the_wallet_against_the_channel_clearing_account():
    account = new_account()
    event = account.top_up(ctx(), wallet=E, amount_fen=1000, channel="wechat", reference=None)
    assert account.balance_fen(E) == 1000
    assert event.balance_after_fen == 1000
    assert event.postings == [
        {"ledger_account": "clearing:wechat", "debit_fen": 1000, "credit_fen": 0},
        {"ledger_account": account.wallet_account(E), "debit_fen": 0, "credit_fen": 1000}]


def test_refund_never_more_than_the_wallet_holds():
    account = new_account()
    account.top_up(ctx(), wallet=E, amount_fen=500, channel="cash", reference=None)
    with pytest.raises(InsufficientBalance):
        account.refund(ctx(), wallet=E, amount_fen=501, channel="cash", reason=None,
                       reference=None)
    account.refund(ctx(), wallet=E, amount_fen=500, channel="cash", reason=None, reference=None)
    assert account.balance_fen(E) == 0


def test_wallets_are_separate():
    account = new_account()
    account.top_up(ctx(), wallet=Wallet.water, amount_fen=300, channel="cash", reference=None)
    with pytest.raises(InsufficientBalance):
        account.refund(ctx(), wallet=E, amount_fen=1, channel="cash", reason=None, reference=None)
    assert account.balances_fen == {"electricity": 0, "water": 300, "property_fee": 0}


@pytest.mark.parametrize("amount", [0, -1])
def test_top_up_must_be_positive(amount):
    with pytest.raises(InvalidAmount):
        new_account().top_up(ctx(), wallet=E, amount_fen=amount, channel="cash", reference=None)


def test_reversal_mirrors_the_original_and_refuses_to_go_negative_unless_forced():
    account = new_account()
    top_up = account.top_up(ctx(), wallet=E, amount_fen=800, channel="cash", reference=None)
    account.refund(ctx(), wallet=E, amount_fen=300, channel="cash", reason=None, reference=None)
    from domain.chart import postings_from_dicts
    original = postings_from_dicts(top_up.postings)
    with pytest.raises(InsufficientBalance):
        account.reverse(ctx(), original_id=uuid.uuid4(), wallet=E, original_postings=original,
                        amount_fen=800, reason="wrong shop", force=False)
    event = account.reverse(ctx(), original_id=uuid.uuid4(), wallet=E,
                            original_postings=original, amount_fen=800, reason="wrong shop",
                            force=True)
    assert account.balance_fen(E) == -300
    assert effect_on(account.wallet_account(E), postings_from_dicts(event.postings)) == -800


def test_adjustment_needs_a_reason_and_is_signed():
    account = new_account()
    with pytest.raises(InvalidRequest):
        account.adjust(ctx(), wallet=E, delta_fen=100, reason=" ", force=False)
    account.adjust(ctx(), wallet=E, delta_fen=100, reason="meter fault credit", force=False)
    account.adjust(ctx(), wallet=E, delta_fen=-40, reason="correction", force=False)
    assert account.balance_fen(E) == 60
    with pytest.raises(InsufficientBalance):
        account.adjust(ctx(), wallet=E, delta_fen=-61, reason="too much", force=False)


def test_close_refunds_every_wallet_and_then_accepts_no_money():
    account = new_account()
    account.top_up(ctx(), wallet=E, amount_fen=700, channel="cash", reference=None)
    account.gift(ctx(), wallet=Wallet.water, amount_fen=50, reason="promo", reference=None)
    settled = account.close(ctx(), settlement="refund", channel="bank", reason="moved out")
    assert {(e.wallet, e.amount_fen) for e in settled} == {("electricity", 700), ("water", 50)}
    assert account.balances_fen == {"electricity": 0, "water": 0, "property_fee": 0}
    assert account.is_closed
    with pytest.raises(AccountClosed):
        account.top_up(ctx(), wallet=E, amount_fen=1, channel="cash", reference=None)
    with pytest.raises(AccountClosed):
        account.gift(ctx(), wallet=E, amount_fen=1, reason="x", reference=None)


def test_forfeit_books_the_remainder_as_revenue():
    account = new_account()
    account.top_up(ctx(), wallet=E, amount_fen=700, channel="cash", reference=None)
    (event,) = account.close(ctx(), settlement="forfeit", channel="cash", reason=None)
    assert {"ledger_account": "revenue:forfeited", "debit_fen": 0, "credit_fen": 700} in \
        event.postings


def test_an_account_in_arrears_cannot_be_closed():
    account = new_account()
    account.adjust(ctx(), wallet=E, delta_fen=-10, reason="debt", force=True)
    with pytest.raises(AccountInArrears):
        account.close(ctx(), settlement="refund", channel="cash", reason=None)
