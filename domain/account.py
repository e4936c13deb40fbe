"""The tenant account (a shop): wallets per utility, moved only by balanced money events.

Every money event carries its postings, the wallet's balance after it, two times
(``effective_at`` business time, ``recorded_at`` when the system learned it), the actor,
and where given the idempotency key and the transaction it corrects. Stored event types
never change shape: a new shape gets a ``class_version`` and an upcaster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.chart import (
    ADJUSTMENT_EQUITY,
    FORFEITED_REVENUE,
    SUBSIDY,
    Posting,
    Wallet,
    assert_balanced,
    clearing_account,
    effect_on,
    postings_from_dicts,
    postings_to_dicts,
    revenue_account,
    transfer,
    wallet_account,
)
from domain.errors import AccountClosed, AccountInArrears, InsufficientBalance, InvalidRequest
from domain.money import fen_to_yuan_text, require_positive

OPEN = "open"
CLOSED = "closed"


@dataclass(frozen=True)
class MoneyContext:
    """What every money event records besides its amounts."""

    transaction_id: UUID
    effective_at: datetime
    recorded_at: datetime
    actor: dict[str, Any]
    idempotency_key: str | None = None


class Account(Aggregate):
    class Opened(Aggregate.Created):
        name: str
        site_id: str | None
        unit: str | None
        contact: str | None
        phone: str | None
        area_m2: str | None
        actor: dict
        idempotency_key: str | None
        request_fingerprint: str

    class MoneyEvent(Aggregate.Event):
        """Base of every event that moves money; subclasses only name the kind."""

        transaction_id: UUID
        wallet: str
        amount_fen: int
        postings: list
        balance_after_fen: int
        effective_at: datetime
        recorded_at: datetime
        actor: dict
        idempotency_key: str | None
        corrects: UUID | None
        channel: str | None
        reference: str | None
        reason: str | None

        def apply(self, aggregate: Account) -> None:
            aggregate._apply_money(self)

    class TopUpCredited(MoneyEvent):
        pass

    class RefundPaid(MoneyEvent):
        pass

    class GiftCredited(MoneyEvent):
        pass

    class BalanceAdjusted(MoneyEvent):
        pass

    class TransactionReversed(MoneyEvent):
        pass

    class ConsumptionCharged(MoneyEvent):
        """Energy or water used, priced by tariff: debits the wallet, credits revenue."""

    class CommonAreaCharged(MoneyEvent):
        """A shop's share of a common-area pool's cost for one period."""

    class PropertyFeeCharged(MoneyEvent):
        """The monthly property fee, from the property_fee wallet."""

    class BalanceSettled(MoneyEvent):
        """The final settlement of one wallet when the account is closed."""

    class Closed(Aggregate.Event):
        settlement: str
        reason: str | None
        transaction_id: UUID
        recorded_at: datetime
        actor: dict

        def apply(self, aggregate: Account) -> None:
            aggregate.status = CLOSED
            aggregate.closed_at = self.recorded_at

    def __init__(self, name: str, site_id: str | None, unit: str | None, contact: str | None,
                 phone: str | None, area_m2: str | None, actor: dict,
                 idempotency_key: str | None, request_fingerprint: str) -> None:
        self.name = name
        self.site_id = site_id
        self.unit = unit
        self.contact = contact
        self.phone = phone
        self.area_m2 = area_m2
        self.status = OPEN
        self.opened_by = actor
        self.closed_at: datetime | None = None
        self.request_fingerprint = request_fingerprint
        self.balances_fen: dict[str, int] = {w.value: 0 for w in Wallet}
        self.holds: dict[str, dict] = {}  # refunds waiting for the payment provider

    @classmethod
    def open(cls, *, account_id: UUID, name: str, site_id: str | None, unit: str | None,
             contact: str | None, phone: str | None, area_m2: str | None, actor: dict,
             idempotency_key: str | None, request_fingerprint: str) -> Account:
        if not name or not name.strip():
            raise InvalidRequest("an account needs a name")
        return cls._create(cls.Opened, id=account_id, name=name, site_id=site_id, unit=unit,
                           contact=contact, phone=phone, area_m2=area_m2, actor=actor,
                           idempotency_key=idempotency_key,
                           request_fingerprint=request_fingerprint)

    # -- queries ---------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.status == CLOSED

    def balance_fen(self, wallet: Wallet | str) -> int:
        return self.balances_fen[Wallet(wallet).value]

    def wallet_account(self, wallet: Wallet | str) -> str:
        return wallet_account(self.id, wallet)

    def available_fen(self, wallet: Wallet | str) -> int:
        """The balance less what is held for refunds still with the payment provider."""
        wallet = Wallet(wallet).value
        return self.balances_fen[wallet] - sum(h["amount_fen"] for h in self.holds.values()
                                               if h["wallet"] == wallet)

    def hold(self, hold_id: str, wallet: Wallet, amount_fen: int, reason: str) -> None:
        self._require_open()
        require_positive(amount_fen)
        if hold_id in self.holds:
            raise InvalidRequest(f"hold {hold_id} exists")
        if amount_fen > self.available_fen(wallet):
            raise InsufficientBalance(
                f"{fen_to_yuan_text(amount_fen)} yuan cannot be held: "
                f"{fen_to_yuan_text(self.available_fen(wallet))} yuan available")
        self._held(hold_id=hold_id, wallet=Wallet(wallet).value, amount_fen=amount_fen,
                   reason=reason)

    @event("FundsHeld")
    def _held(self, hold_id: str, wallet: str, amount_fen: int, reason: str) -> None:
        self.holds[hold_id] = {"wallet": wallet, "amount_fen": amount_fen}

    @event("HoldReleased")
    def release_hold(self, hold_id: str, reason: str) -> None:
        self.holds.pop(hold_id, None)

    def refund_held(self, ctx: MoneyContext, hold_id: str, channel: str,
                    reference: str | None) -> MoneyEvent:
        """The provider refunded what was held: release the hold, post the refund."""
        held = self.holds[hold_id]
        self.release_hold(hold_id=hold_id, reason="refunded")
        postings = transfer(self.wallet_account(held["wallet"]), clearing_account(channel),
                            held["amount_fen"])
        return self._post(self.RefundPaid, ctx, Wallet(held["wallet"]), held["amount_fen"],
                          postings, channel=channel, reason="refund to the payer",
                          reference=reference)

    # -- commands --------------------------------------------------------------------

    def top_up(self, ctx: MoneyContext, *, wallet: Wallet, amount_fen: int, channel: str,
               reference: str | None) -> MoneyEvent:
        self._require_open()
        require_positive(amount_fen)
        postings = transfer(clearing_account(channel), self.wallet_account(wallet), amount_fen)
        return self._post(self.TopUpCredited, ctx, wallet, amount_fen, postings,
                          channel=channel, reference=reference)

    def refund(self, ctx: MoneyContext, *, wallet: Wallet, amount_fen: int, channel: str,
               reason: str | None, reference: str | None) -> MoneyEvent:
        self._require_open()
        require_positive(amount_fen)
        if amount_fen > self.available_fen(wallet):
            raise InsufficientBalance(
                f"refund of {fen_to_yuan_text(amount_fen)} yuan exceeds the {wallet.value} "
                f"wallet's available balance of "
                f"{fen_to_yuan_text(self.available_fen(wallet))} yuan")
        postings = transfer(self.wallet_account(wallet), clearing_account(channel), amount_fen)
        return self._post(self.RefundPaid, ctx, wallet, amount_fen, postings,
                          channel=channel, reason=reason, reference=reference)

    def gift(self, ctx: MoneyContext, *, wallet: Wallet, amount_fen: int, reason: str,
             reference: str | None) -> MoneyEvent:
        """Subsidy credit: not paid money, booked against ``expense:subsidy``."""
        self._require_open()
        require_positive(amount_fen)
        postings = transfer(SUBSIDY, self.wallet_account(wallet), amount_fen)
        return self._post(self.GiftCredited, ctx, wallet, amount_fen, postings,
                          reason=reason, reference=reference)

    def adjust(self, ctx: MoneyContext, *, wallet: Wallet, delta_fen: int, reason: str,
               force: bool) -> MoneyEvent:
        """A manual correction; positive credits the wallet, negative debits it."""
        self._require_open()
        if delta_fen == 0:
            raise InvalidRequest("an adjustment must not be zero")
        if not reason or not reason.strip():
            raise InvalidRequest("an adjustment needs a reason")
        wallet_acct = self.wallet_account(wallet)
        if delta_fen > 0:
            postings = transfer(ADJUSTMENT_EQUITY, wallet_acct, delta_fen)
        else:
            self._require_not_negative_after(wallet, delta_fen, force, "adjustment")
            postings = transfer(wallet_acct, ADJUSTMENT_EQUITY, -delta_fen)
        return self._post(self.BalanceAdjusted, ctx, wallet, abs(delta_fen), postings,
                          reason=reason)

    def reverse(self, ctx: MoneyContext, *, original_id: UUID, wallet: Wallet,
                original_postings: Sequence[Posting], amount_fen: int, reason: str | None,
                force: bool) -> MoneyEvent:
        """The exact mirror of an earlier transaction of this account."""
        self._require_open()
        postings = [p.mirrored() for p in original_postings]
        delta_fen = effect_on(self.wallet_account(wallet), postings)
        self._require_not_negative_after(wallet, delta_fen, force, "reversal")
        return self._post(self.TransactionReversed, ctx, wallet, amount_fen, postings,
                          reason=reason, corrects=original_id)

    def charge_consumption(self, ctx: MoneyContext, *, wallet: Wallet, amount_fen: int,
                           meter_no: str) -> MoneyEvent:
        """Consumption cannot be refused (the energy was used): the wallet may go below
        zero, and arrears are for enforcement to act on."""
        self._require_open()
        assert amount_fen > 0, amount_fen
        postings = transfer(self.wallet_account(wallet), revenue_account(Wallet(wallet).value),
                            amount_fen)
        return self._post(self.ConsumptionCharged, ctx, wallet, amount_fen, postings,
                          reference=meter_no)

    def charge_common_area(self, ctx: MoneyContext, *, amount_fen: int,
                           reference: str) -> MoneyEvent:
        """Shared costs are charges like consumption: never refused, may go below zero."""
        self._require_open()
        assert amount_fen > 0
        postings = transfer(self.wallet_account(Wallet.electricity),
                            revenue_account("common_area"), amount_fen)
        return self._post(self.CommonAreaCharged, ctx, Wallet.electricity, amount_fen,
                          postings, reference=reference)

    def charge_property_fee(self, ctx: MoneyContext, *, amount_fen: int,
                            reference: str) -> MoneyEvent:
        """Deducted in full: what the wallet cannot cover is property-fee arrears."""
        self._require_open()
        assert amount_fen > 0
        postings = transfer(self.wallet_account(Wallet.property_fee),
                            revenue_account("property_fee"), amount_fen)
        return self._post(self.PropertyFeeCharged, ctx, Wallet.property_fee, amount_fen,
                          postings, reference=reference)

    def close(self, ctx: MoneyContext, *, settlement: str, channel: str,
              reason: str | None) -> list[MoneyEvent]:
        """Settle every wallet (refund to ``channel`` or forfeit), then close."""
        self._require_open()
        if settlement not in ("refund", "forfeit"):
            raise InvalidRequest("settlement must be 'refund' or 'forfeit'")
        if self.holds:
            raise AccountInArrears("refunds are still with the payment provider; close the "
                                   "account when they are settled")
        negative = {w: b for w, b in self.balances_fen.items() if b < 0}
        if negative:
            raise AccountInArrears(f"wallets in arrears must be settled first: {negative}")
        events = []
        for wallet in Wallet:
            balance = self.balance_fen(wallet)
            if balance == 0:
                continue
            counter = clearing_account(channel) if settlement == "refund" else FORFEITED_REVENUE
            postings = transfer(self.wallet_account(wallet), counter, balance)
            events.append(self._post(self.BalanceSettled, ctx, wallet, balance, postings,
                                     channel=channel if settlement == "refund" else None,
                                     reason=reason))
        self.trigger_event(self.Closed, settlement=settlement, reason=reason,
                           transaction_id=ctx.transaction_id, recorded_at=ctx.recorded_at,
                           actor=ctx.actor)
        return events

    # -- internals -------------------------------------------------------------------

    def _require_open(self) -> None:
        if self.is_closed:
            raise AccountClosed(f"account {self.id} is closed and accepts no new money")

    def _require_not_negative_after(self, wallet: Wallet, delta_fen: int, force: bool,
                                    what: str) -> None:
        after = self.balance_fen(wallet) + delta_fen
        if after < 0 and not force:
            raise InsufficientBalance(
                f"the {what} would take the {wallet.value} wallet to "
                f"{fen_to_yuan_text(after)} yuan; "
                "send force=true to allow it")

    def _post(self, event_class: type[MoneyEvent], ctx: MoneyContext, wallet: Wallet,
              amount_fen: int, postings: list[Posting], *, channel: str | None = None,
              reference: str | None = None, reason: str | None = None,
              corrects: UUID | None = None) -> MoneyEvent:
        assert_balanced(postings)
        after = self.balance_fen(wallet) + effect_on(self.wallet_account(wallet), postings)
        self.trigger_event(
            event_class, transaction_id=ctx.transaction_id, wallet=Wallet(wallet).value,
            amount_fen=amount_fen, postings=postings_to_dicts(postings),
            balance_after_fen=after, effective_at=ctx.effective_at,
            recorded_at=ctx.recorded_at, actor=ctx.actor,
            idempotency_key=ctx.idempotency_key, corrects=corrects, channel=channel,
            reference=reference, reason=reason)
        event = self.pending_events[-1]
        assert isinstance(event, self.MoneyEvent)
        return event

    def _apply_money(self, event: MoneyEvent) -> None:
        postings = postings_from_dicts(event.postings)
        assert_balanced(postings)
        prefix = f"wallet:{self.id}:"
        for posting in postings:
            if posting.ledger_account.startswith(prefix):
                wallet = posting.ledger_account[len(prefix):]
                self.balances_fen[wallet] += posting.credit_fen - posting.debit_fen
        assert self.balances_fen[event.wallet] == event.balance_after_fen, (
            self.balances_fen, event.balance_after_fen)
