"""The ledger application: one method per command, idempotent and safe under concurrency.

Each money command saves the account's money event and a ``Transaction`` record in one
atomic write. The record's id comes from the idempotency key, so a duplicate request,
even one racing on another process, collides on the event store's unique constraint and
is answered from the first request's stored result. A version conflict on the account
(another writer got there first) is decided again on the stored state.

Commands go through a group committer (``ledger/group_commit.py``) that stores the
commands arriving together in one transaction; ``write_alone`` is the ordinary one-by-one
path it falls back to.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.persistence import IntegrityError

from domain.account import Account, MoneyContext
from domain.chart import Channel, Wallet
from domain.cutoff import SiteCutoff
from domain.device_command import DeviceCommand
from domain.errors import (
    AccountNotFound,
    AmountTooLarge,
    ConcurrencyLimitExceeded,
    DomainError,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    TransactionNotFound,
)
from domain.money import fen_to_yuan_text
from domain.transaction import Transaction, account_id_for, fingerprint, transaction_id_for
from ledger.clock import Clock, utc_now
from ledger.cutoff import CutoffCommands
from ledger.devices import DEVICE_COMMAND, DeviceCommands
from ledger.group_commit import Decide, GroupCommitter, Loader
from ledger.metering import DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR, MeteringCommands
from ledger.outcome import Outcome, position_of
from ledger.access import AccessCommands
from ledger.alerts import AlertCommands
from ledger.payments import PaymentCommands
from ledger.property import PropertyCommands

DEFAULT_MAX_TOP_UP_FEN = 10_000_000
DEFAULT_MAX_WRITE_ATTEMPTS = 25
DEFAULT_GROUP_COMMIT_MAX_COMMANDS = 200
DEFAULT_GROUP_COMMIT_LINGER_S = 0.002
DEFAULT_GROUP_COMMIT_STEADY_LINGER_S = 0.01
DEFAULT_GROUP_COMMIT_SHARDS = 1
DEFAULT_HOT_AGGREGATES = 50_000
MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_BACKOFF_S = 0.05


class Ledger(AccessCommands, AlertCommands, PropertyCommands, PaymentCommands, DeviceCommands,
             CutoffCommands, MeteringCommands, Application):
    name = "Ledger"
    # A site's cut-off book gathers its timetables' switches day after day.
    snapshotting_intervals = {Account: 200, SiteCutoff: 200}

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = utc_now,
                 max_top_up_fen: int = DEFAULT_MAX_TOP_UP_FEN,
                 max_write_attempts: int = DEFAULT_MAX_WRITE_ATTEMPTS,
                 group_commit_max_commands: int = DEFAULT_GROUP_COMMIT_MAX_COMMANDS,
                 group_commit_linger_s: float = DEFAULT_GROUP_COMMIT_LINGER_S,
                 group_commit_steady_linger_s: float = DEFAULT_GROUP_COMMIT_STEADY_LINGER_S,
                 group_commit_shards: int = DEFAULT_GROUP_COMMIT_SHARDS,
                 hot_aggregates: int = DEFAULT_HOT_AGGREGATES,
                 max_plausible_wh_per_hour: int = DEFAULT_MAX_PLAUSIBLE_WH_PER_HOUR,
                 rng: random.Random | None = None) -> None:
        super().__init__(env)
        self.clock = clock
        self.max_top_up_fen = max_top_up_fen
        self.max_write_attempts = max_write_attempts
        self.max_plausible_wh_per_hour = max_plausible_wh_per_hour
        self.rng = rng or random.Random()
        self.bulk_loader: Callable[[Ledger, list[UUID]], dict[UUID, Any]] | None = None
        # Aggregates that are never snapshotted are read without first asking the
        # snapshot table: one query instead of two.
        self._unsnapshotted = Repository(event_store=self.events)
        # Commands may be sharded by account over several committers (one account is only
        # ever changed by one of them). Each save holds the event store's table lock, so
        # fewer, larger saves beat more of them: one committer is the default.
        self.committers = [GroupCommitter(self, group_commit_max_commands,
                                          group_commit_linger_s, hot_aggregates,
                                          group_commit_steady_linger_s)
                           for _ in range(group_commit_shards if group_commit_max_commands > 1
                                          else 0)]

    def close(self) -> None:
        for committer in self.committers:
            committer.stop()
        super().close()

    # -- accounts --------------------------------------------------------------------

    def open_account(self, *, name: str, actor: dict, site_id: str | None = None,
                     unit: str | None = None, contact: str | None = None,
                     phone: str | None = None, area_m2: str | None = None,
                     idempotency_key: str | None = None) -> Outcome:
        request = dict(name=name, site_id=site_id, unit=unit, contact=contact, phone=phone,
                       area_m2=area_m2)
        digest = fingerprint("open_account", **request)
        account_id = account_id_for(idempotency_key) if idempotency_key else uuid4()
        existing = self._find(account_id)
        if existing is not None:
            return self._replay_open(existing, digest)
        account = Account.open(account_id=account_id, actor=actor,
                               idempotency_key=idempotency_key, request_fingerprint=digest,
                               **request)
        try:
            recordings = self.save(account)
        except IntegrityError:
            return self._replay_open(self.repository.get(account_id), digest)
        return Outcome(self._opened_result(account), True, position_of(recordings))

    def _replay_open(self, account: Account, digest: str) -> Outcome:
        if account.request_fingerprint != digest:
            raise IdempotencyConflict("this Idempotency-Key was used for another request")
        first = next(iter(self.events.get(account.id, lte=1)))
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
        account = self._find(account_id)
        if not isinstance(account, Account):
            raise AccountNotFound(f"account {account_id} does not exist")
        return account

    def account_events(self, account_id: UUID) -> list:
        self.get_account(account_id)
        return list(self.events.get(account_id))

    # -- money -----------------------------------------------------------------------

    def top_up(self, account_id: UUID, *, amount_fen: int, channel: str, actor: dict,
               wallet: str = Wallet.electricity.value, reference: str | None = None,
               effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        if amount_fen > self.max_top_up_fen:
            raise AmountTooLarge(f"a top-up may not exceed {fen_to_yuan_text(self.max_top_up_fen)}"
                                 " yuan")
        channel, wallet_ = _channel(channel), _wallet(wallet)
        request = dict(amount_fen=amount_fen, channel=channel, wallet=wallet_.value,
                       reference=reference, effective_at=_iso(effective_at))
        return self._money("top_up", account_id, request, idempotency_key, actor, effective_at,
                           lambda account, ctx: [account.top_up(
                               ctx, wallet=wallet_, amount_fen=amount_fen, channel=channel,
                               reference=reference)])

    def refund(self, account_id: UUID, *, amount_fen: int, channel: str, actor: dict,
               wallet: str = Wallet.electricity.value, reason: str | None = None,
               reference: str | None = None, effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        channel, wallet_ = _channel(channel), _wallet(wallet)
        request = dict(amount_fen=amount_fen, channel=channel, wallet=wallet_.value,
                       reason=reason, reference=reference, effective_at=_iso(effective_at))
        return self._money("refund", account_id, request, idempotency_key, actor, effective_at,
                           lambda account, ctx: [account.refund(
                               ctx, wallet=wallet_, amount_fen=amount_fen, channel=channel,
                               reason=reason, reference=reference)])

    def gift(self, account_id: UUID, *, amount_fen: int, reason: str, actor: dict,
             wallet: str = Wallet.electricity.value, reference: str | None = None,
             effective_at: datetime | None = None, idempotency_key: str | None = None) -> Outcome:
        if amount_fen > self.max_top_up_fen:
            raise AmountTooLarge("a gift may not exceed the maximum top-up")
        if not reason or not reason.strip():
            raise InvalidRequest("a gift needs a reason")
        wallet_ = _wallet(wallet)
        request = dict(amount_fen=amount_fen, wallet=wallet_.value, reason=reason,
                       reference=reference, effective_at=_iso(effective_at))
        return self._money("gift", account_id, request, idempotency_key, actor, effective_at,
                           lambda account, ctx: [account.gift(
                               ctx, wallet=wallet_, amount_fen=amount_fen, reason=reason,
                               reference=reference)])

    def adjust(self, account_id: UUID, *, delta_fen: int, reason: str, actor: dict,
               wallet: str = Wallet.electricity.value, force: bool = False,
               effective_at: datetime | None = None,
               idempotency_key: str | None = None) -> Outcome:
        if abs(delta_fen) > self.max_top_up_fen:
            raise AmountTooLarge("an adjustment may not exceed the maximum top-up")
        wallet_ = _wallet(wallet)
        request = dict(delta_fen=delta_fen, wallet=wallet_.value, reason=reason, force=force,
                       effective_at=_iso(effective_at))
        return self._money("adjustment", account_id, request, idempotency_key, actor,
                           effective_at,
                           lambda account, ctx: [account.adjust(
                               ctx, wallet=wallet_, delta_fen=delta_fen, reason=reason,
                               force=force)])

    def close_account(self, account_id: UUID, *, settlement: str, actor: dict,
                      channel: str = Channel.cash.value, reason: str | None = None,
                      idempotency_key: str | None = None) -> Outcome:
        channel = _channel(channel)
        request = dict(settlement=settlement, channel=channel, reason=reason)
        return self._money("close", account_id, request, idempotency_key, actor, None,
                           lambda account, ctx: account.close(
                               ctx, settlement=settlement, channel=channel, reason=reason))

    def reverse(self, transaction_id: UUID, *, actor: dict, reason: str | None = None,
                force: bool = False, idempotency_key: str | None = None) -> Outcome:
        """Post the exact mirror of a top-up, refund or gift, at most once."""
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
            record = self._transaction_record("reversal", account, ctx, [event], digest,
                                              corrects=original.id)
            return [account, original, record], record.result

        # Shard by the account, found from the original (a read, but reversals are rare).
        original = self.get_transaction(transaction_id)
        return self._write(original.account_id, reversal_id, digest, decide)

    def get_transaction(self, transaction_id: UUID) -> Transaction:
        record = self._find(transaction_id)
        if not isinstance(record, Transaction):
            raise TransactionNotFound(f"transaction {transaction_id} does not exist")
        return record

    # -- internals -------------------------------------------------------------------

    def _money(self, kind: str, account_id: UUID, request: dict[str, Any],
               idempotency_key: str | None, actor: dict, effective_at: datetime | None,
               decide: Callable[[Account, MoneyContext], Sequence[Account.MoneyEvent]]
               ) -> Outcome:
        digest = fingerprint(kind, account_id=str(account_id), **request)
        transaction_id = transaction_id_for(idempotency_key) if idempotency_key else uuid4()

        def decide_and_record(load: Loader) -> tuple[list[Any], dict[str, Any]]:
            account = load(account_id, Account, AccountNotFound)
            now = self.clock()
            ctx = MoneyContext(transaction_id, self._effective(effective_at, now), now, actor,
                               idempotency_key)
            record = self._transaction_record(kind, account, ctx, decide(account, ctx), digest)
            return [account, record], record.result

        return self._write(account_id, transaction_id, digest, decide_and_record)

    def _write(self, account_id: UUID, transaction_id: UUID, digest: str,
               decide: Decide, prefetched: dict[UUID, Any] | None = None) -> Outcome:
        committer = self._committer_for(account_id)
        if committer is not None:
            return committer.submit(transaction_id, digest, decide, prefetched)
        return self.write_alone(transaction_id, digest, decide)

    def _enqueue(self, shard_id: UUID, transaction_id: UUID, digest: str, decide: Decide,
                 needs: tuple[UUID, ...] = (),
                 expand: Callable[[Any], list[UUID]] | None = None) -> Future | None:
        """Queue a command on its committer and return at once with a future of its
        ``Outcome``; None when group commit is off (the caller writes synchronously)."""
        committer = self._committer_for(shard_id)
        if committer is None:
            return None
        return committer.enqueue(transaction_id, digest, decide, needs, expand)

    def _committer_for(self, shard_id: UUID) -> GroupCommitter | None:
        """The committer that owns this id (an aggregate is only ever changed by one)."""
        if not self.committers:
            return None
        return self.committers[shard_id.int % len(self.committers)]

    def write_alone(self, transaction_id: UUID, digest: str, decide: Decide) -> Outcome:
        """Decide on the stored state and save atomically, retrying on conflicts.

        A save fails on the unique constraint when another writer moved one of the
        aggregates on since it was read (it is decided again) or when a duplicate of this
        request got there first (it is answered from the first request's stored result).
        A request refused by the rules may be a duplicate too: a retried refund must be
        replayed, not judged again against the balance that the first one lowered.
        """
        for attempt in range(self.max_write_attempts):
            try:
                aggregates, result = decide(self.load)
            except NotFound:
                raise
            except DomainError:
                replay = self.replay(transaction_id, digest)
                if replay is not None:
                    return replay
                raise
            try:
                recordings = self.save(*aggregates)
            except IntegrityError:
                replay = self.replay(transaction_id, digest)
                if replay is not None:
                    return replay
                self._backoff(attempt)
                continue
            return Outcome(result, True, position_of(recordings))
        raise ConcurrencyLimitExceeded("too many concurrent writers; retry the request")

    def load_many(self, ids: list[UUID]) -> dict[UUID, Any]:
        """Many aggregates as stored; the composition root may plug in a bulk loader."""
        if self.bulk_loader is not None:
            return self.bulk_loader(self, ids)
        return {i: a for i in ids if (a := self._find(i)) is not None}

    def load(self, aggregate_id: UUID, kind: type, missing: type[DomainError]) -> Any:
        """An aggregate to decide on, as stored."""
        found = self._find(aggregate_id, kind)
        if not isinstance(found, kind):
            raise missing(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        return found

    def _transaction_record(self, kind: str, account: Account, ctx: MoneyContext,
                events: Sequence[Account.MoneyEvent], digest: str,
                corrects: UUID | None = None) -> Transaction:
        postings = [posting for event in events for posting in event.postings]
        wallets = {event.wallet for event in events}
        wallet = wallets.pop() if len(wallets) == 1 else None
        amount_fen = sum(event.amount_fen for event in events)
        result: dict[str, Any] = {
            "transaction_id": str(ctx.transaction_id), "account_id": str(account.id),
            "kind": kind, "wallet": wallet, "amount_fen": amount_fen,
            "balance_after_fen": events[-1].balance_after_fen if wallet else None,
            "balances_after_fen": dict(account.balances_fen),
            "channel": events[0].channel if events else None,
            "reference": events[0].reference if events else None,
            "effective_at": ctx.effective_at.isoformat(),
            "recorded_at": ctx.recorded_at.isoformat(),
            "corrects": str(corrects) if corrects else None,
            "status": account.status,
        }
        return Transaction.record(
            transaction_id=ctx.transaction_id, account_id=account.id, kind=kind, wallet=wallet,
            amount_fen=amount_fen, postings=postings, effective_at=ctx.effective_at,
            recorded_at=ctx.recorded_at, actor=ctx.actor, idempotency_key=ctx.idempotency_key,
            request_fingerprint=digest, corrects=corrects, result=result)

    def replay(self, transaction_id: UUID, digest: str) -> Outcome | None:
        record = self._find(transaction_id)
        if record is None:
            return None
        if digest == DEVICE_COMMAND and isinstance(record, DeviceCommand):
            return Outcome({"command_id": str(record.id), "existing": True}, False)
        if not isinstance(record, Transaction) or record.request_fingerprint != digest:
            raise IdempotencyConflict("this Idempotency-Key was used for another request")
        return Outcome(record.result, False)

    def _find(self, aggregate_id: UUID, kind: type | None = None) -> Any:
        repository = self.repository if kind is None or kind in self.snapshotting_intervals \
            else self._unsnapshotted
        try:
            return repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _effective(self, effective_at: datetime | None, now: datetime) -> datetime:
        if effective_at is None:
            return now
        if effective_at.tzinfo is None:
            raise InvalidRequest("effective_at needs a time zone offset")
        if effective_at > now + MAX_FUTURE_SKEW:
            raise InvalidRequest("effective_at may not lie in the future")
        return effective_at

    def _backoff(self, attempt: int) -> None:
        time.sleep(self.rng.uniform(0, min(MAX_BACKOFF_S, 0.001 * 2 ** attempt)))


def _channel(channel: str) -> str:
    try:
        return Channel(channel).value
    except ValueError:
        raise InvalidRequest(f"unknown channel {channel!r}; one of "
                             f"{', '.join(c.value for c in Channel)}") from None


def _wallet(wallet: str) -> Wallet:
    try:
        return Wallet(wallet)
    except ValueError:
        raise InvalidRequest(f"unknown wallet {wallet!r}; one of "
                             f"{', '.join(w.value for w in Wallet)}") from None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None
