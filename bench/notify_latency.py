"""Payment notifications over HTTP on PostgreSQL: a steady 200 per second for 60 seconds,
against the same server answering a trivial endpoint at the same rate in the same run.

The server is ``prepaid serve`` in its own process. Keys are made for this run only.

Run: .venv/bin/python -m bench.notify_latency [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg

from bootstrap import Platform
from bench.http_load import request_bytes, run_open_loop
from bench.support import POSTGRES_URL, pg_settings, scratch_schema
from domain.account import Account
from domain.payment import PaymentOrder
from tests.payment_fakes import Keys, wechat_notification, wechat_paid

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(platform: Platform, count: int, shops: int = 1) -> list[tuple[str, int]]:
    """``count`` unpaid WeChat Pay orders, spread at random over ``shops`` accounts."""
    ledger = platform.ledger
    accounts = [Account.open(account_id=uuid.uuid4(), name=f"Bench shop {n}", site_id=None,
                             unit=None, contact=None, phone=None, area_m2=None, actor={},
                             idempotency_key=None, request_fingerprint="bench")
                for n in range(shops)]
    for start in range(0, shops, 1000):
        ledger.save(*accounts[start:start + 1000])
    pick = random.Random(7)
    now = datetime.now(timezone.utc)
    orders = []
    for start in range(0, count, 1000):
        batch = []
        for n in range(start, min(start + 1000, count)):
            no = f"B{uuid.uuid4().hex[:31].upper()}"
            batch.append(PaymentOrder.create(
                out_trade_no=no, account_id=pick.choice(accounts).id, wallet="electricity",
                amount_fen=100 + n % 900, channel="wechat", scene="native",
                payer_openid=None, created_at=now, expires_at=now + timedelta(hours=2),
                provider_reply={}, actor={}))
            orders.append((no, 100 + n % 900))
        ledger.save(*batch)
    return orders


def cpu_seconds(group: int) -> float:
    """User + system CPU time so far of every process in a process group (the server and
    its worker processes)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # field 5 of stat: the process group
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time so far of the local PostgreSQL server's processes (0 if not visible)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.split(" (", 1)[1].startswith("postgres)"):
            ticks += sum(int(v) for v in stat.rsplit(")", 1)[1].split()[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    parser.add_argument("--shops", type=int, default=1000,
                        help="accounts the orders are spread over")
    parser.add_argument("--projector", choices=("process", "in-process"), default="process",
                        help="read models kept by `prepaid projections run` beside the API "
                             "process (the PostgreSQL deployment), or by the API process")
    parser.add_argument("--connections", type=int, default=64,
                        help="keep-alive connections of the load client")
    parser.add_argument("--py-spy", nargs=2, metavar=("PY_SPY", "FILE"),
                        help="record the API process while it is notified, with this py-spy "
                             "binary, into FILE (collapsed stacks, samples of the thread holding "
                             "the interpreter lock)")
    args = parser.parse_args()
    keys = Keys.generate()
    total = args.rate * args.seconds
    with tempfile.TemporaryDirectory() as folder, scratch_schema() as schema:
        env_keys = keys.write(Path(folder))
        os.environ.update(env_keys)
        platform = Platform(pg_settings(schema))
        try:
            orders = setup(platform, total, args.shops)
        finally:
            platform.close()
        port = free_port()
        env = {**os.environ, **env_keys, "PYTHONPATH": str(ROOT),
               "PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema,
               "PREPAID_DEVICES_IN_PROCESS": "false",
               "PREPAID_PROJECTIONS_IN_PROCESS": str(args.projector == "in-process").lower()}
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port),
             "--workers", str(args.workers)], cwd=folder, env=env,
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        projector = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "projections", "run"], cwd=folder, env=env,
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) \
            if args.projector == "process" else None
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start")
            host = f"127.0.0.1:{port}"
            health = request_bytes("GET", "/health", host)
            print("server up; trivial endpoint first", file=sys.stderr, flush=True)
            cpu_before = cpu_seconds(server.pid)
            trivial = asyncio.run(run_open_loop("127.0.0.1", port, [health] * total,
                                                args.rate, args.connections))
            cpu_trivial = cpu_seconds(server.pid) - cpu_before
            # Built after the trivial run so that every timestamp is fresh (300 s window).
            notifications = [request_bytes("POST", "/api/v1/payments/wechat/notify", host,
                                           *wechat_notification(keys, wechat_paid(no, fen)))
                             for no, fen in orders]
            print("sending notifications", file=sys.stderr, flush=True)
            cpu_before, pg_before = cpu_seconds(server.pid), postgres_cpu_seconds()
            projector_before = cpu_seconds(projector.pid) if projector else 0.0
            spy = subprocess.Popen(
                [args.py_spy[0], "record", "--gil", "--nonblocking", "-r", "100",
                 "--format", "raw", "-o", args.py_spy[1], "--pid", str(server.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if args.py_spy else None
            notified = asyncio.run(run_open_loop("127.0.0.1", port, notifications, args.rate,
                                                 args.connections))
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
                spy.wait(timeout=60)
            cpu_notify = cpu_seconds(server.pid) - cpu_before
            pg_notify = postgres_cpu_seconds() - pg_before
            projector_cpu = (cpu_seconds(projector.pid) - projector_before) if projector \
                else 0.0
            projected_after = wait_projected(schema)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            if projector is not None:
                os.killpg(projector.pid, signal.SIGTERM)
                projector.wait(timeout=30)
        credited = count_credited(schema)
    print(f"payment notifications over HTTP, PostgreSQL, {args.rate}/s for {args.seconds} s "
          f"({notified.sent} sent over {args.connections} connections, "
          f"{args.workers} API process(es), orders of {args.shops} shops)")
    for name, result, cpu in (("trivial endpoint", trivial, cpu_trivial),
                              ("notifications", notified, cpu_notify)):
        print(f"  {name:<17}: {result.throughput:6.1f}/s  p50 {result.percentile_ms(.5):7.1f} ms"
              f"  p99 {result.percentile_ms(.99):7.1f} ms  max {result.percentile_ms(1):7.1f} ms"
              f"  errors {result.errors}  server CPU {cpu / result.elapsed_s * 100:3.0f}%")
    print(f"  PostgreSQL CPU while notified: {pg_notify / notified.elapsed_s * 100:3.0f}% of one "
          f"core; server CPU per notification: {cpu_notify / notified.sent * 1000:.2f} ms")
    if projector is not None:
        print(f"  projector process CPU: {projector_cpu / notified.elapsed_s * 100:3.0f}% of one "
              f"core")
    print(f"  read models current {projected_after:.1f} s after the last answer")
    print(f"  credited orders  : {credited} of {total}")
    print(f"  ratio p99 notify/trivial: "
          f"{notified.percentile_ms(.99) / trivial.percentile_ms(.99):6.1f}x"
          f"   (target: p99 < 100 ms, zero errors)")


def wait_projected(schema: str, limit_s: float = 60.0) -> float:
    """Seconds until the read models have applied the whole log."""
    started = time.perf_counter()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        while time.perf_counter() - started < limit_s:
            last = conn.execute(f'SELECT max(notification_id) FROM "{schema}".ledger_events'
                                ).fetchone()[0]
            position = conn.execute(f'SELECT position FROM "{schema}".projection_positions '
                                    "WHERE name = 'read-models'").fetchone()
            position = position[0] if position else None
            if position is not None and position >= last:
                break
            time.sleep(0.05)
    return time.perf_counter() - started


def count_credited(schema: str) -> int:
    with psycopg.connect(POSTGRES_URL) as conn:
        return conn.execute(
            f'SELECT count(*) FROM "{schema}".ledger_events WHERE topic LIKE %s',
            ("%PaymentOrder.PaidAndCredited%",)).fetchone()[0]


if __name__ == "__main__":
    main()
