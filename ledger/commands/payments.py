"""Payment commands: orders, their crediting, closing and refunds to the original channel.

The route, the provider's notification, the job that asks the providers and the ledger's
``execute`` all build the same command. Its ``decide`` is pure: it sees stored state only
through the loader and the outside world only through its context. What the providers are
told, and when, stays with the payment service: a decision never waits on the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from domain.account import Account, MoneyContext
from domain.chart import Wallet
from domain.errors import AccountNotFound, InvalidRequest
from domain.payment import (
    CREATED,
    OrderNotFound,
    PaymentOrder,
    RejectedNotification,
    order_id_for,
)
from domain.transaction import fingerprint, transaction_id_for
from ledger.commands.base import Command
from ledger.core.types import Loader
from ledger.records import transaction_record

MAX_REASON_CHARS = 500  # of a refused notification's recorded reason
SETTLED = ("succeeded", "failed")  # the refund states a provider's answer settles


@dataclass(frozen=True)
class OrderContext:
    """What a new order needs from outside: the time, who asks, the number the provider
    will know it by, and how long it may stay unpaid."""

    now: datetime
    actor: dict
    out_trade_no: str
    order_ttl: timedelta


@dataclass(frozen=True)
class CreditContext:
    """The time a credit is decided at, and the ids fixed for it by its key."""

    now: datetime
    credit_id: UUID
    digest: str


@dataclass(frozen=True)
class RefundContext:
    """Who asks for a refund, and the number the provider will know it by."""

    actor: dict
    out_refund_no: str


@dataclass(frozen=True)
class PaymentContext:
    """The time only: closing an order, settling a refund, recording a refusal."""

    now: datetime


@dataclass(frozen=True)
class CreatePaymentOrder(Command):
    """An order for a shop to pay by WeChat Pay or Alipay, stored before the provider
    hears of it. The same idempotency key answers the same order."""

    action: ClassVar[str] = "create_payment_order"
    account_id: UUID
    amount_fen: int
    channel: str
    scene: str
    wallet: str
    payer_openid: str | None = None
    idempotency_key: str | None = None

    def check(self, max_top_up_fen: int) -> None:
        if self.amount_fen > max_top_up_fen:
            raise InvalidRequest("the amount is above the maximum top-up")

    def decide(self, load: Loader, ctx: OrderContext) -> tuple[list[Any], str]:
        """The new order, and the description the provider shows the payer."""
        account = load(self.account_id, Account, AccountNotFound)
        if account.is_closed:
            raise InvalidRequest("the account is closed")
        order = PaymentOrder.create(
            out_trade_no=ctx.out_trade_no, account_id=self.account_id,
            wallet=Wallet(self.wallet).value, amount_fen=self.amount_fen,
            channel=self.channel, scene=self.scene, payer_openid=self.payer_openid,
            created_at=ctx.now, expires_at=ctx.now + ctx.order_ttl, provider_reply={},
            actor=ctx.actor)
        return [order], f"Prepaid {self.wallet} {account.name}"[:127]


@dataclass(frozen=True)
class CreditPayment(Command):
    """A paid order's wallet credited, exactly once, whoever reports it how often: the
    provider's notification or the job that asks it. The provider is the actor."""

    action: ClassVar[str] = "credit_payment"
    repeat: ClassVar[str] = "answers the first credit: its key is the channel and the order number"
    channel: str
    out_trade_no: str
    provider_transaction_id: str
    amount_fen: int
    currency: str
    paid_at: datetime | None
    source: str

    @property
    def idempotency_key(self) -> str:
        """Fixed by the order: every report of one payment is the same request."""
        return f"payment:{self.channel}:{self.out_trade_no}"

    def order_id(self) -> UUID:
        return order_id_for(self.out_trade_no)

    def digest(self) -> str:
        return fingerprint("payment", channel=self.channel, out_trade_no=self.out_trade_no)

    def decide(self, load: Loader, ctx: CreditContext) -> tuple[list[Any], dict[str, Any]]:
        order = load(order_id_for(self.out_trade_no), PaymentOrder, OrderNotFound)
        if order.channel != self.channel:
            raise OrderNotFound(f"order {self.out_trade_no} is not a {self.channel} order")
        if order.status not in (CREATED, "closed"):
            return [], {"already": True, "transaction_id": str(order.credit_transaction_id)}
        order.check_payment(amount_fen=self.amount_fen, currency=self.currency)
        account = load(order.account_id, Account, AccountNotFound)
        paid_at = self.paid_at or ctx.now
        money = MoneyContext(ctx.credit_id, paid_at, ctx.now,
                             {"kind": "provider", "id": self.channel}, self.idempotency_key)
        event = account.top_up(money, wallet=Wallet(order.wallet), amount_fen=self.amount_fen,
                               channel=self.channel, reference=self.provider_transaction_id)
        record = transaction_record("top_up", account, money, [event], ctx.digest)
        order.mark_credited(provider_transaction_id=self.provider_transaction_id,
                            paid_at=paid_at, credit_transaction_id=ctx.credit_id,
                            source=self.source)
        return [account, record, order], record.result


@dataclass(frozen=True)
class ClosePaymentOrder(Command):
    """An unpaid order closed (the provider closed it, or it expired); any other order is
    left as it is."""

    action: ClassVar[str] = "close_payment_order"
    repeat: ClassVar[str] = "records nothing more: only an order still open is closed"
    out_trade_no: str
    reason: str

    def decide(self, load: Loader, ctx: PaymentContext) -> tuple[list[Any], PaymentOrder]:
        order = load(order_id_for(self.out_trade_no), PaymentOrder, OrderNotFound)
        if order.status != CREATED:
            return [], order
        order.close(reason=self.reason, at=ctx.now)
        return [order], order


@dataclass(frozen=True)
class RecordRejectedNotification(Command):
    """An authentic notification that was refused, kept for review: its body's SHA-256
    and size and at most ``excerpt_bytes`` of it. Only for notifications whose signature
    verified: nothing unauthenticated becomes an event."""

    action: ClassVar[str] = "record_rejected_notification"
    repeat: ClassVar[str] = "records another refusal: every refused notification is kept"
    provider: str
    reason: str
    headers: Mapping[str, str]
    body: bytes
    excerpt_bytes: int

    def decide(self, load: Loader, ctx: PaymentContext) -> tuple[list[Any], UUID]:
        incident = RejectedNotification(
            provider=self.provider, reason=self.reason[:MAX_REASON_CHARS],
            headers=dict(self.headers),
            body_excerpt=self.body[:max(self.excerpt_bytes, 0)].decode("utf-8", "replace"),
            body_sha256=hashlib.sha256(self.body).hexdigest(), body_bytes=len(self.body),
            received_at=ctx.now)
        return [incident], incident.id


@dataclass(frozen=True)
class RefundPayment(Command):
    """Part of a paid order refunded to the channel it came from. The money is held at
    once, before the provider answers; ``SettleRefund`` posts or releases it."""

    action: ClassVar[str] = "refund_payment"
    out_trade_no: str
    amount_fen: int
    reason: str | None = None
    idempotency_key: str | None = None

    def decide(self, load: Loader, ctx: RefundContext) -> tuple[list[Any], dict[str, Any]]:
        order = load(order_id_for(self.out_trade_no), PaymentOrder, OrderNotFound)
        account = load(order.account_id, Account, AccountNotFound)
        order.request_refund(ctx.out_refund_no, self.amount_fen, self.reason, ctx.actor)
        # Held at once: the wallet's available balance drops before the provider has even
        # answered, so the same money cannot be spent or refunded twice.
        account.hold(ctx.out_refund_no, Wallet(order.wallet), self.amount_fen,
                     f"refund {ctx.out_refund_no} of {self.out_trade_no}")
        return [order, account], {}


@dataclass(frozen=True)
class SettleRefund(Command):
    """A provider's answer on a pending refund: the refund posted when it was paid out,
    the hold released when it failed. Any other answer changes nothing."""

    action: ClassVar[str] = "settle_refund"
    repeat: ClassVar[str] = "records nothing more: only a pending refund is settled"
    out_trade_no: str
    out_refund_no: str
    status: str
    refund_id: str | None = None

    @property
    def idempotency_key(self) -> str:
        """Fixed by the refund: the provider's answer is posted once."""
        return f"refund:{self.out_refund_no}"

    def settles(self) -> bool:
        return self.status in SETTLED

    def decide(self, load: Loader, ctx: PaymentContext) -> tuple[list[Any], dict[str, Any]]:
        order = load(order_id_for(self.out_trade_no), PaymentOrder, OrderNotFound)
        refund = order.refunds.get(self.out_refund_no)
        if refund is None or refund["status"] != "pending" or not self.settles():
            return [], {}
        account = load(order.account_id, Account, AccountNotFound)
        if self.status == "succeeded":
            key = self.idempotency_key
            money = MoneyContext(transaction_id_for(key), ctx.now, ctx.now,
                                 {"kind": "provider", "id": order.channel}, key)
            event = account.refund_held(money, self.out_refund_no, order.channel,
                                        self.refund_id)
            record = transaction_record("refund", account, money, [event],
                                        fingerprint("provider-refund",
                                                    refund=self.out_refund_no))
            order.refund_succeeded(out_refund_no=self.out_refund_no, refund_id=self.refund_id,
                                   at=ctx.now)
            return [order, account, record], {}
        account.release_hold(hold_id=self.out_refund_no, reason="the provider refused")
        order.refund_failed(out_refund_no=self.out_refund_no, reason="the provider refused",
                            at=ctx.now)
        return [order, account], {}
