"""Ingest and charge a batch of 10,000 readings (one per meter, 10,000 meters) on
PostgreSQL, end to end: stored, charged, projected. Baseline in the same run: inserting
the same rows with one COPY (the physical floor).

Run: .venv/bin/python -m bench.readings_ingest [--meters 10000]
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from bootstrap import Platform
from bench.support import POSTGRES_URL, Timer, pg_settings, scratch_schema
from domain.account import Account
from domain.meter import Meter
from domain.tariff import TariffSpec
from ledger.metering import ReadingInput

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
CHUNK = 1000


def build_site(platform: Platform, meters: int) -> list[str]:
    ledger = platform.ledger
    site = ledger.metering.create_site(name="Bench mall", actor={})
    tariff = ledger.metering.create_tariff(name="TOU", effective_from=START - timedelta(days=1),
                                           actor={},
                                           spec=TariffSpec.from_dict({
                                               "kind": "tou",
                                               "band_prices_1e4": {"sharp": 12000, "peak": 10000,
                                                                   "flat": 6000, "valley": 3000},
                                               "schedule": [{"start": "00:00", "band": "valley"},
                                                            {"start": "08:00", "band": "peak"},
                                                            {"start": "22:00", "band": "valley"}]}))
    numbers = []
    for start in range(0, meters, CHUNK):
        batch = []
        for n in range(start, min(start + CHUNK, meters)):
            account = Account.open(account_id=uuid.uuid4(), name=f"Shop {n}", site_id=None,
                                   unit=None, contact=None, phone=None, area_m2=None,
                                   actor={}, idempotency_key=None, request_fingerprint="bench")
            meter = Meter.register(meter_no=f"{n + 1:012d}", kind="electricity", mode="prepaid",
                                   site_id=site.id, gateway_id=None, address=n % 32 + 1,
                                   profile="ref-prepaid-v1", ct_ratio=1, actor={})
            meter.bind(account.id, {})
            meter.assign_tariff(tariff.id, START - timedelta(days=1), {})
            batch += [account, meter]
            numbers.append(meter.meter_no)
        ledger.save(*batch)
    platform.catch_up()
    return numbers


def cycle(platform: Platform, numbers: list[str], at: datetime, step: int) -> float:
    readings = [ReadingInput(no, at, 100_000 + step * (50 + i % 7)) for i, no in
                enumerate(numbers)]
    cpu_start = time.process_time()
    with Timer() as timer:
        with Timer() as charging:
            ingested = platform.ledger.metering.ingest_readings(readings)
        cpu_charged = time.process_time()
        platform.catch_up()
    cpu_end = time.process_time()
    statuses = {a["billing"] for a in ingested.answers}
    assert statuses <= {"started", "charged"}, statuses
    # CPU of this process (all its threads): steadier than wall time on a shared machine.
    print(f"  (cycle at {at:%H:%M}: stored and charged in {charging.elapsed_s:.2f} s, "
          f"projected in {timer.elapsed_s - charging.elapsed_s:.2f} s; CPU "
          f"{cpu_charged - cpu_start:.2f} s + {cpu_end - cpu_charged:.2f} s)")
    return timer.elapsed_s


def copy_floor(schema: str, numbers: list[str]) -> float:
    with psycopg.connect(POSTGRES_URL) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("CREATE TABLE copy_readings (LIKE meter_readings INCLUDING ALL)")
        conn.commit()
        now = datetime.now(timezone.utc)
        with Timer() as timer:
            with conn.cursor().copy(
                    "COPY copy_readings (meter_id, read_at, total, billing, recorded_at) "
                    "FROM STDIN") as copy:
                for no in numbers:
                    copy.write_row((str(uuid.uuid5(uuid.NAMESPACE_URL, no)), START, 100_000,
                                    "charged", now))
            conn.commit()
    return timer.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--gc", choices=("serving", "default"), default="default",
                        help="serving: the garbage collector tuned as `prepaid serve` tunes it "
                             "(after the site is built)")
    args = parser.parse_args()
    with scratch_schema() as schema:
        platform = Platform(pg_settings(schema))
        try:
            with Timer() as setup:
                numbers = build_site(platform, args.meters)
            if args.gc == "serving":
                from api.app import tune_gc
                tune_gc(platform.settings.gc_thresholds)
            first = cycle(platform, numbers, START, 0)
            cold = cycle(platform, numbers, START + timedelta(minutes=30), 1)
            warm = cycle(platform, numbers, START + timedelta(minutes=60), 2)
            floor = copy_floor(schema, numbers)
        finally:
            platform.close()
    n = args.meters
    print(f"readings batch of {n} (one per meter), PostgreSQL, stored + charged + projected")
    print(f"  (setup: {n} accounts and meters in {setup.elapsed_s:.1f} s; first readings, "
          f"nothing to charge: {first:.2f} s)")
    print(f"  COPY of the same rows (floor)       : {n / floor:9.0f} readings/s ({floor:.2f} s)")
    print(f"  first charged batch, accounts cold  : {n / cold:9.0f} readings/s ({cold:.2f} s)")
    print(f"  steady state (every 30 min), warm   : {n / warm:9.0f} readings/s ({warm:.2f} s)")
    print(f"  ratio warm/COPY                     : {floor / warm:9.3f}x   "
          f"(target: batch charged in < 4 s)")
    print(f"  peak RSS (holding {2 * n} hot aggregates): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
