"""How the projection rebuild grows with the log: events/s, CPU per event and peak RSS at
each size, against reading and decoding the same notification log (the floor) in the
same process.

The history is written in bulk but through the application itself: accounts are opened
with the ordinary command, then each account decides top-ups in memory
(``Account.top_up``, one ``Transaction`` record each, as ``bench.ledger_throughput``
writes them) and ``Ledger.save`` stores 1,000 of them at a time: the mapper encodes
them and the event store's recorder inserts them with their chain entries and
snapshots, so the rebuild reads the events the platform stores.
The rebuild runs in a child process of its own, so its peak RSS is its own and not what
writing a million events left behind.

Run: .venv/bin/python -m bench.rebuild [--events 100000,1000000] [--actors operator]
                                       [--batch N] [--gc serving|default] [--profile FILE [--py-spy PATH]]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from bootstrap import Platform
from bench.ledger_throughput import read_log_only
from bench.notify_latency import postgres_cpu_seconds
from bench.support import Timer, pg_settings, scratch_schema
from domain.account import MoneyContext
from domain.chart import Wallet
from domain.transaction import Transaction

ACCOUNTS = 100


CASHIER = {"kind": "operator", "id": "0b9d6c52-6f0e-4a39-9a53-3d5c0f1e7a10",
           "name": "cashier-1"}


def bulk_history(platform: Platform, events: int, per_save: int = 2000,
                 actors: str = "bench") -> int:
    """About ``events`` events: top-ups and their transaction records, ``per_save`` to a
    save. ``actors="operator"``: every top-up sold by a cashier at the counter, so each
    event also goes to the audit log (a request id of its own each). Returns the last
    notification id."""
    ledger = platform.ledger
    ids = [uuid.UUID(ledger.accounts.open_account(name=f"Shop {n}", actor={}).result["account_id"])
           for n in range(ACCOUNTS)]
    accounts = [ledger.accounts.get_account(i) for i in ids]
    written = len(accounts)
    start, n = datetime.now(timezone.utc), 0
    while written < events:
        for account in accounts:
            records = []
            for _ in range(min(per_save, events - written) // 2 or 1):
                n += 1
                now = start + timedelta(milliseconds=n)  # every top-up its own time
                actor = {"kind": "bench"} if actors == "bench" else \
                    {**CASHIER, "request_id": f"req-{n}"}
                ctx = MoneyContext(uuid.uuid4(), now, now, actor)
                event = account.top_up(ctx, wallet=Wallet.electricity, amount_fen=100,
                                       channel="cash", reference=None)
                records.append(Transaction.record(
                    transaction_id=ctx.transaction_id, account_id=account.id,
                    kind="top_up", wallet="electricity", amount_fen=100,
                    postings=event.postings, effective_at=now, recorded_at=now,
                    actor={} if actors == "bench" else actor,
                    idempotency_key=None, request_fingerprint="bench", corrects=None,
                    result={}))
            ledger.save(account, *records)
            written += 2 * len(records)
            if written >= events:
                break
    return ledger.recorder.max_notification_id() or 0


def measure(schema: str, profile: str | None, batch: int | None, gc_mode: str) -> dict:
    """In the child: the floor, then the rebuild, with this process's CPU and RSS."""
    platform = Platform(pg_settings(schema, **({"projection_batch_size": batch}
                                               if batch else {})))
    if gc_mode == "serving":  # as `prepaid projections rebuild` tunes it
        from api.app import tune_gc

        tune_gc(platform.settings.gc_thresholds)
    try:
        total = platform.ledger.recorder.max_notification_id() or 0
        floor = read_log_only(platform, platform.settings.projection_batch_size)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        profiler = cProfile.Profile() if profile else None
        cpu, server_cpu = time.process_time(), postgres_cpu_seconds()
        with Timer() as timer:
            if profiler:
                profiler.enable()
            counted = platform.rebuild_projections()["read-models"]
            if profiler:
                profiler.disable()
        cpu = time.process_time() - cpu
        server_cpu = postgres_cpu_seconds() - server_cpu  # its connections are still open
        if profiler:
            profiler.dump_stats(profile)
        assert counted == total, (counted, total)
        with platform.engines.reader.connect() as conn:
            statements = conn.exec_driver_sql("SELECT count(*) FROM statement_entries").scalar()
        assert statements > 0, statements
    finally:
        platform.close()
    return {"events": total, "floor": floor, "seconds": timer.elapsed_s, "cpu": cpu,
            "server_cpu": server_cpu,
            "rss_before_mb": rss_before / 1024,
            "rss_after_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default="100000,1000000")
    parser.add_argument("--profile", help="cProfile the rebuild into this file (.N added)")
    parser.add_argument("--py-spy", help="a py-spy binary: record the child into "
                        "PROFILE.N.txt (collapsed stacks, CPU only)")
    parser.add_argument("--batch", type=int, help="PREPAID_PROJECTION_BATCH_SIZE for the "
                        "rebuild (default: the setting's)")
    parser.add_argument("--actors", choices=("bench", "operator"), default="bench",
                        help="who sold the top-ups: nobody the audit log records (the "
                        "default), or a cashier (every event also an audit row)")
    parser.add_argument("--gc", choices=("serving", "default"), default="serving",
                        help="serving: the collector tuned as `prepaid projections rebuild` "
                        "tunes it (the default); default: Python's own thresholds")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child: a schema
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.profile, args.batch, args.gc)))
        return

    sizes = [int(s) for s in args.events.split(",")]
    rows = []
    for size in sizes:
        with scratch_schema() as schema:
            platform = Platform(pg_settings(schema))
            try:
                with Timer() as writing:
                    bulk_history(platform, size, actors=args.actors)
            finally:
                platform.close()
            print(f"  ({size} events written in bulk in {writing.elapsed_s:.0f} s)",
                  flush=True)
            child = [sys.executable, "-m", "bench.rebuild", "--measure", schema,
                     "--gc", args.gc]
            if args.batch:
                child += ["--batch", str(args.batch)]
            if args.py_spy:
                child = [args.py_spy, "record", "--threads", "-r", "250",
                         "--format", "raw", "-o", f"{args.profile}.{size}.txt", "--"] + child
            elif args.profile:
                child += ["--profile", f"{args.profile}.{size}"]
            out = subprocess.run(child, check=True, capture_output=True, text=True,
                                 env=os.environ).stdout
            rows.append(json.loads([line for line in out.splitlines()
                                    if line.startswith("{")][-1]))
            print("  " + _row(rows[-1]), flush=True)
    print("projection rebuild, PostgreSQL, every read model, one process, collector "
          + ("tuned as the command tunes it" if args.gc == "serving" else "at its defaults")
          + (", top-ups sold by a cashier (audited)" if args.actors == "operator" else ""))
    print("  events    | floor ev/s | rebuild ev/s | ratio | seconds | CPU us/ev | "
          "PostgreSQL CPU s | peak RSS MB (before -> after)")
    for r in rows:
        print("  " + _row(r))
    print("  target: >= 20000 events/s and >= 0.5x the floor; events/s flat with size")


def _row(r: dict) -> str:
    rate = r["events"] / r["seconds"]
    return (f"{r['events']:9d} | {r['floor']:10.0f} | {rate:12.0f} | "
            f"{rate / r['floor']:4.2f}x | {r['seconds']:7.1f} | "
            f"{1e6 * r['cpu'] / r['events']:9.0f} | {r['server_cpu']:16.1f} | "
            f"{r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f}")


if __name__ == "__main__":
    main()
