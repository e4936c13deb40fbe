"""How costs grow with size, on PostgreSQL, each printed as a small table of the cost
per unit at each size.

1. Top-ups on one account with 10, 1,000 and 100,000 past events (written in bulk, each
   top-up an account event and a transaction record, snapshots every 200 account events
   as the ledger takes them), then a fresh platform (nothing in memory) serves top-ups on
   it from one client: the first one reads the account from the store (its latest
   snapshot and the events after it), the rest find it in the committer's memory.
   Snapshots are what should keep the first one flat.
2. The readings batch (one reading per meter, stored, charged and projected) at 1,000,
   10,000 and 50,000 meters: the cost per reading of a warm batch. A request carries at
   most ``MAX_READINGS_PER_BATCH`` (20,000) readings, so 50,000 meters are three batches.
3. The peak memory of ``prepaid serve`` holding 50,000 hot aggregates (its default cap,
   ``PREPAID_HOT_AGGREGATES``): the real server process, 25,000 meters bound to 25,000
   accounts made beforehand in the store, then two rounds of ``POST /readings`` over HTTP
   (the first reading of a meter loads the meter, the second charges its account), the
   server's RSS read from ``/proc/<pid>/status`` (VmRSS now, VmHWM the peak).

Run: .venv/bin/python -m bench.growth [--parts top-ups,readings,serve]
         [--history 10,1000,100000] [--top-ups 200] [--meters 1000,10000,50000]
         [--serve-meters 25000]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bootstrap import Platform
from bench.readings_ingest import START, build_site
from bench.support import POSTGRES_URL, Timer, pg_settings, scratch_schema, serving_gc
from domain.account import MoneyContext
from domain.chart import Wallet
from domain.transaction import Transaction


def give_history(platform: Platform, account_id: uuid.UUID, events: int) -> None:
    """About ``events`` top-ups (each an account event and a transaction record)."""
    ledger = platform.ledger
    now = datetime.now(timezone.utc)
    per_save, written = 100, 1
    while written < events:
        account = ledger.accounts.get_account(account_id)
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


def one_size(history: int, top_ups: int) -> tuple[int, float, float, float, float, float]:
    with scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            account_id = uuid.UUID(platform.ledger.accounts.open_account(
                name="Shop", actor={}).result["account_id"])
            give_history(platform, account_id, history)
            version = platform.ledger.accounts.get_account(account_id).version
        finally:
            platform.close()
        platform = Platform(pg_settings(schema))
        try:
            latencies = []
            cpu_start = time.process_time()
            with Timer() as total:
                for n in range(top_ups):
                    start = time.perf_counter()
                    platform.ledger.accounts.top_up(account_id, amount_fen=100, channel="cash",
                                                    actor={"kind": "bench"},
                                                    idempotency_key=f"g{n}")
                    latencies.append(time.perf_counter() - start)
            cpu = time.process_time() - cpu_start
        finally:
            platform.close()
    first, rest = latencies[0], sorted(latencies[1:])
    p99 = rest[min(len(rest) - 1, int(len(rest) * 0.99))]
    return version, first * 1000, statistics.median(rest) * 1000, p99 * 1000, \
        top_ups / total.elapsed_s, cpu / top_ups * 1000


def top_ups_table(sizes: list[int], top_ups: int) -> None:
    print(f"top-ups on one account with a past, one client, PostgreSQL ({top_ups} each; "
          f"load average {load_average()})")
    print("  past events | account events | first (cold) ms | p50 ms | p99 ms | top-ups/s "
          "| CPU ms/top-up")
    for size in sizes:
        version, first, p50, p99, rate, cpu_ms = one_size(size, top_ups)
        print(f"  {size:11,d} | {version:14,d} | {first:15.1f} | {p50:6.2f} | {p99:6.2f} "
              f"| {rate:9.0f} | {cpu_ms:13.2f}", flush=True)


def readings_round(platform: Platform, numbers: list[str], step: int) -> tuple[float, float]:
    """One reading per meter, at most 20,000 per batch; wall and CPU seconds to stored,
    charged and projected."""
    from ledger.metering import MAX_READINGS_PER_BATCH, ReadingInput
    at = START + timedelta(minutes=30 * step)
    readings = [ReadingInput(no, at, 100_000 + step * (50 + i % 7))
                for i, no in enumerate(numbers)]
    cpu_start = time.process_time()
    with Timer() as timer:
        for start in range(0, len(readings), MAX_READINGS_PER_BATCH):
            ingested = platform.ledger.metering.ingest_readings(
                readings[start:start + MAX_READINGS_PER_BATCH])
            assert {a["billing"] for a in ingested.answers} <= {"started", "charged"}
        platform.catch_up()
    return timer.elapsed_s, time.process_time() - cpu_start


def readings_table(sizes: list[int]) -> None:
    print(f"readings batch, one per meter, stored + charged + projected, PostgreSQL "
          f"(load average {load_average()}; the serving collector settings)")
    print("   meters | set-up s | warm round s | ms/reading | CPU ms/reading | peak RSS MB")
    for size in sizes:
        with scratch_schema() as schema:
            platform = Platform(pg_settings(schema))
            try:
                with Timer() as setup:
                    numbers = build_site(platform, size)
                with serving_gc(platform.settings.gc_thresholds):
                    readings_round(platform, numbers, 0)  # starting readings, nothing charged
                    readings_round(platform, numbers, 1)  # first charge, accounts loaded
                    wall, cpu = readings_round(platform, numbers, 2)
            finally:
                platform.close()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {size:7,d} | {setup.elapsed_s:8.1f} | {wall:12.2f} | "
              f"{wall / size * 1000:10.2f} | {cpu / size * 1000:14.2f} | {peak_mb:11.0f}",
              flush=True)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def proc_status_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def serve_memory(meters: int) -> None:
    """RSS of `prepaid serve` before and after 2 x ``meters`` aggregates were made hot."""
    from ledger.metering import MAX_READINGS_PER_BATCH
    with tempfile.TemporaryDirectory() as folder, scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            numbers = build_site(platform, meters)
            headers = admin_header(platform)
        finally:
            platform.close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root), "PREPAID_DATABASE_URL": POSTGRES_URL,
               "PREPAID_DATABASE_SCHEMA": schema, "PREPAID_DEVICES_IN_PROCESS": "false"}
        server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port",
                                   str(port)], cwd=folder, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start")
            started = proc_status_mb(server.pid)
            rounds = []
            with httpx.Client(headers=headers, timeout=600) as client:
                for step in range(2):
                    at = (START + timedelta(minutes=30 * step)).isoformat()
                    with Timer() as timer:
                        for start in range(0, meters, MAX_READINGS_PER_BATCH):
                            body = {"readings": [
                                {"meter_no": no, "read_at": at,
                                 "total_kwh": f"{(100_000 + step * (50 + i % 7)) / 100:.2f}"}
                                for i, no in enumerate(numbers[start:start +
                                                               MAX_READINGS_PER_BATCH])]}
                            answer = client.post(f"{base}/readings", json=body)
                            answer.raise_for_status()
                            billing = {r["billing"] for r in answer.json()["results"]}
                            assert billing <= {"started", "charged"}, billing
                    rounds.append((timer.elapsed_s, proc_status_mb(server.pid)))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    print(f"`prepaid serve` memory, PostgreSQL, {meters:,d} meters bound to {meters:,d} "
          f"accounts, readings over HTTP (read models kept by the server, the default; "
          f"load average {load_average()})")
    print("  hot aggregates | VmRSS MB | peak (VmHWM) MB | round s")
    print(f"  {0:14,d} | {started['VmRSS']:8.0f} | {started['VmHWM']:15.0f} |        -")
    for hot, (seconds, status) in zip((meters, 2 * meters), rounds):
        print(f"  {hot:14,d} | {status['VmRSS']:8.0f} | {status['VmHWM']:15.0f} | "
              f"{seconds:8.1f}")
    grown = rounds[-1][1]["VmRSS"] - started["VmRSS"]
    print(f"  per hot aggregate: {grown * 1024 / (2 * meters):.1f} kB over the idle server")


def admin_header(platform: Platform) -> dict[str, str]:
    """A bearer token of a login made for this run (the server reads the same keys)."""
    username, password = "bench-admin", uuid.uuid4().hex
    outcome = platform.ledger.access.register_operator(
        username=username, password_hash=platform.auth.hash_password(password),
        roles=["admin"], site_ids=[], account_ids=[], actor={"kind": "console", "id": "bench"})
    platform.catch_up(outcome.position)
    found = platform.ledger.access.find_operator(username)
    token, _ = platform.auth.login(username, password,
                                   lambda _: (found.id, found.password_hash, found.active,
                                             found.version))
    return {"Authorization": f"Bearer {token}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="top-ups,readings,serve")
    parser.add_argument("--history", default="10,1000,100000")
    parser.add_argument("--top-ups", type=int, default=200)
    parser.add_argument("--meters", default="1000,10000,50000")
    parser.add_argument("--serve-meters", type=int, default=25_000,
                        help="meters (each with an account): twice as many hot aggregates")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if "top-ups" in parts:
        top_ups_table([int(s) for s in args.history.split(",")], args.top_ups)
    if "readings" in parts:
        readings_table([int(s) for s in args.meters.split(",")])
    if "serve" in parts:
        serve_memory(args.serve_meters)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this (benchmark) process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
