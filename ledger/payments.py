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

from domain.account import Account, MoneyContext
from domain.chart import Wallet
from domain.errors import AccountNotFound, DomainError, InvalidRequest
from domain.payment import (
    CREATED,
    OrderNotFound,
    PaymentOrder,
    RejectedNotification,
    order_id_for,
)
from domain.transaction import fingerprint, transaction_id_for
from ledger.commands import Command, Handler
from ledger.clock import Clock
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.types import Loader
from ledger.records import transaction_record
from ledger.outcome import Outcome


DEFAULT_ORDER_TTL = timedelta(minutes=30)
DEFAULT_QUERY_AFTER = timedelta(minutes=5)
MAX_REASON_CHARS = 500  # of a refused notification's recorded reason


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
        return {}

    def provider(self, channel: str):
        found = self.providers.get(channel)
        if found is None:
            raise ChannelNotConfigured(f"{channel} payments are not configured on this "
                                       "platform")
        return found

    def create_payment_order(self, *, account_id: UUID, amount_fen: int, channel: str,
                             scene: str, wallet: str, payer_openid: str | None, actor: dict,
                             idempotency_key: str | None = None) -> PaymentOrder:
        provider = self.provider(channel)
        if amount_fen > self.max_top_up_fen:
            raise InvalidRequest("the amount is above the maximum top-up")
        out_trade_no = out_trade_no_for(idempotency_key or str(uuid4()))
        existing = self.store.find(order_id_for(out_trade_no))
        if existing is not None:
            return existing
        account = self.store.load(account_id, Account, AccountNotFound)
        if account.is_closed:
            raise InvalidRequest("the account is closed")
        now = self.clock()
        order = PaymentOrder.create(
            out_trade_no=out_trade_no, account_id=account_id, wallet=Wallet(wallet).value,
            amount_fen=amount_fen, channel=channel, scene=scene, payer_openid=payer_openid,
            created_at=now, expires_at=now + self.order_ttl, provider_reply={}, actor=actor)
        # The order is stored before the provider hears of it: a payment can never arrive
        # for an order this platform does not know.
        self.store.save_new(order)
        try:
            reply = provider.create(out_trade_no=out_trade_no, amount_fen=amount_fen,
                                    description=f"Prepaid {wallet} {account.name}"[:127],
                                    scene=scene, payer_openid=payer_openid,
                                    expires_at=order.expires_at)
        except Exception as error:
            reason = f"provider refused: {error}"
            self._update_order(order.id, lambda o: o.close(reason=reason, at=now)
                               if o.status == CREATED else None)
            raise ProviderUnavailable(f"the {channel} service did not take the order: "
                                      f"{error}") from None
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
        credit_id, digest, order_id, decide = self._credit(
            channel=channel, out_trade_no=out_trade_no, transaction_id=transaction_id,
            amount_fen=amount_fen, currency=currency, paid_at=paid_at, source=source)
        # Read the order here, in the caller's thread, so that many callers arriving
        # together do not wait for each other's reads inside the committer.
        order = self.store.find(order_id, PaymentOrder)
        prefetched = {order_id: order} if order is not None else {}
        if order is not None and order.status not in (CREATED, "closed"):
            replay = self.store.replay(credit_id, digest)
            if replay is not None:
                return replay  # a duplicate: answered without entering the committer
        return self.bus.write(order_id, credit_id, digest, decide, prefetched)

    def submit_credit_payment(self, *, channel: str, out_trade_no: str,
                              transaction_id: str, amount_fen: int, currency: str,
                              paid_at: datetime | None, source: str) -> Future | None:
        """``credit_payment`` without waiting: a future of its ``Outcome``, set once the
        credit is committed (or of its error). The order and its account are read with
        the rest of the committer's batch, in bulk. None when group commit is off."""
        credit_id, digest, order_id, decide = self._credit(
            channel=channel, out_trade_no=out_trade_no, transaction_id=transaction_id,
            amount_fen=amount_fen, currency=currency, paid_at=paid_at, source=source)
        return self.bus.enqueue(order_id, credit_id, digest, decide, needs=(order_id,),
                             expand=_account_of_order)

    def _credit(self, *, channel: str, out_trade_no: str, transaction_id: str,
                amount_fen: int, currency: str, paid_at: datetime | None, source: str):
        key = f"payment:{channel}:{out_trade_no}"
        credit_id = transaction_id_for(key)
        digest = fingerprint("payment", channel=channel, out_trade_no=out_trade_no)
        order_id = order_id_for(out_trade_no)
        now = self.clock()

        def decide(load: Loader):
            order = load(order_id, PaymentOrder, OrderNotFound)
            if order.channel != channel:
                raise OrderNotFound(f"order {out_trade_no} is not a {channel} order")
            if order.status not in (CREATED, "closed"):
                return [], {"already": True, "transaction_id": str(order.credit_transaction_id)}
            order.check_payment(amount_fen=amount_fen, currency=currency)
            account = load(order.account_id, Account, AccountNotFound)
            ctx = MoneyContext(credit_id, paid_at or now, now,
                               {"kind": "provider", "id": channel}, key)
            event = account.top_up(ctx, wallet=Wallet(order.wallet), amount_fen=amount_fen,
                                   channel=channel, reference=transaction_id)
            record = transaction_record("top_up", account, ctx, [event], digest)
            order.mark_credited(provider_transaction_id=transaction_id,
                                paid_at=paid_at or now, credit_transaction_id=credit_id,
                                source=source)
            return [account, record, order], record.result

        return credit_id, digest, order_id, decide

    def close_payment_order(self, out_trade_no: str, reason: str) -> PaymentOrder:
        order = self.get_payment_order(out_trade_no)
        if order.status == CREATED:
            order.close(reason=reason, at=self.clock())
            self.bus.save_changed(order)
        return order

    def record_rejected_notification(self, *, provider: str, reason: str,
                                     headers: dict[str, str], body: bytes,
                                     excerpt_bytes: int) -> UUID:
        """Keep an authentic notification that was refused, for review: its body's
        SHA-256 and size and at most ``excerpt_bytes`` of it. Only for notifications
        whose signature verified: nothing unauthenticated becomes an event."""
        incident = RejectedNotification(
            provider=provider, reason=reason[:MAX_REASON_CHARS], headers=headers,
            body_excerpt=body[:max(excerpt_bytes, 0)].decode("utf-8", "replace"),
            body_sha256=hashlib.sha256(body).hexdigest(), body_bytes=len(body),
            received_at=self.clock())
        self.store.save(incident)
        return incident.id

    # -- refunds to the original channel -------------------------------------------------

    def refund_payment(self, out_trade_no: str, *, amount_fen: int,
                       reason: str | None, actor: dict,
                       idempotency_key: str | None = None) -> PaymentOrder:
        order = self.get_payment_order(out_trade_no)
        provider = self.provider(order.channel)
        out_refund_no = out_refund_no_for(idempotency_key or str(uuid4()))
        if out_refund_no not in order.refunds:
            def decide(load: Loader):
                order_ = load(order.id, PaymentOrder, OrderNotFound)
                account = load(order_.account_id, Account, AccountNotFound)
                order_.request_refund(out_refund_no, amount_fen, reason, actor)
                # Held at once: the wallet's available balance drops before the provider
                # has even answered, so the same money cannot be spent or refunded twice.
                account.hold(out_refund_no, Wallet(order_.wallet), amount_fen,
                             f"refund {out_refund_no} of {out_trade_no}")
                return [order_, account], {}

            self.bus.write(order.account_id, uuid4(), "refund-request", decide)
        try:
            state = provider.refund(out_trade_no=out_trade_no, out_refund_no=out_refund_no,
                                    amount_fen=amount_fen, total_fen=order.amount_fen,
                                    reason=reason)
        except Exception:
            return self.get_payment_order(out_trade_no)  # the refund job asks again later
        self.settle_refund(out_trade_no, out_refund_no, state.status, state.refund_id)
        return self.get_payment_order(out_trade_no)

    def settle_refund(self, out_trade_no: str, out_refund_no: str, status: str,
                      refund_id: str | None) -> None:
        """Post the refund when the provider paid it out; release the hold if it failed."""
        if status not in ("succeeded", "failed"):
            return
        order = self.get_payment_order(out_trade_no)
        now = self.clock()

        def decide(load: Loader):
            order_ = load(order.id, PaymentOrder, OrderNotFound)
            refund = order_.refunds.get(out_refund_no)
            if refund is None or refund["status"] != "pending":
                return [], {}
            account = load(order_.account_id, Account, AccountNotFound)
            if status == "succeeded":
                key = f"refund:{out_refund_no}"
                ctx = MoneyContext(transaction_id_for(key), now, now,
                                   {"kind": "provider", "id": order_.channel}, key)
                event = account.refund_held(ctx, out_refund_no, order_.channel, refund_id)
                record = transaction_record("refund", account, ctx, [event],
                                                  fingerprint("provider-refund",
                                                              refund=out_refund_no))
                order_.refund_succeeded(out_refund_no=out_refund_no, refund_id=refund_id,
                                        at=now)
                return [order_, account, record], {}
            account.release_hold(hold_id=out_refund_no, reason="the provider refused")
            order_.refund_failed(out_refund_no=out_refund_no, reason="the provider refused",
                                 at=now)
            return [order_, account], {}

        self.bus.write(order.account_id, uuid4(), "refund-settle", decide)

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
                        self.credit_payment(channel=order.channel,
                                            out_trade_no=order.out_trade_no,
                                            transaction_id=found.transaction_id or "",
                                            amount_fen=found.amount_fen or 0, currency="CNY",
                                            paid_at=found.paid_at, source="query")
                        counts["credited"] += 1
                    elif found.closed or now >= order.expires_at:
                        provider.close(order.out_trade_no)
                        self.close_payment_order(order.out_trade_no, "expired unpaid")
                        counts["closed"] += 1
                for out_refund_no, refund in order.refunds.items():
                    if refund["status"] == "pending":
                        state = provider.query_refund(out_refund_no,
                                                      out_trade_no=order.out_trade_no)
                        self.settle_refund(order.out_trade_no, out_refund_no, state.status,
                                           state.refund_id)
                        counts["refunds_settled"] += state.status != "processing"
            except DomainError:
                raise
            except Exception:  # the provider is unreachable: try again next run
                continue
        return counts


