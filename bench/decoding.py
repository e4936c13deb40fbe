"""Decoding stored events: the stock ``eventsourcing`` mapper against the event store's
(``ledger/core/transcoding.py``), on the same stored events, in the same run.

The events are the ones the rebuild benchmarks write: top-ups by an operator with their
transaction records. Each way decodes every event and the results are checked equal.

Run: .venv/bin/python -m bench.decoding [--events 30000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime, timezone

from eventsourcing.persistence import JSONTranscoder, Mapper

from domain.account import Account, MoneyContext
from domain.chart import Wallet
from domain.transaction import Transaction
from ledger.core.store import EventStore


def stored_events(count: int) -> list:
    """About ``count`` stored events: top-ups and their transaction records."""
    store = EventStore()
    account = Account.open(account_id=uuid.uuid4(), name="Shop", site_id=None, unit=None,
                           contact=None, phone=None, area_m2=None, actor={},
                           idempotency_key=None, request_fingerprint="bench")
    now = datetime.now(timezone.utc)
    events = []
    for n in range(count // 2):
        ctx = MoneyContext(uuid.uuid4(), now, now, {"kind": "operator", "id": str(n)})
        event = account.top_up(ctx, wallet=Wallet.electricity, amount_fen=100 + n,
                               channel="cash", reference=f"r{n}")
        record = Transaction.record(
            transaction_id=ctx.transaction_id, account_id=account.id, kind="top_up",
            wallet="electricity", amount_fen=100 + n, postings=event.postings,
            effective_at=now, recorded_at=now, actor={"kind": "operator"},
            idempotency_key=f"k{n}", request_fingerprint="bench", corrects=None,
            result={"transaction_id": str(ctx.transaction_id)})
        events.extend(record.collect_events())
    events[:0] = account.collect_events()
    return [store.mapper.to_stored_event(e) for e in events]


def stock_mapper() -> Mapper:
    transcoder = JSONTranscoder()
    EventStore.register_transcodings(None, transcoder)  # the application's transcodings
    return Mapper(transcoder=transcoder)


def timed(mapper, stored, rounds: int) -> tuple[float, list]:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        decoded = [mapper.to_domain_event(s) for s in stored]
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / len(stored), decoded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stored = stored_events(args.events)
    ours = EventStore().mapper
    stock = stock_mapper()
    # Alternate so that the machine's load falls on both alike.
    stock_us, stock_events = timed(stock, stored, args.rounds)
    ours_us, our_events = timed(ours, stored, args.rounds)
    stock_us = min(stock_us, timed(stock, stored, args.rounds)[0])
    ours_us = min(ours_us, timed(ours, stored, args.rounds)[0])
    assert all(type(a) is type(b) and a.__dict__ == b.__dict__
               for a, b in zip(stock_events, our_events, strict=True))
    print(f"decoding {len(stored)} stored events (best of {2 * args.rounds} rounds each)")
    print(f"  stock mapper and JSONTranscoder : {stock_us:6.1f} us per event")
    print(f"  the event store's               : {ours_us:6.1f} us per event")
    print(f"  ratio stock/ours                : {stock_us / ours_us:6.2f}x  (same values)")


if __name__ == "__main__":
    main()
