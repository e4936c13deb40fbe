"""Many writers at once on PostgreSQL: nothing lost, nothing doubled, nothing negative.

Each worker has its own application instance (its own connection pool and aggregate
cache), as separate API processes would.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from bootstrap import Platform
from domain.errors import InsufficientBalance
from ledger.app import Ledger
from projections.accounts.tables import statement_entries

WORKERS = 8


@pytest.fixture
def pg(make_settings):
    settings = make_settings("postgres")
    platform = Platform(settings)
    yield platform
    platform.close()


def workers(platform: Platform, count: int = WORKERS) -> list[Ledger]:
    return [Ledger(platform.settings.eventsourcing_env(), max_write_attempts=200)
            for _ in range(count)]


def test_concurrent_top_ups_and_refunds_keep_every_acknowledged_operation(pg):
    account_id = uuid.UUID(pg.ledger.accounts.open_account(name="Busy shop", actor={})
                           .result["account_id"])
    apps = workers(pg)
    acknowledged: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        rng = random.Random(index)
        app = apps[index]
        for n in range(25):
            amount = rng.randint(1, 500)
            try:
                if rng.random() < 0.6:
                    app.accounts.top_up(account_id, amount_fen=amount, channel="cash", actor={},
                                        idempotency_key=f"w{index}-{n}")
                    delta = amount
                else:
                    app.accounts.refund(account_id, amount_fen=amount, channel="cash", actor={},
                                        idempotency_key=f"w{index}-{n}")
                    delta = -amount
            except InsufficientBalance:
                continue
            with lock:
                acknowledged.append(delta)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(work, range(WORKERS)))
    for app in apps:
        app.close()

    account = pg.ledger.accounts.get_account(account_id)
    assert account.balance_fen("electricity") == sum(acknowledged)
    assert len(acknowledged) > 100  # the refunds that failed for lack of money are few
    pg.catch_up()
    with pg.engines.reader.connect() as conn:
        balances = conn.execute(select(statement_entries.c.balance_after_fen)
                                .order_by(statement_entries.c.position)).scalars().all()
    assert len(balances) == len(acknowledged)
    assert min(balances) >= 0, "a refund took the wallet below zero"


def test_concurrent_duplicates_with_one_key_credit_once(pg):
    account_id = uuid.UUID(pg.ledger.accounts.open_account(name="Shop",
                                                           actor={}).result["account_id"])
    apps = workers(pg)
    barrier = threading.Barrier(WORKERS)

    def send(index: int):
        barrier.wait()
        return apps[index].accounts.top_up(account_id, amount_fen=1000, channel="wechat", actor={},
                                           idempotency_key="wx-4200001234")

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(send, range(WORKERS)))
    for app in apps:
        app.close()
    assert sum(o.created for o in outcomes) == 1
    assert len({o.result["transaction_id"] for o in outcomes}) == 1
    assert {o.result["balance_after_fen"] for o in outcomes} == {1000}
    assert pg.ledger.accounts.get_account(account_id).balance_fen("electricity") == 1000


def test_concurrent_reversals_of_one_sale_reverse_it_once(pg):
    account_id = uuid.UUID(pg.ledger.accounts.open_account(name="Shop",
                                                           actor={}).result["account_id"])
    sale = pg.ledger.accounts.top_up(account_id, amount_fen=500, channel="cash", actor={},
                                     idempotency_key="sale")
    sale_id = uuid.UUID(sale.result["transaction_id"])
    apps = workers(pg)
    barrier = threading.Barrier(WORKERS)

    def reverse(index: int) -> str:
        barrier.wait()
        try:
            apps[index].accounts.reverse(sale_id, actor={}, reason="dup",
                                         idempotency_key=f"rev-{index}")
            return "reversed"
        except Exception as error:  # the losers must all see AlreadyReversed
            return type(error).__name__

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(reverse, range(WORKERS)))
    for app in apps:
        app.close()
    assert sorted(results) == ["AlreadyReversed"] * (WORKERS - 1) + ["reversed"]
    assert pg.ledger.accounts.get_account(account_id).balance_fen("electricity") == 0
