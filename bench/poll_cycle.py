"""A full polling cycle of 10,000 simulated meters behind 313 gateways (32 per bus) at the
default bus speed, readings billed into the ledger on PostgreSQL.

The simulator runs as its own process (``prepaid simulate``), as it would be another
machine. Baseline in the same run: the physical floor, the serial time of the slowest
bus (its meters' transactions one after another at the bus speed).

Run: .venv/bin/python -m bench.poll_cycle [--meters 10000] [--per-bus 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from adapters.profiles import REF_PREPAID_V1
from adapters.simulator import DEFAULT_BAUD, bus_time_s
from bootstrap import Platform
from bench.support import Timer, pg_settings, scratch_schema
from domain.account import Account
from domain.meter import Meter
from domain.site import Gateway
from domain.tariff import TariffSpec

MASTER_KEY_HEX = "00112233445566778899AABBCCDDEEFF"  # benchmark fixture key, not a real one
PORT_BASE = 21000


def start_simulator(meters: int, per_bus: int, folder: str) -> tuple[subprocess.Popen, list]:
    key_file = Path(folder) / "bench.key"
    key_file.write_text(MASTER_KEY_HEX)
    layout_file = Path(folder) / "layout.json"
    gateways = -(-meters // per_bus)
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "simulate", "--meters", str(meters),
         "--gateways", str(gateways), "--meters-per-gateway", str(per_bus),
         "--port-base", str(PORT_BASE), "--baud", str(DEFAULT_BAUD), "--control-port", "0",
         "--layout-file", str(layout_file), "--master-key-file", str(key_file)],
        env={**os.environ}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not layout_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.2)
    return process, json.loads(layout_file.read_text())


def build(platform: Platform, layout: list[dict]) -> None:
    ledger = platform.ledger
    now = ledger.clock()
    site = ledger.metering.create_site(name="Bench mall", actor={})
    tariff = ledger.metering.create_tariff(name="Flat", actor={},
                                           effective_from=now - timedelta(days=1),
                                           spec=TariffSpec.from_dict({"kind": "flat",
                                                                      "price_1e4": 8000}))
    for entry in layout:
        gateway = Gateway.register(site_id=site.id, name=f"GW-{entry['gateway']:03d}",
                                   host=entry["host"], port=entry["port"],
                                   protocol="modbus-tcp", actor={})
        batch = [gateway]
        for m in entry["meters"]:
            account = Account.open(account_id=uuid.uuid4(), name=m["meter_no"], site_id=None,
                                   unit=None, contact=None, phone=None, area_m2=None,
                                   actor={}, idempotency_key=None, request_fingerprint="b")
            meter = Meter.register(meter_no=m["meter_no"], kind="electricity", mode="prepaid",
                                   site_id=site.id, gateway_id=gateway.id,
                                   address=m["address"], profile="ref-prepaid-v1",
                                   ct_ratio=1, actor={})
            meter.bind(account.id, {})
            meter.assign_tariff(tariff.id, now - timedelta(days=1), {})
            batch += [account, meter]
        ledger.save(*batch)
    platform.catch_up()


def floor_s(per_bus: int) -> float:
    per_meter = sum(bus_time_s(8, 5 + 2 * count, DEFAULT_BAUD)
                    for _, count in REF_PREPAID_V1.blocks)
    return per_bus * per_meter


async def cycles(platform: Platform, count: int) -> list[tuple[float, object]]:
    runtime = platform.device_runtime()
    out = []
    try:
        for _ in range(count):
            with Timer() as timer:
                report = await runtime.poll()
            out.append((timer.elapsed_s, report))
            await asyncio.sleep(1)
    finally:
        await runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--per-bus", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, scratch_schema() as schema:
        simulator, layout = start_simulator(args.meters, args.per_bus, folder)
        try:
            settings = pg_settings(schema, poll_timeout_s=5.0,
                                   gateway_allowed_networks="127.0.0.0/8")
            platform = Platform(settings)
            try:
                build(platform, layout)
                results = asyncio.run(cycles(platform, 2))
            finally:
                platform.close()
        finally:
            simulator.terminate()
            simulator.wait(timeout=30)
    floor = floor_s(args.per_bus)
    print(f"polling cycle: {args.meters} meters, {len(layout)} gateways ({args.per_bus} per "
          f"bus), {DEFAULT_BAUD} baud, billed on PostgreSQL")
    for label, (elapsed, report) in zip(("first cycle (starting readings)",
                                         "second cycle (readings charged)"), results):
        print(f"  {label:33s}: {elapsed:6.1f} s  ({report.read} read, {report.failed} failed)")
    print(f"  slowest bus, serial (floor)      : {floor:6.1f} s")
    print(f"  ratio charged cycle/floor        : {results[1][0] / floor:6.2f}x   "
          f"(target: cycle < 60 s)")


if __name__ == "__main__":
    main()
