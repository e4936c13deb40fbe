"""The payment commands on the in-memory event store: no database, no network, no threads
(group commit off), a frozen clock. Each command's decision on aggregates handed to it,
its typed errors, and the command carried out through ``Ledger.execute``."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from domain.errors import AccountNotFound, InvalidRequest
from domain.payment import OrderNotFound, PaymentMismatch, PaymentOrder, order_id_for
from domain.transaction import Transaction, transaction_id_for
from ledger.app import Ledger
from ledger.commands import (
    ClosePaymentOrder,
    CreatePaymentOrder,
    CreditContext,
    CreditPayment,
    OrderContext,
    PaymentContext,
    RecordRejectedNotification,
    RefundContext,
    RefundPayment,
    SettleRefund,
)
from ledger.core.types import holding

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
PAID_AT = NOW - timedelta(minutes=1)
STAFF = {"kind": "operator", "id": "staff"}
TENANT = {"kind": "tenant", "id": "t1"}
TTL = timedelta(minutes=30)


class Provider:
    """The provider port, answering as told; remembers the orders it was given."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []
        self.refund_status = "processing"

    def create(self, *, out_trade_no, amount_fen, description, scene, payer_openid,
               expires_at):
        self.created.append((out_trade_no, description))
        return {"code_url": f"weixin://wxpay/{out_trade_no}"}

    def refund(self, *, out_trade_no, out_refund_no, amount_fen, total_fen, reason):
        return SimpleNamespace(status=self.refund_status, refund_id="50300001")


@pytest.fixture
def world():
    provider = Provider()
    ledger = Ledger(clock=lambda: NOW, group_commit_max_commands=1, max_top_up_fen=100_000,
                    payment_providers={"wechat": provider}, order_ttl=TTL)
    account = uuid.UUID(ledger.accounts.open_account(name="Tea shop", actor=STAFF)
                        .result["account_id"])
    yield SimpleNamespace(ledger=ledger, provider=provider, account=account)
    ledger.close()


def place(world, key: str = "order-1", amount_fen: int = 5000) -> PaymentOrder:
    return world.ledger.execute(CreatePaymentOrder(world.account, amount_fen, "wechat",
                                                   "native", "electricity",
                                                   idempotency_key=key), TENANT)


def paid(world, key: str = "order-1") -> PaymentOrder:
    order = place(world, key)
    world.ledger.execute(credit_of(order), {})
    return world.ledger.payments.get_payment_order(order.out_trade_no)


def credit_of(order: PaymentOrder, **change) -> CreditPayment:
    fields = dict(channel="wechat", out_trade_no=order.out_trade_no,
                  provider_transaction_id="4200001", amount_fen=order.amount_fen,
                  currency="CNY", paid_at=PAID_AT, source="notification") | change
    return CreditPayment(**fields)


def credit_context(command: CreditPayment) -> CreditContext:
    return CreditContext(NOW, transaction_id_for(command.idempotency_key), command.digest())


# -- creating an order ----------------------------------------------------------------------

def test_an_order_above_the_maximum_top_up_is_refused_before_anything_is_read():
    command = CreatePaymentOrder(uuid.UUID(int=1), 100_001, "wechat", "native", "electricity")
    with pytest.raises(InvalidRequest, match="above the maximum top-up"):
        command.check(100_000)
    CreatePaymentOrder(uuid.UUID(int=1), 100_000, "wechat", "native", "electricity").check(
        100_000)


def test_a_new_order_is_decided_on_its_account_and_expires_after_the_ttl(world):
    account = world.ledger.accounts.get_account(world.account)
    command = CreatePaymentOrder(world.account, 5000, "wechat", "native", "water",
                                 idempotency_key="k")
    [order], description = command.decide(holding(account),
                                          OrderContext(NOW, TENANT, "P1", TTL))
    assert (order.id, order.out_trade_no, order.account_id, order.amount_fen) == \
        (order_id_for("P1"), "P1", world.account, 5000)
    assert (order.status, order.wallet, order.created_at, order.expires_at) == \
        ("created", "water", NOW, NOW + TTL)
    assert description == "Prepaid water Tea shop"
    assert world.ledger.find(order.id) is None  # deciding stores nothing


def test_an_order_needs_an_open_account(world):
    command = CreatePaymentOrder(uuid.UUID(int=7), 5000, "wechat", "native", "electricity")
    ctx = OrderContext(NOW, TENANT, "P1", TTL)
    with pytest.raises(AccountNotFound):
        command.decide(holding(), ctx)
    world.ledger.accounts.close_account(world.account, settlement="forfeit", actor=STAFF)
    closed = world.ledger.accounts.get_account(world.account)
    with pytest.raises(InvalidRequest, match="the account is closed"):
        CreatePaymentOrder(world.account, 5000, "wechat", "native", "electricity").decide(
            holding(closed), ctx)


def test_an_order_for_a_scene_its_channel_lacks_is_refused(world):
    account = world.ledger.accounts.get_account(world.account)
    with pytest.raises(InvalidRequest, match="scene for wechat"):
        CreatePaymentOrder(world.account, 5000, "wechat", "qr", "electricity").decide(
            holding(account), OrderContext(NOW, TENANT, "P1", TTL))


def test_creating_an_order_through_execute_stores_it_before_asking_the_provider(world):
    order = place(world)
    assert order.provider_reply == {"code_url": f"weixin://wxpay/{order.out_trade_no}"}
    assert world.provider.created == [(order.out_trade_no, "Prepaid electricity Tea shop")]
    assert place(world).id == order.id  # the same key: the same order, asked once
    assert len(world.provider.created) == 1


# -- crediting a payment --------------------------------------------------------------------

def test_a_credit_is_keyed_by_its_order_whoever_reports_it():
    by_notice = CreditPayment("wechat", "P1", "42", 5000, "CNY", None, "notification")
    by_query = CreditPayment("wechat", "P1", "42", 5000, "CNY", None, "query")
    assert by_notice.idempotency_key == by_query.idempotency_key == "payment:wechat:P1"
    assert by_notice.digest() == by_query.digest()
    assert by_notice.order_id() == order_id_for("P1")


def test_a_credit_tops_up_the_wallet_and_marks_the_order_paid(world):
    order = place(world)
    command = credit_of(order)
    ctx = credit_context(command)
    saved, result = command.decide(
        holding(order, world.ledger.accounts.get_account(world.account)), ctx)
    account, record, credited = saved
    assert (account.id, credited.id) == (world.account, order.id)
    assert isinstance(record, Transaction) and record.id == ctx.credit_id
    assert result["balance_after_fen"] == 5000
    assert (credited.status, credited.paid_at, credited.credit_transaction_id) == \
        ("credited", PAID_AT, ctx.credit_id)
    assert account.balance_fen("electricity") == 5000


def test_a_credit_without_a_payment_time_is_paid_at_the_decision(world):
    order = place(world)
    command = credit_of(order, paid_at=None)
    [_, _, credited], _ = command.decide(
        holding(order, world.ledger.accounts.get_account(world.account)), credit_context(command))
    assert credited.paid_at == NOW


def test_a_credited_order_answers_its_first_credit_and_saves_nothing(world):
    order = paid(world)
    command = credit_of(order)
    assert command.decide(holding(order), credit_context(command)) == \
        ([], {"already": True, "transaction_id": str(order.credit_transaction_id)})


@pytest.mark.parametrize("change, error", [
    (dict(channel="alipay"), OrderNotFound),
    (dict(amount_fen=4999), PaymentMismatch),
    (dict(currency="USD"), PaymentMismatch),
    (dict(out_trade_no="P-unknown"), OrderNotFound),
])
def test_a_credit_that_does_not_match_its_order_is_refused(world, change, error):
    order = place(world)
    command = credit_of(order, **change)
    with pytest.raises(error):
        command.decide(holding(order, world.ledger.accounts.get_account(world.account)),
                       credit_context(command))
    assert order.status == "created"


def test_crediting_through_execute_credits_once(world):
    order = place(world)
    first = world.ledger.execute(credit_of(order), {})
    again = world.ledger.execute(credit_of(order, source="query"), {})
    assert first.created and not again.created
    assert again.result == first.result
    assert world.ledger.accounts.get_account(world.account).balance_fen("electricity") == 5000


# -- closing an order -----------------------------------------------------------------------

def test_closing_closes_an_unpaid_order_and_leaves_any_other(world):
    unpaid, credited = place(world, "a"), paid(world, "b")
    saved, closed = ClosePaymentOrder(unpaid.out_trade_no, "expired").decide(
        holding(unpaid), PaymentContext(NOW))
    assert saved == [closed] and closed.status == "closed"
    assert ClosePaymentOrder(credited.out_trade_no, "expired").decide(
        holding(credited), PaymentContext(NOW)) == ([], credited)
    with pytest.raises(OrderNotFound):
        ClosePaymentOrder("P-unknown", "expired").decide(holding(), PaymentContext(NOW))


def test_closing_through_execute_stores_the_closed_order(world):
    order = place(world)
    assert world.ledger.execute(ClosePaymentOrder(order.out_trade_no, "cancelled"),
                                STAFF).status == "closed"
    assert world.ledger.payments.get_payment_order(order.out_trade_no).status == "closed"
    with pytest.raises(OrderNotFound, match="order P-unknown does not exist"):
        world.ledger.execute(ClosePaymentOrder("P-unknown", "cancelled"), STAFF)


# -- refused notifications ------------------------------------------------------------------

def test_a_refused_notification_keeps_a_hash_and_a_bounded_excerpt():
    body = "订单0123".encode()
    command = RecordRejectedNotification("wechat", "x" * 900, {"a": "b"}, body, 4)
    [incident], incident_id = command.decide(holding(), PaymentContext(NOW))
    [recorded] = incident.pending_events
    assert incident.id == incident_id
    assert (recorded.provider, len(recorded.reason), recorded.headers) == \
        ("wechat", 500, {"a": "b"})
    assert (recorded.body_sha256, recorded.body_bytes) == \
        (hashlib.sha256(body).hexdigest(), len(body))
    assert recorded.body_excerpt == body[:4].decode("utf-8", "replace")
    assert recorded.received_at == NOW


def test_a_negative_excerpt_keeps_none_of_the_body():
    [incident], _ = RecordRejectedNotification("alipay", "bad", {}, b"abc", -1).decide(
        holding(), PaymentContext(NOW))
    assert incident.pending_events[0].body_excerpt == ""


def test_recording_a_refusal_through_execute_stores_it(world):
    incident_id = world.ledger.execute(
        RecordRejectedNotification("wechat", "unknown order", {}, b"{}", 100), {})
    [recorded] = world.ledger.events.get(incident_id)
    assert (recorded.reason, recorded.body_bytes) == ("unknown order", 2)


# -- refunds to the channel -----------------------------------------------------------------

def test_a_refund_request_holds_the_money_on_the_order_and_the_account(world):
    order = paid(world)
    account = world.ledger.accounts.get_account(world.account)
    saved, result = RefundPayment(order.out_trade_no, 2000, "moving out").decide(
        holding(order, account), RefundContext(STAFF, "R1"))
    assert (saved, result) == ([order, account], {})
    assert order.refunds["R1"] == {"amount_fen": 2000, "status": "pending",
                                   "refund_id": None}
    assert (account.balance_fen("electricity"), account.available_fen("electricity")) == \
        (5000, 3000)


@pytest.mark.parametrize("amount_fen, paid_first, message", [
    (2000, False, "only a paid order can be refunded"),
    (5001, True, "at most 50.00 yuan"),
])
def test_a_refund_of_an_unpaid_order_or_above_what_was_paid_is_refused(world, amount_fen,
                                                                      paid_first, message):
    order = paid(world) if paid_first else place(world)
    with pytest.raises(InvalidRequest, match=message):
        RefundPayment(order.out_trade_no, amount_fen).decide(
            holding(order, world.ledger.accounts.get_account(world.account)),
            RefundContext(STAFF, "R1"))


def test_a_refund_of_an_unknown_order_is_not_found():
    with pytest.raises(OrderNotFound):
        RefundPayment("P-unknown", 100).decide(holding(), RefundContext(STAFF, "R1"))


def test_refunding_through_execute_holds_until_the_provider_settles(world):
    order = paid(world)
    refunding = world.ledger.execute(RefundPayment(order.out_trade_no, 2000,
                                                   idempotency_key="r1"), STAFF)
    assert refunding.status == "refunding"
    assert world.ledger.accounts.get_account(world.account).available_fen("electricity") == 3000


# -- settling a refund ----------------------------------------------------------------------

def pending_refund(world) -> tuple[PaymentOrder, str]:
    order = paid(world)
    refunding = world.ledger.execute(RefundPayment(order.out_trade_no, 2000,
                                                   idempotency_key="r1"), STAFF)
    [out_refund_no] = refunding.refunds
    return refunding, out_refund_no


def test_only_a_final_answer_settles_a_refund():
    assert SettleRefund("P1", "R1", "succeeded").settles()
    assert SettleRefund("P1", "R1", "failed").settles()
    assert not SettleRefund("P1", "R1", "processing").settles()
    assert SettleRefund("P1", "R1", "failed").idempotency_key == "refund:R1"


def test_a_refund_paid_out_is_posted_from_its_hold(world):
    order, out_refund_no = pending_refund(world)
    account = world.ledger.accounts.get_account(world.account)
    saved, result = SettleRefund(order.out_trade_no, out_refund_no, "succeeded",
                                 "50300001").decide(holding(order, account),
                                                    PaymentContext(NOW))
    assert result == {} and saved[:2] == [order, account]
    assert saved[2].id == transaction_id_for(f"refund:{out_refund_no}")
    assert (order.status, order.refunds[out_refund_no]["refund_id"]) == \
        ("refunded", "50300001")
    assert (account.balance_fen("electricity"), account.available_fen("electricity")) == \
        (3000, 3000)


def test_a_refund_the_provider_refused_releases_its_hold(world):
    order, out_refund_no = pending_refund(world)
    account = world.ledger.accounts.get_account(world.account)
    saved, _ = SettleRefund(order.out_trade_no, out_refund_no, "failed").decide(
        holding(order, account), PaymentContext(NOW))
    assert saved == [order, account]
    assert (order.status, order.refunds[out_refund_no]["status"]) == ("credited", "failed")
    assert account.available_fen("electricity") == 5000


@pytest.mark.parametrize("out_refund_no, status", [("R-unknown", "succeeded"),
                                                   (None, "processing")])
def test_an_unknown_refund_or_an_answer_still_processing_changes_nothing(world,
                                                                         out_refund_no,
                                                                         status):
    order, pending = pending_refund(world)
    assert SettleRefund(order.out_trade_no, out_refund_no or pending, status).decide(
        holding(order), PaymentContext(NOW)) == ([], {})


def test_settling_through_execute_posts_the_refund_once(world):
    order, out_refund_no = pending_refund(world)
    settle = SettleRefund(order.out_trade_no, out_refund_no, "succeeded", "50300001")
    assert world.ledger.execute(settle, {}) is None
    world.ledger.execute(settle, {})  # the provider tells it again
    assert world.ledger.payments.get_payment_order(order.out_trade_no).status == "refunded"
    assert world.ledger.accounts.get_account(world.account).balance_fen("electricity") == 3000
    with pytest.raises(OrderNotFound, match="order P-unknown does not exist"):
        world.ledger.execute(SettleRefund("P-unknown", out_refund_no, "failed"), {})
