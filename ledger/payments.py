"""Payment orders, crediting exactly once, provider refunds with holds, and the job that
asks the providers about orders whose notification never came.

Providers are a port: anything with ``create``, ``query``, ``close``, ``refund`` and
``query_refund`` (``adapters/payments/providers.py``), injected by the composition root.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

from domain.errors import DomainError
from domain.payment import CREATED, OrderNotFound, PaymentOrder, order_id_for
from domain.transaction import transaction_id_for
from ledger.commands import (
    ClosePaymentOrder,
    Command,
    CreatePaymentOrder,
    CreditContext,
    CreditPayment,
    Handler,
    OrderContext,
    PaymentContext,
    RecordRejectedNotification,
    RefundContext,
    RefundPayment,
    SettleRefund,
)
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader, holding
from ledger.outcome import Outcome


DEFAULT_ORDER_TTL = timedelta(minutes=30)
DEFAULT_QUERY_AFTER = timedelta(minutes=5)


class ChannelNotConfigured(DomainError):
    code = "channel-not-configured"


class ProviderUnavailable(DomainError):
    code = "provider-unavailable"


def out_trade_no_for(key: str) -> str:
    """32 characters at most, letters and digits, as both providers require."""
    return "P" + hashlib.sha256(key.encode()).hexdigest()[:31].upper()


def out_refund_no_for(key: str) -> str:
    return "R" + hashlib.sha256(key.encode()).hexdigest()[:31].upper()


def _account_of_order(order: Any) -> list[UUID]:
    return [order.account_id] if isinstance(order, PaymentOrder) else []


class PaymentService:
    """Payment orders and provider refunds, over the event store and the command bus."""

    def __init__(self, store: EventStore, bus: CommandBus, *, clock: Clock,
                 providers: Mapping[str, Any] | None = None,
                 order_ttl: timedelta = DEFAULT_ORDER_TTL,
                 query_after: timedelta = DEFAULT_QUERY_AFTER,
                 max_top_up_fen: int) -> None:
        assert max_top_up_fen > 0
        self.store = store
        self.bus = bus
        self.clock = clock
        # The configured providers by channel, read-only: a route verifies a
        # notification's signature with the provider it names.
        self.providers: Mapping[str, Any] = MappingProxyType(dict(providers or {}))
        self.order_ttl = order_ttl
        self.query_after = query_after
        self.max_top_up_fen = max_top_up_fen

    def handlers(self) -> Mapping[type[Command], Handler]:
        """The commands this service carries out (``Ledger.execute`` routes them here)."""
        return {CreatePaymentOrder: self.carry_out_order, CreditPayment: self.carry_out_credit,
                ClosePaymentOrder: self.carry_out_close,
                RecordRejectedNotification: self.carry_out_rejection,
                RefundPayment: self.carry_out_refund, SettleRefund: self.carry_out_settlement}

    def provider(self, channel: str):
        found = self.providers.get(channel)
        if found is None:
            raise ChannelNotConfigured(f"{channel} payments are not configured on this "
                                       "platform")
        return found

    def create_payment_order(self, *, account_id: UUID, amount_fen: int, channel: str,
                             scene: str, wallet: str, payer_openid: str | None, actor: dict,
                             idempotency_key: str | None = None) -> PaymentOrder:
        return self.carry_out_order(CreatePaymentOrder(account_id, amount_fen, channel, scene,
                                                       wallet, payer_openid, idempotency_key),
                                    actor)

    def carry_out_order(self, command: CreatePaymentOrder, actor: dict) -> PaymentOrder:
        provider = self.provider(command.channel)
        command.check(self.max_top_up_fen)
        out_trade_no = out_trade_no_for(command.idempotency_key or str(uuid4()))
        existing = self.store.find(order_id_for(out_trade_no))
        if existing is not None:
            return existing
        ctx = OrderContext(self.clock(), actor, out_trade_no, self.order_ttl)
        (order,), description = command.decide(self.store.load, ctx)
        # The order is stored before the provider hears of it: a payment can never arrive
        # for an order this platform does not know.
        self.store.save_new(order)
        try:
            reply = provider.create(out_trade_no=out_trade_no, amount_fen=command.amount_fen,
                                    description=description, scene=command.scene,
                                    payer_openid=command.payer_openid,
                                    expires_at=order.expires_at)
        except Exception as error:
            reason = f"provider refused: {error}"
            self._update_order(order.id, lambda o: o.close(reason=reason, at=ctx.now)
                               if o.status == CREATED else None)
            raise ProviderUnavailable(f"the {command.channel} service did not take the "
                                      f"order: {error}") from None
        self._update_order(order.id, lambda o: o.record_provider_reply(reply=reply))
        return self.get_payment_order(out_trade_no)

    def _update_order(self, order_id: UUID, change) -> None:
        """Change an order through the committer: a payment for it may be racing in."""
        def decide(load: Loader):
            order = load(order_id, PaymentOrder, OrderNotFound)
            change(order)
            return [order], {}

        self.bus.write(order_id, uuid4(), "order-update", decide)

    def get_payment_order(self, out_trade_no: str) -> PaymentOrder:
        order = self.store.find(order_id_for(out_trade_no))
        if not isinstance(order, PaymentOrder):
            raise OrderNotFound(f"order {out_trade_no} does not exist")
        return order

    def credit_payment(self, *, channel: str, out_trade_no: str, transaction_id: str,
                       amount_fen: int, currency: str, paid_at: datetime | None,
                       source: str) -> Outcome:
        """Credit a paid order's wallet, exactly once, whoever reports it how often."""
        return self.carry_out_credit(CreditPayment(channel, out_trade_no, transaction_id,
                                                   amount_fen, currency, paid_at, source))

    def carry_out_credit(self, command: CreditPayment, actor: dict | None = None) -> Outcome:
        """The provider is the actor of a credit, whoever hands it in."""
        ctx, order_id, decide = self._credit(command)
        # Read the order here, in the caller's thread, so that many callers arriving
        # together do not wait for each other's reads inside the committer.
        order = self.store.find(order_id, PaymentOrder)
        prefetched = {order_id: order} if order is not None else {}
        if order is not None and order.status not in (CREATED, "closed"):
            replay = self.store.replay(ctx.credit_id, ctx.digest)
            if replay is not None:
                return replay  # a duplicate: answered without entering the committer
        return self.bus.write(order_id, ctx.credit_id, ctx.digest, decide, prefetched)

    def submit_credit_payment(self, *, channel: str, out_trade_no: str,
                              transaction_id: str, amount_fen: int, currency: str,
                              paid_at: datetime | None, source: str) -> Future | None:
        """``credit_payment`` without waiting (see ``submit_credit``)."""
        return self.submit_credit(CreditPayment(channel, out_trade_no, transaction_id,
                                                amount_fen, currency, paid_at, source))

    def submit_credit(self, command: CreditPayment) -> Future | None:
        """``carry_out_credit`` without waiting: a future of its ``Outcome``, set once the
        credit is committed (or of its error). The order and its account are read with
        the rest of the committer's batch, in bulk. None when group commit is off."""
        ctx, order_id, decide = self._credit(command)
        return self.bus.enqueue(order_id, ctx.credit_id, ctx.digest, decide,
                                needs=(order_id,), expand=_account_of_order)

    def _credit(self, command: CreditPayment):
        ctx = CreditContext(self.clock(), transaction_id_for(command.idempotency_key),
                            command.digest())
        return ctx, command.order_id(), lambda load: command.decide(load, ctx)

    def close_payment_order(self, out_trade_no: str, reason: str) -> PaymentOrder:
        return self.carry_out_close(ClosePaymentOrder(out_trade_no, reason))

    def carry_out_close(self, command: ClosePaymentOrder,
                        actor: dict | None = None) -> PaymentOrder:
        order = self.get_payment_order(command.out_trade_no)
        changed, order = command.decide(holding(order), PaymentContext(self.clock()))
        if changed:
            self.bus.save_changed(*changed)
        return order

    def record_rejected_notification(self, *, provider: str, reason: str,
                                     headers: dict[str, str], body: bytes,
                                     excerpt_bytes: int) -> UUID:
        """Keep an authentic notification that was refused, for review (see
        ``RecordRejectedNotification``)."""
        return self.carry_out_rejection(RecordRejectedNotification(provider, reason, headers,
                                                                   body, excerpt_bytes))

    def carry_out_rejection(self, command: RecordRejectedNotification,
                            actor: dict | None = None) -> UUID:
        incidents, incident_id = command.decide(holding(), PaymentContext(self.clock()))
        self.store.save(*incidents)
        return incident_id

    # -- refunds to the original channel -------------------------------------------------

    def refund_payment(self, out_trade_no: str, *, amount_fen: int,
                       reason: str | None, actor: dict,
                       idempotency_key: str | None = None) -> PaymentOrder:
        return self.carry_out_refund(RefundPayment(out_trade_no, amount_fen, reason,
                                                   idempotency_key), actor)

    def carry_out_refund(self, command: RefundPayment, actor: dict) -> PaymentOrder:
        out_trade_no = command.out_trade_no
        order = self.get_payment_order(out_trade_no)
        provider = self.provider(order.channel)
        out_refund_no = out_refund_no_for(command.idempotency_key or str(uuid4()))
        if out_refund_no not in order.refunds:
            ctx = RefundContext(actor, out_refund_no)
            self.bus.write(order.account_id, uuid4(), "refund-request",
                           lambda load: command.decide(load, ctx))
        try:
            state = provider.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no,
                                    amount_fen=command.amount_fen, total_fen=order.amount_fen,
                                    reason=command.reason)
        except Exception:
            return self.get_payment_order(out_trade_no)  # the refund job asks again later
        self.carry_out_settlement(SettleRefund(out_trade_no, out_refund_no, state.status,
                                               state.refund_id))
        return self.get_payment_order(out_trade_no)

    def settle_refund(self, out_trade_no: str, out_refund_no: str, status: str,
                      refund_id: str | None) -> None:
        """Post the refund when the provider paid it out; release the hold if it failed."""
        self.carry_out_settlement(SettleRefund(out_trade_no, out_refund_no, status, refund_id))

    def carry_out_settlement(self, command: SettleRefund, actor: dict | None = None) -> None:
        """The provider is the actor of a settlement, whoever hands it in."""
        if not command.settles():
            return
        order = self.get_payment_order(command.out_trade_no)
        ctx = PaymentContext(self.clock())
        self.bus.write(order.account_id, uuid4(), "refund-settle",
                       lambda load: command.decide(load, ctx))

    # -- the job that asks the providers -------------------------------------------------

    def sync_payment_orders(self, pending: list[dict]) -> dict[str, int]:
        """For orders still unpaid a while after creation: credit the paid ones, close the
        expired ones; for refunds still pending: settle them."""
        now = self.clock()
        counts = {"credited": 0, "closed": 0, "refunds_settled": 0}
        for row in pending:
            provider = self.providers.get(row["channel"])
            if provider is None:
                continue
            order = self.get_payment_order(row["out_trade_no"])
            try:
                if order.status == CREATED and now - order.created_at >= self.query_after:
                    found = provider.query(order.out_trade_no)
                    if found.paid:
                        self.carry_out_credit(CreditPayment(
                            order.channel, order.out_trade_no, found.transaction_id or "",
                            found.amount_fen or 0, "CNY", found.paid_at, "query"))
                        counts["credited"] += 1
                    elif found.closed or now >= order.expires_at:
                        provider.close(order.out_trade_no)
                        self.carry_out_close(ClosePaymentOrder(order.out_trade_no,
                                                               "expired unpaid"))
                        counts["closed"] += 1
                for out_refund_no, refund in order.refunds.items():
                    if refund["status"] == "pending":
                        state = provider.query_refund(out_refund_no,
                                                      out_trade_no=order.out_trade_no)
                        self.carry_out_settlement(SettleRefund(
                            order.out_trade_no, out_refund_no, state.status,
                            state.refund_id))
                        counts["refunds_settled"] += state.status != "processing"
            except DomainError:
                raise
            except Exception:  # the provider is unreachable: try again next run
                continue
        return counts


