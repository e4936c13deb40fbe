"""How the cost of a top-up grows with an account's history, on PostgreSQL.

For each size, one account is given that many past events (written in bulk, snapshots
taken every 200 events as the ledger does), then a fresh platform (nothing in memory)
serves top-ups on it from one client: the first one reads the account from the store
(its latest snapshot and the events after it), the rest find it in the committer's
memory. Snapshots are what should keep the first one flat.

Run: .venv/bin/python -m bench.growth [--history 10,1000,100000] [--top-ups 200]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import uuid
from datetime import datetime, timezone

from bootstrap import Platform
from bench.support import Timer, pg_settings, scratch_schema
from domain.account import MoneyContext
from domain.chart import Wallet
from domain.transaction import Transaction


def give_history(platform: Platform, account_id: uuid.UUID, events: int) -> None:
    """About ``events`` top-ups (each an account event and a transaction record)."""
    ledger = platform.ledger
    now = datetime.now(timezone.utc)
    per_save, written = 100, 1
    while written < events:
        account = ledger.get_account(account_id)
        records = []
        for _ in range(min(per_save, events - written) // 2 or 1):
            ctx = MoneyContext(uuid.uuid4(), now, now, {"kind": "bench"})
            event = account.top_up(ctx, wallet=Wallet.electricity, amount_fen=100,
                                   channel="cash", reference=None)
            records.append(Transaction.record(
                transaction_id=ctx.transaction_id, account_id=account_id, kind="top_up",
                wallet="electricity", amount_fen=100, postings=event.postings,
                effective_at=now, recorded_at=now, actor={}, idempotency_key=None,
                request_fingerprint="bench", corrects=None, result={}))
        ledger.save(account, *records)
        written += 2 * len(records)


def one_size(history: int, top_ups: int) -> tuple[int, float, float, float, float]:
    with scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            account_id = uuid.UUID(platform.ledger.open_account(
                name="Shop", actor={}).result["account_id"])
            give_history(platform, account_id, history)
            version = platform.ledger.get_account(account_id).version
        finally:
            platform.close()
        platform = Platform(pg_settings(schema))
        try:
            latencies = []
            with Timer() as total:
                for n in range(top_ups):
                    start = time.perf_counter()
                    platform.ledger.top_up(account_id, amount_fen=100, channel="cash",
                                           actor={"kind": "bench"}, idempotency_key=f"g{n}")
                    latencies.append(time.perf_counter() - start)
        finally:
            platform.close()
    first, rest = latencies[0], sorted(latencies[1:])
    p99 = rest[min(len(rest) - 1, int(len(rest) * 0.99))]
    return version, first * 1000, statistics.median(rest) * 1000, p99 * 1000, \
        top_ups / total.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", default="10,1000,100000")
    parser.add_argument("--top-ups", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.history.split(",")]
    print(f"top-ups on one account with a past, one client, PostgreSQL ({args.top_ups} each)")
    print("  past events | first (cold) ms | p50 ms | p99 ms | top-ups/s")
    for size in sizes:
        version, first, p50, p99, rate = one_size(size, args.top_ups)
        print(f"  {version:11d} | {first:15.1f} | {p50:6.2f} | {p99:6.2f} | {rate:9.0f}",
              flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
