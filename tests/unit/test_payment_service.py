"""Payment orders on the in-memory event store, the providers fakes written here: no
database, no network, no threads (group commit off), a clock the tests move."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from domain.errors import AccountNotFound, InvalidRequest
from domain.payment import OrderNotFound, PaymentMismatch, order_id_for
from ledger.accounts import AccountService
from ledger.app import Ledger
from ledger.core.bus import CommandBus
from ledger.core.store import EventStore
from ledger.core.writer import Writer
from ledger.payments import ChannelNotConfigured, PaymentService, ProviderUnavailable
from tests.clock_fakes import FrozenClock

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}
TENANT = {"kind": "tenant", "id": "t1"}


class FakeProvider:
    """The provider port: remembers what it was asked and answers as told."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.created: list[str] = []
        self.stored_before_create: list[bool] = []
        self.closed: list[str] = []
        self.refunds: list[str] = []
        self.down = False
        self.paid: dict[str, int] = {}  # out_trade_no -> amount paid
        self.refund_status = "succeeded"

    def create(self, *, out_trade_no, amount_fen, description, scene, payer_openid,
               expires_at):
        if self.down:
            raise ConnectionError("connect timeout")
        self.stored_before_create.append(self.store.find(order_id_for(out_trade_no))
                                         is not None)
        self.created.append(out_trade_no)
        return {"code_url": f"weixin://wxpay/{out_trade_no}"}

    def query(self, out_trade_no):
        if out_trade_no in self.paid:
            return SimpleNamespace(paid=True, closed=False, transaction_id="4200001",
                                   amount_fen=self.paid[out_trade_no], paid_at=NOW)
        return SimpleNamespace(paid=False, closed=False, transaction_id=None,
                               amount_fen=None, paid_at=None)

    def close(self, out_trade_no):
        self.closed.append(out_trade_no)

    def refund(self, *, out_trade_no, out_refund_no, amount_fen, total_fen, reason):
        self.refunds.append(out_refund_no)
        return SimpleNamespace(status=self.refund_status, refund_id="50300001")

    def query_refund(self, out_refund_no, *, out_trade_no):
        return SimpleNamespace(status=self.refund_status, refund_id="50300001")


@pytest.fixture
def world():
    clock = FrozenClock(NOW)
    store = EventStore()  # no env: the library's in-memory recorder
    bus = CommandBus(store, Writer(store), max_commands=1)
    accounts = AccountService(store, bus, clock=clock, max_top_up_fen=100_000)
    provider = FakeProvider(store)
    payments = PaymentService(store, bus, clock=clock, providers={"wechat": provider},
                              order_ttl=timedelta(minutes=30),
                              query_after=timedelta(minutes=5), max_top_up_fen=100_000)
    account = uuid.UUID(accounts.open_account(name="Tea shop", actor=STAFF)
                        .result["account_id"])
    yield SimpleNamespace(clock=clock, store=store, accounts=accounts, payments=payments,
                          provider=provider, account=account)
    bus.close()


def balance(world) -> int:
    return world.accounts.get_account(world.account).balance_fen("electricity")


def order(world, amount_fen=5000, key="order-1"):
    return world.payments.create_payment_order(
        account_id=world.account, amount_fen=amount_fen, channel="wechat", scene="native",
        wallet="electricity", payer_openid=None, actor=TENANT, idempotency_key=key)


def credit(world, placed, amount_fen=None, channel="wechat", source="notification"):
    return world.payments.credit_payment(
        channel=channel, out_trade_no=placed.out_trade_no, transaction_id="4200001",
        amount_fen=placed.amount_fen if amount_fen is None else amount_fen,
        currency="CNY", paid_at=NOW, source=source)


def test_an_order_is_stored_before_the_provider_hears_of_it_and_keeps_its_reply(world):
    placed = order(world)
    assert world.provider.stored_before_create == [True]
    assert placed.status == "created"
    assert placed.expires_at == NOW + timedelta(minutes=30)
    assert placed.provider_reply == {"code_url": f"weixin://wxpay/{placed.out_trade_no}"}
    assert world.payments.get_payment_order(placed.out_trade_no).id == placed.id


def test_the_same_key_answers_the_same_order_and_asks_the_provider_once(world):
    first, again = order(world), order(world)
    assert again.id == first.id
    assert world.provider.created == [first.out_trade_no]


@pytest.mark.parametrize("change, error", [
    (dict(channel="alipay", scene="qr"), ChannelNotConfigured),
    (dict(amount_fen=100_001), InvalidRequest),
    (dict(account_id=uuid.UUID(int=7)), AccountNotFound),
])
def test_refused_orders_never_reach_the_provider(world, change, error):
    request = dict(account_id=world.account, amount_fen=5000, channel="wechat",
                   scene="native", wallet="electricity", payer_openid=None, actor=TENANT,
                   idempotency_key="k") | change
    with pytest.raises(error):
        world.payments.create_payment_order(**request)
    assert world.provider.created == []


def test_an_order_the_provider_did_not_take_is_closed(world):
    world.provider.down = True
    with pytest.raises(ProviderUnavailable):
        order(world)
    world.provider.down = False
    stored = order(world)  # the same key: the order as it was left
    assert stored.status == "closed"
    assert world.provider.created == []


def test_a_payment_is_credited_once_however_often_it_is_reported(world):
    placed = order(world)
    first = credit(world, placed)
    again = credit(world, placed)
    by_query = credit(world, placed, source="query")
    assert first.created and first.result["balance_after_fen"] == 5000
    assert (again.created, again.result) == (False, first.result)
    assert by_query.created is False
    assert balance(world) == 5000
    stored = world.payments.get_payment_order(placed.out_trade_no)
    assert stored.status == "credited"
    assert str(stored.credit_transaction_id) == first.result["transaction_id"]


@pytest.mark.parametrize("amount_fen, channel, error", [
    (4999, "wechat", PaymentMismatch),
    (5000, "alipay", OrderNotFound),
])
def test_a_payment_that_does_not_match_its_order_credits_nothing(world, amount_fen, channel,
                                                                 error):
    placed = order(world)
    with pytest.raises(error):
        credit(world, placed, amount_fen=amount_fen, channel=channel)
    assert balance(world) == 0
    assert world.payments.get_payment_order(placed.out_trade_no).status == "created"


def test_without_group_commit_a_notification_is_credited_synchronously(world):
    placed = order(world)
    assert world.payments.submit_credit_payment(
        channel="wechat", out_trade_no=placed.out_trade_no, transaction_id="4200001",
        amount_fen=5000, currency="CNY", paid_at=NOW, source="notification") is None
    assert balance(world) == 0  # the caller credits it with credit_payment


def test_closing_closes_an_unpaid_order_only(world):
    unpaid, paid = order(world, key="a"), order(world, key="b")
    credit(world, paid)
    assert world.payments.close_payment_order(unpaid.out_trade_no, "cancelled").status \
        == "closed"
    assert world.payments.close_payment_order(paid.out_trade_no, "cancelled").status \
        == "credited"
    assert balance(world) == 5000


def test_the_sync_job_credits_paid_orders_and_closes_expired_ones(world):
    paid, expired = order(world, key="a"), order(world, key="b")
    world.provider.paid[paid.out_trade_no] = 5000
    world.clock.now = NOW + timedelta(minutes=31)
    young = order(world, key="c")
    rows = [{"channel": "wechat", "out_trade_no": o.out_trade_no}
            for o in (paid, expired, young)]
    counts = world.payments.sync_payment_orders(rows)
    assert counts == {"credited": 1, "closed": 1, "refunds_settled": 0}
    assert world.provider.closed == [expired.out_trade_no]
    assert [world.payments.get_payment_order(o.out_trade_no).status
            for o in (paid, expired, young)] == ["credited", "closed", "created"]
    assert balance(world) == 5000


@pytest.mark.parametrize("status, balance_after, order_status", [
    ("succeeded", 3000, "refunded"),
    ("failed", 5000, "credited"),
])
def test_a_refund_to_the_channel_is_held_then_posted_or_released(world, status,
                                                                  balance_after, order_status):
    placed = order(world)
    credit(world, placed)
    world.provider.refund_status = status
    refunded = world.payments.refund_payment(placed.out_trade_no, amount_fen=2000,
                                             reason="moving out", actor=STAFF,
                                             idempotency_key="r1")
    assert [r["status"] for r in refunded.refunds.values()] == [status]
    assert refunded.status == order_status
    account = world.accounts.get_account(world.account)
    assert account.balance_fen("electricity") == balance_after
    assert account.available_fen("electricity") == balance_after


def test_a_refund_still_processing_keeps_the_money_held(world):
    placed = order(world)
    credit(world, placed)
    world.provider.refund_status = "processing"
    refunded = world.payments.refund_payment(placed.out_trade_no, amount_fen=2000,
                                             reason=None, actor=STAFF, idempotency_key="r1")
    assert refunded.status == "refunding"
    account = world.accounts.get_account(world.account)
    assert (account.balance_fen("electricity"), account.available_fen("electricity")) == \
        (5000, 3000)
    again = world.payments.refund_payment(placed.out_trade_no, amount_fen=2000,
                                          reason=None, actor=STAFF, idempotency_key="r1")
    assert len(again.refunds) == 1  # the same key holds once
    assert world.accounts.get_account(world.account).available_fen("electricity") == 3000


def test_a_refused_notification_is_kept_with_a_bounded_excerpt(world):
    incident_id = world.payments.record_rejected_notification(
        provider="wechat", reason="x" * 900, headers={"A": "b"}, body=b"0123456789",
        excerpt_bytes=4)
    [recorded] = world.store.events.get(incident_id)
    assert (recorded.body_excerpt, recorded.body_bytes, len(recorded.reason)) == \
        ("0123", 10, 500)


def test_the_ledger_answers_for_its_payment_service_and_shows_its_providers():
    provider = object()
    ledger = Ledger(clock=FrozenClock(NOW), group_commit_max_commands=1,
                    payment_providers={"wechat": provider})
    try:
        assert isinstance(ledger.payments, PaymentService)
        assert ledger.payment_providers["wechat"] is provider
        assert ledger.payment_providers.get("alipay") is None
        with pytest.raises(TypeError):
            ledger.payment_providers["alipay"] = provider  # read-only
        with pytest.raises(ChannelNotConfigured):
            ledger.payments.provider("alipay")
        with pytest.raises(OrderNotFound):
            ledger.payments.get_payment_order("P" + "0" * 31)
    finally:
        ledger.close()
