"""Top-ups per second through the application layer on PostgreSQL, 8 concurrent clients,
against the naive design measured in the same run; and a projection rebuild from
100,000 events against reading and decoding the same notification log.

The top-ups are measured in rounds (``--rounds``, 3 by default), each a naive run and a
ledger run back to back, each on a fresh schema: the ratio is taken within a round and the
median of the rounds is the figure, since the naive design's rate alone swings by half
between runs on a shared machine.

Run: .venv/bin/python -m bench.ledger_throughput [--ops-per-client N] [--events N]
     [--rounds N] [--gc serving|default]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import psycopg

from bootstrap import Platform
from bench.support import POSTGRES_URL, Timer, pg_settings, scratch_schema, serving_gc
from domain.account import MoneyContext
from domain.chart import Wallet
from domain.transaction import Transaction

CLIENTS = 8


def naive_baseline(schema: str, ops_per_client: int) -> float:
    """One psycopg transaction per top-up: UPDATE a balance row, INSERT a history row."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("CREATE TABLE balances (id int PRIMARY KEY, balance bigint NOT NULL)")
        conn.execute("CREATE TABLE history (id bigserial PRIMARY KEY, account int, "
                     "amount bigint, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO balances SELECT g, 0 FROM generate_series(0, %s) g",
                     (CLIENTS - 1,))

    def client(index: int) -> None:
        with psycopg.connect(POSTGRES_URL) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.commit()
            for _ in range(ops_per_client):
                with conn.transaction():
                    conn.execute("UPDATE balances SET balance = balance + %s WHERE id = %s",
                                 (100, index))
                    conn.execute("INSERT INTO history (account, amount) VALUES (%s, %s)",
                                 (index, 100))

    with Timer() as timer, ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return CLIENTS * ops_per_client / timer.elapsed_s


def ledger_top_ups(platform: Platform, ops_per_client: int) -> float:
    ledger = platform.ledger
    accounts = [uuid.UUID(ledger.accounts.open_account(name=f"Shop {n}",
                                                       actor={}).result["account_id"])
                for n in range(CLIENTS)]

    def client(index: int) -> None:
        for n in range(ops_per_client):
            ledger.accounts.top_up(accounts[index], amount_fen=100, channel="cash",
                                   actor={"kind": "bench"}, idempotency_key=f"c{index}-{n}")

    with Timer() as timer, ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    expected = ops_per_client * 100
    assert all(ledger.accounts.get_account(a).balance_fen("electricity") == expected
               for a in accounts)
    return CLIENTS * ops_per_client / timer.elapsed_s


def write_history(platform: Platform, events: int) -> int:
    """Write about ``events`` money events quickly: many top-ups per atomic save."""
    ledger = platform.ledger
    per_save = 50
    accounts = [uuid.UUID(ledger.accounts.open_account(name=f"Shop {n}",
                                                       actor={}).result["account_id"])
                for n in range(100)]
    written = len(accounts)
    now = datetime.now(timezone.utc)
    while written < events:
        for account_id in accounts:
            account = ledger.accounts.get_account(account_id)
            records = []
            for _ in range(per_save // 2):
                ctx = MoneyContext(uuid.uuid4(), now, now, {"kind": "bench"})
                event = account.top_up(ctx, wallet=Wallet.electricity, amount_fen=100,
                                       channel="cash", reference=None)
                records.append(Transaction.record(
                    transaction_id=ctx.transaction_id, account_id=account_id, kind="top_up",
                    wallet="electricity", amount_fen=100, postings=event.postings,
                    effective_at=now, recorded_at=now, actor={}, idempotency_key=None,
                    request_fingerprint="bench", corrects=None, result={}))
            ledger.save(account, *records)
            written += per_save
            if written >= events:
                break
    return ledger.recorder.max_notification_id() or 0


def read_log_only(platform: Platform, batch: int) -> float:
    """The floor for a rebuild: read and decode every notification, write nothing."""
    ledger = platform.ledger
    position, count = 0, 0
    with Timer() as timer:
        while True:
            notes = ledger.recorder.select_notifications(start=position, limit=batch,
                                                         inclusive_of_start=False)
            if not notes:
                break
            for note in notes:
                ledger.mapper.to_domain_event(note)
            count += len(notes)
            position = notes[-1].id
    return count / timer.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops-per-client", type=int, default=250)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gc", choices=("serving", "default"), default="serving",
                        help="serving: the ledger's runs with the collector tuned as "
                        "`prepaid serve` tunes it (the default); default: Python's own")
    args = parser.parse_args()
    tuned = args.gc == "serving"

    rounds = []
    for _ in range(args.rounds):
        with scratch_schema() as schema:
            baseline = naive_baseline(schema, args.ops_per_client)
        with scratch_schema() as schema:
            platform = Platform(pg_settings(schema, postgres_pool_size=CLIENTS + 2))
            try:
                with serving_gc(platform.settings.gc_thresholds, tuned):
                    cpu = time.process_time()
                    ours = ledger_top_ups(platform, args.ops_per_client)
                    cpu = time.process_time() - cpu
                batches = sum(c.batches_saved for c in platform.ledger.committers)
                commands = sum(c.commands_saved for c in platform.ledger.committers)
            finally:
                platform.close()
        rounds.append((baseline, ours, cpu, batches, commands))
    print(f"top-ups, {CLIENTS} concurrent clients, {CLIENTS * args.ops_per_client} per run, "
          f"{args.rounds} rounds (naive then ledger, back to back), collector "
          + ("tuned as serving tunes it" if tuned else "at its defaults"))
    for n, (baseline, ours, cpu, batches, commands) in enumerate(rounds, 1):
        per_top_up_ms = 1000 * cpu / (CLIENTS * args.ops_per_client)
        print(f"  round {n}: naive {baseline:6.0f} ops/s, ledger {ours:6.0f} ops/s, "
              f"ratio {ours / baseline:4.2f}x, {commands} commands in {batches} saves, "
              f"{per_top_up_ms:.2f} ms CPU per top-up")
    baseline = statistics.median(r[0] for r in rounds)
    ours = statistics.median(r[1] for r in rounds)
    ratio = statistics.median(r[1] / r[0] for r in rounds)
    per_top_up_ms = statistics.median(1000 * r[2] / (CLIENTS * args.ops_per_client)
                                      for r in rounds)
    print(f"  naive UPDATE+INSERT baseline : {baseline:8.0f} ops/s (median)")
    print(f"  event-sourced ledger         : {ours:8.0f} ops/s (median)")
    print(f"  ratio ledger/baseline        : {ratio:8.2f}x  (median of the rounds; "
          f"target >= 0.6x)")
    print(f"  CPU of this process per top-up: {per_top_up_ms:.2f} ms (median)")

    with scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            total = write_history(platform, args.events)
            with serving_gc(platform.settings.gc_thresholds, tuned):
                floor = read_log_only(platform, platform.settings.projection_batch_size)
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                cpu = time.process_time()
                with Timer() as timer:
                    counted = platform.rebuild_projections()["read-models"]
                cpu = time.process_time() - cpu
            assert counted == total, (counted, total)
        finally:
            platform.close()
    rate = total / timer.elapsed_s
    print(f"projection rebuild from {total} events")
    print(f"  read+decode log only (floor) : {floor:8.0f} events/s")
    print(f"  full rebuild                 : {rate:8.0f} events/s  ({timer.elapsed_s:.1f} s)")
    print(f"  ratio rebuild/floor          : {rate / floor:8.2f}x  (target >= 0.5x, 20000/s)")
    print(f"  CPU of this process          : {1e6 * cpu / total:8.0f} us per event")
    print(f"  peak RSS                     : {rss_before / 1024:8.0f} MB before the rebuild, "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB after")


if __name__ == "__main__":
    main()
