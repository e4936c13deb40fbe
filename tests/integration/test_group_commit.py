"""The group committer: batches, and stays exact when its own view of an account is stale."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from domain.errors import InsufficientBalance
from ledger.app import Ledger


def test_commands_sent_together_share_saves_and_all_count(platform):
    ledger = platform.ledger
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    barrier = threading.Barrier(8)

    def client(index: int) -> None:
        barrier.wait()
        for n in range(20):
            ledger.accounts.top_up(account, amount_fen=10, channel="cash", actor={},
                                   idempotency_key=f"{index}-{n}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    committer = ledger.committers[0]
    assert committer.commands_saved == 160
    assert committer.batches_saved < 160  # some commands shared a save
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 1600


def test_another_process_writing_the_same_account_is_never_overwritten(platform):
    settings = platform.settings
    first = Ledger(settings.eventsourcing_env())
    second = Ledger(settings.eventsourcing_env())
    try:
        account = uuid.UUID(first.accounts.open_account(name="Shop", actor={}).result["account_id"])
        first.accounts.top_up(account, amount_fen=100, channel="cash", actor={})  # now hot in first
        # first's view goes stale:
        second.accounts.top_up(account, amount_fen=40, channel="cash", actor={})
        third = first.accounts.top_up(account, amount_fen=7, channel="cash", actor={})
        assert third.result["balance_after_fen"] == 147
        refund = first.accounts.refund(account, amount_fen=147, channel="cash", actor={})
        assert refund.result["balance_after_fen"] == 0
        second.accounts.top_up(account, amount_fen=5, channel="cash", actor={})
        # On its stale view the first would refuse; judged on the stored state it pays.
        assert first.accounts.refund(account, amount_fen=5, channel="cash",
                                     actor={}).result["balance_after_fen"] == 0
        try:
            first.accounts.refund(account, amount_fen=1, channel="cash", actor={})
        except InsufficientBalance:
            pass
        else:
            raise AssertionError("refund of an empty wallet was accepted")
        events = list(first.events.get(account))
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        assert first.accounts.get_account(account).balance_fen("electricity") == 0
    finally:
        first.close()
        second.close()


def _orders(ledger, account_id, count: int) -> list[tuple[str, int]]:
    from datetime import timedelta

    from domain.payment import PaymentOrder

    now = ledger.clock()
    orders = [PaymentOrder.create(
        out_trade_no=f"G{uuid.uuid4().hex[:31].upper()}", account_id=account_id,
        wallet="electricity", amount_fen=100 + n, channel="wechat", scene="native",
        payer_openid=None, created_at=now, expires_at=now + timedelta(hours=2),
        provider_reply={}, actor={}) for n in range(count)]
    ledger.save(*orders)
    return [(order.out_trade_no, order.amount_fen) for order in orders]


def _credit(ledger, no: str, fen: int):
    return ledger.payments.submit_credit_payment(
        channel="wechat", out_trade_no=no, transaction_id=f"42{no[-20:]}", amount_fen=fen,
        currency="CNY", paid_at=None, source="notification")


def test_a_steady_stream_is_gathered_into_batches_and_snapshotted_from_memory(platform):
    """Credits queued every 2 ms (as notifications arrive): the committer reads the orders
    in bulk, gathers several per save, and snapshots the account from memory as its
    version passes the interval; the snapshot equals the account rebuilt from events."""
    ledger = platform.ledger
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    orders = _orders(ledger, account, 230)
    committer = ledger.committers[0]
    batches_before = committer.batches_saved
    futures = []
    for no, fen in orders:
        futures.append(_credit(ledger, no, fen))
        time.sleep(0.002)
    outcomes = [future.result(timeout=30) for future in futures]
    assert all(outcome.created for outcome in outcomes)
    assert committer.batches_saved - batches_before <= len(orders) * 0.6
    expected = sum(fen for _, fen in orders)
    assert ledger.accounts.get_account(account).balance_fen("electricity") == expected
    # A duplicate of each is answered from the order's state, never credited twice.
    again = [_credit(ledger, no, fen).result(timeout=30) for no, fen in orders[:20]]
    assert all(outcome.result.get("already") for outcome in again)
    assert ledger.accounts.get_account(account).balance_fen("electricity") == expected

    snapshots = list(ledger.snapshots.get(account))
    assert snapshots, "no snapshot taken as the account passed version 200"
    snapshot = snapshots[-1]
    assert snapshot.originator_version >= 200
    from_events = ledger.repository.get(account, version=snapshot.originator_version,
                                        projector_func=lambda _, events: _replay(events))
    assert snapshot.state["balances_fen"] == from_events.balances_fen


def _replay(events):
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def test_a_failed_save_never_leaves_memory_ahead_of_the_store(platform, monkeypatch):
    """The database fails one batch (not a conflict: a lost connection). Its callers hear
    of it, and nothing decided on top of it is kept: the same payment delivered again is
    credited (not answered "already credited" from memory), and the account still loads
    with every version in order."""
    from eventsourcing.persistence import OperationalError

    ledger = platform.ledger
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    (first_no, first_fen), (second_no, second_fen) = _orders(ledger, account, 2)
    ledger.accounts.top_up(account, amount_fen=1, channel="cash", actor={})  # the account is hot
    recorder = ledger.recorder
    real_insert = recorder.insert_events
    failures = []

    def failing_once(stored, **kwargs):
        if not failures:
            failures.append(len(stored))
            raise OperationalError("connection lost")
        return real_insert(stored, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", failing_once)
    lost = _credit(ledger, first_no, first_fen)
    try:
        lost.result(timeout=30)
    except OperationalError:
        pass
    else:
        raise AssertionError("a batch that was not stored was answered as done")
    # Decided after the failure: stored on the real state, one version after the top-up.
    assert _credit(ledger, second_no, second_fen).result(timeout=30).created
    again = _credit(ledger, first_no, first_fen).result(timeout=30)
    assert again.created and not again.result.get("already")
    assert ledger.accounts.get_account(account).balance_fen("electricity") == \
        1 + first_fen + second_fen
    versions = [e.originator_version for e in ledger.events.get(account)]
    assert versions == list(range(1, len(versions) + 1))


def test_commands_after_stop_are_refused_not_left_waiting(platform):
    ledger = Ledger(platform.settings.eventsourcing_env())
    account = uuid.UUID(ledger.accounts.open_account(name="Shop", actor={}).result["account_id"])
    ledger.close()
    try:
        ledger.accounts.top_up(account, amount_fen=1, channel="cash", actor={})
    except RuntimeError as error:
        assert "shutting down" in str(error)
    else:
        raise AssertionError("a command after shutdown was accepted")
