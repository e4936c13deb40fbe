"""Random sequences of operations against a model: money is conserved at every step.

After each step: the trial balance is zero, each wallet equals the sum of its postings
(aggregate, balance projection and journal agree), and the model's expected balances
hold. At the end of each run the read models equal a fresh rebuild.
"""

from __future__ import annotations

import tempfile
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bootstrap import Platform
from domain import errors
from ledger.config import Settings
from tests.conftest import FrozenClock, read_models

WALLETS = ["electricity", "water", "property_fee"]
amounts = st.integers(min_value=1, max_value=50_000)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.clock = FrozenClock()
        self.platform = Platform(Settings(database_url=f"sqlite:///{self.folder.name}/l.db"),
                                 clock=self.clock)
        self.ledger = self.platform.ledger
        self.expected: dict[uuid.UUID, dict[str, int]] = {}
        self.closed: set[uuid.UUID] = set()
        self.reversible: list[tuple[uuid.UUID, uuid.UUID, str, int]] = []

    def teardown(self) -> None:
        try:
            self.platform.catch_up()
            projected = read_models(self.platform)
            self.platform.rebuild_projections()
            assert read_models(self.platform) == projected
        finally:
            self.platform.close()
            self.folder.cleanup()

    def _open_ids(self) -> list[uuid.UUID]:
        return [a for a in self.expected if a not in self.closed]

    @rule()
    def open_account(self) -> None:
        outcome = self.ledger.accounts.open_account(name="Shop", actor={"kind": "test"})
        self.expected[uuid.UUID(outcome.result["account_id"])] = dict.fromkeys(WALLETS, 0)

    @precondition(lambda self: self._open_ids())
    @rule(data=st.data(), amount=amounts, wallet=st.sampled_from(WALLETS),
          channel=st.sampled_from(["cash", "bank", "wechat", "alipay"]))
    def top_up(self, data, amount, wallet, channel) -> None:
        account = data.draw(st.sampled_from(self._open_ids()))
        outcome = self.ledger.accounts.top_up(account, amount_fen=amount, channel=channel,
                                              wallet=wallet, actor={})
        self.expected[account][wallet] += amount
        self.reversible.append((uuid.UUID(outcome.result["transaction_id"]), account, wallet,
                                amount))

    @precondition(lambda self: self._open_ids())
    @rule(data=st.data(), amount=amounts, wallet=st.sampled_from(WALLETS))
    def refund(self, data, amount, wallet) -> None:
        account = data.draw(st.sampled_from(self._open_ids()))
        try:
            outcome = self.ledger.accounts.refund(account, amount_fen=amount, channel="cash",
                                                  wallet=wallet, actor={})
        except errors.InsufficientBalance:
            assert amount > self.expected[account][wallet]
            return
        assert amount <= self.expected[account][wallet]
        self.expected[account][wallet] -= amount
        self.reversible.append((uuid.UUID(outcome.result["transaction_id"]), account, wallet,
                                -amount))

    @precondition(lambda self: self._open_ids())
    @rule(data=st.data(), amount=amounts)
    def gift(self, data, amount) -> None:
        account = data.draw(st.sampled_from(self._open_ids()))
        self.ledger.accounts.gift(account, amount_fen=amount, reason="promo", actor={})
        self.expected[account]["electricity"] += amount

    @precondition(lambda self: self._open_ids())
    @rule(data=st.data(), delta=st.integers(min_value=-5_000, max_value=5_000).filter(bool),
          force=st.booleans())
    def adjust(self, data, delta, force) -> None:
        account = data.draw(st.sampled_from(self._open_ids()))
        try:
            self.ledger.accounts.adjust(account, delta_fen=delta, reason="audit", force=force,
                                        actor={})
        except errors.InsufficientBalance:
            assert not force and self.expected[account]["electricity"] + delta < 0
            return
        self.expected[account]["electricity"] += delta

    @precondition(lambda self: self.reversible)
    @rule(data=st.data(), force=st.booleans())
    def reverse(self, data, force) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(self.reversible) - 1))
        transaction_id, account, wallet, delta = self.reversible[index]
        try:
            self.ledger.accounts.reverse(transaction_id, actor={}, reason="mistake", force=force)
        except errors.AccountClosed:
            assert account in self.closed
            return
        except errors.InsufficientBalance:
            assert not force and self.expected[account][wallet] - delta < 0
            return
        self.reversible.pop(index)
        self.expected[account][wallet] -= delta

    @precondition(lambda self: self._open_ids())
    @rule(data=st.data(), settlement=st.sampled_from(["refund", "forfeit"]))
    def close(self, data, settlement) -> None:
        account = data.draw(st.sampled_from(self._open_ids()))
        try:
            self.ledger.accounts.close_account(account, settlement=settlement, actor={})
        except errors.AccountInArrears:
            assert min(self.expected[account].values()) < 0
            return
        self.closed.add(account)
        self.expected[account] = dict.fromkeys(WALLETS, 0)

    @rule(minutes=st.integers(min_value=1, max_value=600))
    def time_passes(self, minutes) -> None:
        self.clock.advance(minutes=minutes)

    @invariant()
    def money_is_conserved(self) -> None:
        self.platform.catch_up()
        rows = self.platform.queries.trial_balance()
        assert sum(r["debit_fen"] for r in rows) == sum(r["credit_fen"] for r in rows)
        as_of = self.platform.queries.trial_balance(as_of=self.clock.now)
        assert sum(r["debit_fen"] for r in as_of) == sum(r["credit_fen"] for r in as_of)
        totals = {r["ledger_account"]: r["credit_fen"] - r["debit_fen"] for r in rows}
        for account_id, wallets in self.expected.items():
            aggregate = self.ledger.accounts.get_account(account_id)
            projected = self.platform.queries.wallet_balances(str(account_id))
            journal = self.platform.queries.balance_as_of(str(account_id), self.clock.now)
            for wallet, expected in wallets.items():
                assert aggregate.balance_fen(wallet) == expected
                assert projected[wallet]["balance_fen"] == expected
                assert journal[wallet] == expected
                assert totals.get(f"wallet:{account_id}:{wallet}", 0) == expected


TestLedgerStateful = LedgerMachine.TestCase
TestLedgerStateful.settings = settings(max_examples=30, stateful_step_count=25, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
