"""Payment orders: a shop pays by WeChat Pay or Alipay; the wallet is credited once.

The order's id is derived from its ``out_trade_no``, and crediting the wallet and marking
the order paid happen in one atomic save with the top-up's transaction record, whose id
is derived from the order too: however often, late, or concurrently a notification (or
the query job) reports the payment, only one of them can succeed.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InvalidRequest, NotFound
from domain.money import fen_to_yuan_text

ORDER_NAMESPACE = uuid5(NAMESPACE_URL, "prepaid-ledger/payment-order")
CHANNELS = ("wechat", "alipay")
SCENES = {"wechat": ("native", "jsapi"), "alipay": ("page", "wap", "qr")}
CREATED, CREDITED, CLOSED, REFUNDING, REFUNDED = ("created", "credited", "closed",
                                                  "refunding", "refunded")


class PaymentMismatch(DomainError):
    """A notification that does not match its order (amount, merchant, ...)."""

    code = "payment-mismatch"


class OrderNotFound(NotFound):
    code = "order-not-found"


def order_id_for(out_trade_no: str) -> UUID:
    return uuid5(ORDER_NAMESPACE, out_trade_no)


class PaymentOrder(Aggregate):
    @event("Created")
    def __init__(self, out_trade_no: str, account_id: UUID, wallet: str, amount_fen: int,
                 channel: str, scene: str, payer_openid: str | None, created_at: datetime,
                 expires_at: datetime, provider_reply: dict, actor: dict) -> None:
        self.out_trade_no = out_trade_no
        self.created_at = created_at
        self.account_id = account_id
        self.wallet = wallet
        self.amount_fen = amount_fen
        self.channel = channel
        self.scene = scene
        self.payer_openid = payer_openid
        self.expires_at = expires_at
        self.provider_reply = provider_reply
        self.status = CREATED
        self.provider_transaction_id: str | None = None
        self.paid_at: datetime | None = None
        self.credit_transaction_id: UUID | None = None
        self.refunds: dict[str, dict] = {}

    @classmethod
    def create(cls, *, out_trade_no: str, account_id: UUID, wallet: str, amount_fen: int,
               channel: str, scene: str, payer_openid: str | None, created_at: datetime,
               expires_at: datetime, provider_reply: dict, actor: dict) -> PaymentOrder:
        if channel not in CHANNELS:
            raise InvalidRequest("channel must be wechat or alipay")
        if scene not in SCENES[channel]:
            raise InvalidRequest(f"scene for {channel} must be one of "
                                 f"{', '.join(SCENES[channel])}")
        if channel == "wechat" and scene == "jsapi" and not payer_openid:
            raise InvalidRequest("a JSAPI payment needs payer_openid")
        if amount_fen <= 0:
            raise InvalidRequest("amount must be greater than zero")
        return cls._create(cls.Created, id=order_id_for(out_trade_no),
                           out_trade_no=out_trade_no, account_id=account_id, wallet=wallet,
                           amount_fen=amount_fen, channel=channel, scene=scene,
                           payer_openid=payer_openid, created_at=created_at,
                           expires_at=expires_at,
                           provider_reply=provider_reply, actor=actor)

    @event("ProviderReplied")
    def record_provider_reply(self, reply: dict) -> None:
        self.provider_reply = reply

    @property
    def refunded_fen(self) -> int:
        return sum(r["amount_fen"] for r in self.refunds.values() if r["status"] != "failed")

    def check_payment(self, *, amount_fen: int, currency: str = "CNY") -> None:
        if currency != "CNY":
            raise PaymentMismatch(f"currency {currency!r} is not CNY")
        if amount_fen != self.amount_fen:
            raise PaymentMismatch(f"paid {fen_to_yuan_text(amount_fen)} yuan, the order is "
                                  f"for {fen_to_yuan_text(self.amount_fen)} yuan")

    def mark_credited(self, *, provider_transaction_id: str, paid_at: datetime,
                      credit_transaction_id: UUID, source: str) -> None:
        """Paid and credited: one event, saved with the top-up itself."""
        assert self.status in (CREATED, CLOSED), self.status
        self._credited(provider_transaction_id=provider_transaction_id, paid_at=paid_at,
                       credit_transaction_id=credit_transaction_id, source=source)

    @event("PaidAndCredited")
    def _credited(self, provider_transaction_id: str, paid_at: datetime,
                  credit_transaction_id: UUID, source: str) -> None:
        self.status = CREDITED
        self.provider_transaction_id = provider_transaction_id
        self.paid_at = paid_at
        self.credit_transaction_id = credit_transaction_id

    @event("Closed")
    def close(self, reason: str, at: datetime) -> None:
        self.status = CLOSED

    def request_refund(self, out_refund_no: str, amount_fen: int, reason: str | None,
                       actor: dict) -> None:
        if self.status not in (CREDITED, REFUNDING, REFUNDED):
            raise InvalidRequest("only a paid order can be refunded")
        if out_refund_no in self.refunds:
            raise InvalidRequest(f"refund {out_refund_no} exists")
        if amount_fen <= 0 or amount_fen > self.amount_fen - self.refunded_fen:
            raise InvalidRequest(
                f"at most {fen_to_yuan_text(self.amount_fen - self.refunded_fen)} yuan of "
                "this order can be refunded")
        self._refund_requested(out_refund_no=out_refund_no, amount_fen=amount_fen,
                               reason=reason, actor=actor)

    @event("RefundRequested")
    def _refund_requested(self, out_refund_no: str, amount_fen: int, reason: str | None,
                          actor: dict) -> None:
        self.refunds[out_refund_no] = {"amount_fen": amount_fen, "status": "pending",
                                       "refund_id": None}
        self.status = REFUNDING

    @event("RefundSucceeded")
    def refund_succeeded(self, out_refund_no: str, refund_id: str | None,
                         at: datetime) -> None:
        self.refunds[out_refund_no].update(status="succeeded", refund_id=refund_id)
        self._settle_status()

    @event("RefundFailed")
    def refund_failed(self, out_refund_no: str, reason: str, at: datetime) -> None:
        self.refunds[out_refund_no].update(status="failed")
        self._settle_status()

    def _settle_status(self) -> None:
        if any(r["status"] == "pending" for r in self.refunds.values()):
            self.status = REFUNDING
        elif self.refunded_fen > 0:
            self.status = REFUNDED
        else:
            self.status = CREDITED


class RejectedNotification(Aggregate):
    """A notification that passed its signature check but was refused (unknown order,
    wrong amount, another merchant, ...), kept for review: the SHA-256 of its body, its
    size and a capped excerpt, never the whole body. Notifications whose signature does
    not verify are never recorded."""

    class Recorded(Aggregate.Created):
        class_version = 2
        provider: str
        reason: str
        headers: dict
        body_excerpt: str
        body_sha256: str | None
        body_bytes: int | None
        received_at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            """Version 1 kept the whole body as text, ``raw_body``; its hash and size in
            bytes were not recorded."""
            state["body_excerpt"] = state.pop("raw_body")
            state["body_sha256"] = None
            state["body_bytes"] = None

    @event(Recorded)
    def __init__(self, provider: str, reason: str, headers: dict, body_excerpt: str,
                 body_sha256: str | None, body_bytes: int | None,
                 received_at: datetime) -> None:
        self.provider = provider
        self.reason = reason
