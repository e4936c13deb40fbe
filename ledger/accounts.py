"""Accounts and their money: open, top up, refund, gift, adjust, close, reverse.

Each money command saves the account's money event and a ``Transaction`` record in one
atomic write. The record's id comes from the idempotency key, so a duplicate request,
even one racing on another process, collides on the event store's unique constraint and
is answered from the first request's stored result. A version conflict on the account
(another writer got there first) is decided again on the stored state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from domain.account import Account, MoneyContext
from domain.chart import Channel, Wallet
from domain.errors import (
    AccountNotFound,
    IdempotencyConflict,
    InvalidRequest,
    TransactionNotFound,
)
from domain.transaction import Transaction, account_id_for, fingerprint, transaction_id_for
from ledger.commands import (
    Adjust,
    Command,
    Handler,
    CloseAccount,
    Gift,
    MoneyCommand,
    OpenAccount,
    Refund,
    Reverse,
    TopUp,
)
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader
from ledger.outcome import Outcome, position_of
from ledger.records import transaction_record

DEFAULT_MAX_TOP_UP_FEN = 10_000_000
MAX_FUTURE_SKEW = timedelta(minutes=5)


class AccountService:
    """Accounts and their money, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 max_top_up_fen: int = DEFAULT_MAX_TOP_UP_FEN) -> None:
        assert max_top_up_fen > 0
        self.store = store
        self.bus = bus
        self.clock = clock
        self.max_top_up_fen = max_top_up_fen

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        money = {kind: self.carry_out_money for kind in (TopUp, Refund, Gift, Adjust,
                                                         CloseAccount)}
        return {**money, Reverse: self.carry_out_reversal, OpenAccount: self.carry_out_open}

    # -- accounts --------------------------------------------------------------------

    def open_account(self, *, name: str, actor: dict, site_id: str | None = None,
                     unit: str | None = None, contact: str | None = None,
                     phone: str | None = None, area_m2: str | None = None,
                     idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_open(OpenAccount(name, site_id, unit, contact, phone, area_m2,
                                               idempotency_key), actor)

    def carry_out_open(self, command: OpenAccount, actor: dict) -> Outcome:
        """Open the account once: the same key again answers the first opening."""
        digest = fingerprint("open_account", **command.request())
        key = command.idempotency_key
        account_id = account_id_for(key) if key else uuid4()
        existing = self.store.find(account_id)
        if existing is not None:
            return self._replay_open(existing, digest)
        account = command.decide(account_id, actor, digest)
        try:
            recordings = self.store.save(account)
        except IntegrityError:
            return self._replay_open(self.store.repository.get(account_id), digest)
        return Outcome(self._opened_result(account), True, position_of(recordings))

    def _replay_open(self, account: Account, digest: str) -> Outcome:
        if account.request_fingerprint != digest:
            raise IdempotencyConflict("this Idempotency-Key was used for another request")
        first = next(iter(self.store.events.get(account.id, lte=1)))
        opened = Account.open(account_id=account.id, actor=first.actor,
                              idempotency_key=first.idempotency_key,
                              request_fingerprint=first.request_fingerprint, name=first.name,
                              site_id=first.site_id, unit=first.unit, contact=first.contact,
                              phone=first.phone, area_m2=first.area_m2)
        return Outcome(self._opened_result(opened, first.timestamp), False)

    @staticmethod
    def _opened_result(account: Account, opened_at: datetime | None = None) -> dict[str, Any]:
        return {"account_id": str(account.id), "status": account.status,
                "opened_at": (opened_at or account.created_on).isoformat()}

    def get_account(self, account_id: UUID) -> Account:
        account = self.store.find(account_id)
        if not isinstance(account, Account):
            raise AccountNotFound(f"account {account_id} does not exist")
        return account

    def account_events(self, account_id: UUID) -> list:
        self.get_account(account_id)
        return list(self.store.events.get(account_id))

    # -- money -----------------------------------------------------------------------

    def top_up(self, account_id: UUID, *, amount_fen: int, channel: str, actor: dict,
               wallet: str = Wallet.electricity.value, reference: str | None = None,
               effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_money(TopUp(account_id, amount_fen, channel, wallet, reference,
                                          effective_at, idempotency_key), actor)

    def refund(self, account_id: UUID, *, amount_fen: int, channel: str, actor: dict,
               wallet: str = Wallet.electricity.value, reason: str | None = None,
               reference: str | None = None, effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_money(Refund(account_id, amount_fen, channel, wallet, reason,
                                           reference, effective_at, idempotency_key), actor)

    def gift(self, account_id: UUID, *, amount_fen: int, reason: str, actor: dict,
             wallet: str = Wallet.electricity.value, reference: str | None = None,
             effective_at: datetime | None = None, idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_money(Gift(account_id, amount_fen, reason, wallet, reference,
                                         effective_at, idempotency_key), actor)

    def adjust(self, account_id: UUID, *, delta_fen: int, reason: str, actor: dict,
               wallet: str = Wallet.electricity.value, force: bool = False,
               effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_money(Adjust(account_id, delta_fen, reason, wallet, force,
                                           effective_at, idempotency_key), actor)

    def close_account(self, account_id: UUID, *, settlement: str, actor: dict,
                      channel: str = Channel.cash.value, reason: str | None = None,
                      idempotency_key: str | None = None) -> Outcome:
        return self.carry_out_money(CloseAccount(account_id, settlement, channel, reason,
                                                 idempotency_key), actor)

    def reverse(self, transaction_id: UUID, *, actor: dict, reason: str | None = None,
                force: bool = False, idempotency_key: str | None = None) -> Outcome:
        """Post the exact mirror of a top-up, refund or gift, at most once."""
        return self.carry_out_reversal(Reverse(transaction_id, reason, force,
                                               idempotency_key), actor)

    def carry_out_money(self, command: MoneyCommand, actor: dict) -> Outcome:
        """One money command: its event and its ``Transaction`` record, saved together."""
        request = command.request(self.max_top_up_fen)
        digest = fingerprint(command.kind, account_id=str(command.account_id), **request)
        key = command.idempotency_key
        transaction_id = transaction_id_for(key) if key else uuid4()

        def decide(load: Loader) -> tuple[list[Any], dict[str, Any]]:
            account = load(command.account_id, Account, AccountNotFound)
            now = self.clock()
            ctx = MoneyContext(transaction_id, self._effective(command.effective_at, now), now,
                               actor, key)
            record = transaction_record(command.kind, account, ctx,
                                        command.decide(account, ctx), digest)
            return [account, record], record.result

        return self.bus.write(command.account_id, transaction_id, digest, decide)

    def carry_out_reversal(self, command: Reverse, actor: dict) -> Outcome:
        transaction_id, reason, force = command.transaction_id, command.reason, command.force
        idempotency_key = command.idempotency_key
        digest = fingerprint("reversal", transaction_id=str(transaction_id), reason=reason,
                             force=force)
        reversal_id = transaction_id_for(idempotency_key) if idempotency_key else uuid4()

        def decide(load: Loader) -> tuple[list[Any], dict[str, Any]]:
            original = load(transaction_id, Transaction, TransactionNotFound)
            original.require_reversible()
            account = load(original.account_id, Account, AccountNotFound)
            now = self.clock()
            ctx = MoneyContext(reversal_id, now, now, actor, idempotency_key)
            event = account.reverse(ctx, original_id=original.id, wallet=Wallet(original.wallet),
                                    original_postings=original.posting_list,
                                    amount_fen=original.amount_fen, reason=reason, force=force)
            original.mark_reversed(reversal_id, now, actor)
            record = transaction_record("reversal", account, ctx, [event], digest,
                                        corrects=original.id)
            return [account, original, record], record.result

        # Shard by the account, found from the original (a read, but reversals are rare).
        original = self.get_transaction(transaction_id)
        return self.bus.write(original.account_id, reversal_id, digest, decide)

    def get_transaction(self, transaction_id: UUID) -> Transaction:
        record = self.store.find(transaction_id)
        if not isinstance(record, Transaction):
            raise TransactionNotFound(f"transaction {transaction_id} does not exist")
        return record

    def _effective(self, effective_at: datetime | None, now: datetime) -> datetime:
        if effective_at is None:
            return now
        if effective_at.tzinfo is None:
            raise InvalidRequest("effective_at needs a time zone offset")
        if effective_at > now + MAX_FUTURE_SKEW:
            raise InvalidRequest("effective_at may not lie in the future")
        return effective_at
