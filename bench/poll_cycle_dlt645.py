"""A full polling cycle of 10,000 DL/T 645-2007 meters behind 313 transparent gateways (32
per bus) at 2400 baud, a tenth of the gateways 4G DTUs that call in, readings billed into
the ledger on PostgreSQL.

The simulator runs as its own process (``prepaid simulate``), as it would be other
machines; its buses take each transaction's bytes' time at 2400 baud (11 bits a byte).
Baseline: the physical floor, the serial time of the slowest bus for the frames the
platform sends and the meters answer (five reads a meter: energy with four rates,
voltage, current, power, status word 3).

Run: .venv/bin/python -m bench.poll_cycle_dlt645 [--meters 10000] [--per-bus 32]
                                                 [--inbound-share 0.1]
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

from adapters import dlt645
from bootstrap import Platform
from adapters.serial_link import bus_time_s
from bench.support import Timer, pg_settings, scratch_schema
from domain.account import Account
from domain.meter import Meter
from domain.site import Gateway
from domain.tariff import TariffSpec

BAUD = 2400
PORT_BASE = 23000
DTU_PORT = 22999
FIRST_METER_NO = 700_000_000_001


def start_simulator(outbound: int, inbound: int, per_bus: int,
                    folder: str) -> tuple[subprocess.Popen, list]:
    key_file = Path(folder) / "bench.key"
    key_file.write_text("00112233445566778899AABBCCDDEEFF")  # a fixture value: unused
    layout_file = Path(folder) / "layout.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "simulate", "--meters", "0", "--gateways", "0",
         "--dlt645-gateways", str(outbound), "--dtus", str(inbound),
         "--serial-meters-per-gateway", str(per_bus), "--dtu-target",
         f"127.0.0.1:{DTU_PORT}", "--first-meter-no", str(FIRST_METER_NO),
         "--port-base", str(PORT_BASE), "--control-port", "0",
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
        gateway = Gateway.register(
            site_id=site.id, name=f"GW-{entry['gateway']:03d}", host=entry["host"],
            port=entry["port"], protocol="dlt645-tcp", connect=entry["connect"],
            registration_id=entry["registration_id"], heartbeat=entry["heartbeat"],
            baud=entry["baud"], actor={})
        batch = [gateway]
        for m in entry["meters"]:
            account = Account.open(account_id=uuid.uuid4(), name=m["meter_no"], site_id=None,
                                   unit=None, contact=None, phone=None, area_m2=None,
                                   actor={}, idempotency_key=None, request_fingerprint="b")
            meter = Meter.register(meter_no=m["meter_no"], kind="electricity", mode="prepaid",
                                   site_id=site.id, gateway_id=gateway.id, address=None,
                                   profile="dlt645-2007", ct_ratio=1, actor={})
            meter.bind(account.id, {})
            meter.assign_tariff(tariff.id, now - timedelta(days=1), {})
            batch += [account, meter]
        ledger.save(*batch)
    platform.catch_up()


def floor_s(per_bus: int) -> float:
    """The bytes of one meter's five reads, request and answer, at the bus speed."""
    meter_no = f"{FIRST_METER_NO:012d}"
    sizes = {dlt645.DataId.FORWARD_ACTIVE_BLOCK: [0] * 5, dlt645.DataId.VOLTAGE_A: [0],
             dlt645.DataId.CURRENT_A: [0], dlt645.DataId.ACTIVE_POWER_TOTAL: [0],
             dlt645.DataId.STATUS_WORD_3: [0]}
    per_meter = 0.0
    for data_id, values in sizes.items():
        request = dlt645.read_request(meter_no, data_id)
        answer = dlt645.read_answer(request, values)
        per_meter += bus_time_s(len(dlt645.build(request)) + len(dlt645.build(answer)), BAUD)
    return per_bus * per_meter


def cpu_s(pid: int | None = None) -> float:
    """User and system CPU seconds of a process (this one by default), from /proc."""
    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cycles(platform: Platform, count: int, inbound: int,
                 simulator_pid: int) -> list[tuple[float, object, float, float]]:
    runtime = platform.device_runtime()
    out = []
    try:
        await runtime.start_listener("127.0.0.1", DTU_PORT)
        deadline = time.monotonic() + 60
        while sum(link.connected for link in dict.values(runtime.inbound)) < inbound:
            if time.monotonic() > deadline:
                raise RuntimeError("not every DTU called in")
            await asyncio.sleep(0.2)
        for _ in range(count):
            ours, theirs = cpu_s(), cpu_s(simulator_pid)
            with Timer() as timer:
                report = await runtime.poll()
            out.append((timer.elapsed_s, report, cpu_s() - ours,
                        cpu_s(simulator_pid) - theirs))
            await asyncio.sleep(1)
    finally:
        await runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--per-bus", type=int, default=32)
    parser.add_argument("--inbound-share", type=float, default=0.1)
    args = parser.parse_args()
    gateways = -(-args.meters // args.per_bus)
    inbound = round(gateways * args.inbound_share)
    with tempfile.TemporaryDirectory() as folder, scratch_schema() as schema:
        simulator, layout = start_simulator(gateways - inbound, inbound, args.per_bus, folder)
        try:
            settings = pg_settings(schema, poll_timeout_s=5.0,
                                   gateway_allowed_networks="127.0.0.0/8")
            platform = Platform(settings)
            try:
                with Timer() as setup:
                    build(platform, layout)
                results = asyncio.run(cycles(platform, 2, inbound, simulator.pid))
            finally:
                platform.close()
        finally:
            simulator.terminate()
            simulator.wait(timeout=30)
    floor = floor_s(args.per_bus)
    meters = sum(len(entry["meters"]) for entry in layout)
    print(f"DL/T 645 polling cycle: {meters} meters, {len(layout)} transparent gateways "
          f"({inbound} inbound DTUs), {args.per_bus} per bus, {BAUD} baud, billed on "
          f"PostgreSQL (set-up {setup.elapsed_s:.0f} s)")
    for label, (elapsed, report, ours, theirs) in zip(("first cycle (starting readings)",
                                                       "second cycle (readings charged)"),
                                                      results):
        print(f"  {label:33s}: {elapsed:6.1f} s  ({report.read} read, {report.failed} "
              f"failed; CPU: platform {ours:.1f} s, simulator {theirs:.1f} s)")
    print(f"  slowest bus, serial (floor)      : {floor:6.1f} s")
    print(f"  ratio charged cycle/floor        : {results[1][0] / floor:6.2f}x   "
          f"(target: within 1.25x)")
    print(f"  machine load average (1, 5, 15 min): {os.getloadavg()}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
