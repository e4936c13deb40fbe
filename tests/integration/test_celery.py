"""The production path: a real Celery worker on the real Redis broker polls a gateway of
the simulator over Modbus TCP and carries out a trip; PostgreSQL holds the events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery

from bootstrap import Platform
from domain.tariff import TariffSpec
from tests.integration.simulation import TEST_MASTER_KEY, running_simulation

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("PREPAID_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
TASK_TIMEOUT_S = 60


@pytest.fixture
def world(make_settings, tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(TEST_MASTER_KEY.hex())  # a test fixture key
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings("postgres", master_key_file=str(key_file), broker_url=BROKER,
                             celery_queue=queue, poll_timeout_s=0.5,
                             gateway_allowed_networks="127.0.0.0/8")  # the simulator
    with running_simulation(meters=2, gateways=1, speed=0.0) as sim:
        platform = Platform(settings)
        ledger = platform.ledger
        site = ledger.metering.create_site(name="Mall", actor={})
        gateway = ledger.metering.register_gateway(site_id=site.id, name="GW", host="127.0.0.1",
                                                   port=sim.simulation.gateways[0].port,
                                                   protocol="modbus-tcp", actor={})
        tariff = ledger.metering.create_tariff(name="t", actor={}, spec=TariffSpec.from_dict(
            {"kind": "flat", "price_1e4": 10_000}),
            effective_from=ledger.clock() - timedelta(days=1))
        account = uuid.UUID(ledger.accounts.open_account(name="Shop",
                                                         actor={}).result["account_id"])
        sim_meter = sim.simulation.gateways[0].meters[1]
        meter = ledger.metering.register_meter(meter_no=sim_meter.meter_no, kind="electricity",
                                               mode="prepaid", gateway_id=gateway.id, address=1,
                                               profile="ref-prepaid-v1", account_id=account,
                                               tariff_id=tariff.id,
                                               tariff_from=ledger.clock() - timedelta(days=1),
                                               actor={})
        platform.catch_up()
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "PREPAID_DATABASE_URL": settings.database_url,
               "PREPAID_DATABASE_SCHEMA": settings.database_schema,
               "PREPAID_MASTER_KEY_FILE": str(key_file), "PREPAID_BROKER_URL": BROKER,
               "PREPAID_CELERY_QUEUE": queue, "PREPAID_POLL_TIMEOUT_S": "0.5",
               "PREPAID_GATEWAY_ALLOWED_NETWORKS": "127.0.0.0/8"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "adapters.celery_app", "worker",
             "--pool", "solo", "--loglevel", "WARNING", "-Q",
             ",".join([queue] + [f"{queue}.gateways.{n}" for n in range(4)])],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        client = Celery("test-client", broker=BROKER, backend=BROKER)
        client.conf.task_default_queue = queue
        try:
            yield {"platform": platform, "ledger": ledger, "gateway": gateway, "meter": meter,
                   "sim_meter": sim_meter, "client": client, "queue": queue,
                   "worker": worker, "account": account}
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            platform.close()


def send(world, name, *args, queue=None):
    result = world["client"].send_task(name, args=args, queue=queue or world["queue"])
    try:
        return result.get(timeout=TASK_TIMEOUT_S)
    except Exception:
        if world["worker"].poll() is not None:
            print(world["worker"].stdout.read().decode())
        raise


def test_a_real_worker_polls_through_the_broker_and_trips_the_meter(world):
    from adapters.celery_app import gateway_queue

    gateway_id = str(world["gateway"].id)
    queue = f"{world['queue']}.gateways.{uuid.UUID(gateway_id).int % 4}"
    assert gateway_queue(gateway_id).endswith(queue.split(".", 1)[1])
    first = send(world, "prepaid.poll_gateway", gateway_id, queue=queue)
    assert first == {"gateways": 1, "meters": 1, "read": 1, "failed": 0, "went_offline": 0,
                     "gateways_down": 0}
    world["sim_meter"].energy_wh += 2000  # 2 kWh at 1 yuan: the shop has nothing
    time.sleep(1)
    send(world, "prepaid.poll_gateway", gateway_id, queue=queue)
    ledger = world["ledger"]
    assert ledger.accounts.get_account(world["account"]).balance_fen("electricity") == -200
    send(world, "prepaid.execute_commands")  # the policy issues the trip, then it is sent
    assert world["sim_meter"].relay == 1
    world["platform"].catch_up()
    commands = world["platform"].device_queries.commands_of_meter(str(world["meter"].id))
    assert [(c["action"], c["status"]) for c in commands] == [("trip", "acknowledged")]
