"""Payment notifications over HTTP on PostgreSQL: a steady 200 per second for 60 seconds,
against the same server answering a trivial endpoint at the same rate in the same run.

The server is ``prepaid serve`` in its own process. Keys are made for this run only.

Run: .venv/bin/python -m bench.notify_latency [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from adapters.platform import Platform
from bench.support import POSTGRES_URL, pg_settings, scratch_schema
from domain.account import Account
from domain.payment import PaymentOrder
from tests.payment_fakes import Keys, wechat_notification, wechat_paid

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(platform: Platform, count: int) -> list[tuple[str, int]]:
    ledger = platform.ledger
    account = Account.open(account_id=uuid.uuid4(), name="Bench shop", site_id=None,
                           unit=None, contact=None, phone=None, area_m2=None, actor={},
                           idempotency_key=None, request_fingerprint="bench")
    ledger.save(account)
    now = datetime.now(timezone.utc)
    orders = []
    for start in range(0, count, 1000):
        batch = []
        for n in range(start, min(start + 1000, count)):
            no = f"B{uuid.uuid4().hex[:31].upper()}"
            batch.append(PaymentOrder.create(
                out_trade_no=no, account_id=account.id, wallet="electricity",
                amount_fen=100 + n % 900, channel="wechat", scene="native",
                payer_openid=None, created_at=now, expires_at=now + timedelta(hours=2),
                provider_reply={}, actor={}))
            orders.append((no, 100 + n % 900))
        ledger.save(*batch)
    return orders


async def steady(url: str, requests: list[tuple[bytes, dict]] | None, rate: int,
                 seconds: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    total = rate * seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as c:
        async def one(index: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                if requests is None:
                    response = await c.get(url)
                else:
                    body, headers = requests[index]
                    response = await c.post(url, content=body, headers=headers)
                if response.status_code >= 300:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        for index in range(total):
            delay = begin + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return latencies, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    args = parser.parse_args()
    keys = Keys.generate()
    with tempfile.TemporaryDirectory() as folder, scratch_schema() as schema:
        env_keys = keys.write(Path(folder))
        os.environ.update(env_keys)
        platform = Platform(pg_settings(schema))
        try:
            orders = setup(platform, args.rate * args.seconds)
        finally:
            platform.close()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port),
             "--workers", str(args.workers)], cwd=folder,
            env={**os.environ, **env_keys, "PYTHONPATH": str(ROOT),
                 "PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema,
                 "PREPAID_DEVICES_IN_PROCESS": "false"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            notifications = [wechat_notification(keys, wechat_paid(no, fen))
                             for no, fen in orders]
            trivial, trivial_errors = asyncio.run(steady(f"{base}/health", None, args.rate,
                                                         args.seconds))
            latencies, errors = asyncio.run(steady(
                f"{base}/api/v1/payments/wechat/notify", notifications, args.rate,
                args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"payment notifications over HTTP, PostgreSQL, {args.rate}/s for {args.seconds} s "
          f"({len(latencies)} sent, {args.workers} API process(es))")
    print(f"  trivial endpoint  : p50 {percentile(trivial, .5):6.1f} ms  "
          f"p99 {percentile(trivial, .99):6.1f} ms  errors {trivial_errors}")
    print(f"  notifications     : p50 {percentile(latencies, .5):6.1f} ms  "
          f"p99 {percentile(latencies, .99):6.1f} ms  errors {errors}")
    print(f"  ratio p99 notify/trivial: {percentile(latencies, .99) / percentile(trivial, .99):6.1f}x"
          f"   (target: p99 < 100 ms, zero errors)")


if __name__ == "__main__":
    main()
