"""``prepaid serve --workers 2`` with metrics and JSON logs: the workers' counters add up
in one scrape, and the whole scenario's log lines parse and hold no secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import POSTGRES_URL, _drop_schema
from tests.e2e.test_serve import (PREPAID, STARTUP_TIMEOUT_S, create_admin, environment,
                                  free_port, migrate, server_processes)

TOKEN = "e2e-metrics-token-9f8e7d6c5b4a"  # test fixture only
PASSWORD = "correct horse battery staple"  # the e2e admin's, a test fixture


def _count(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prepaid_http_request_duration_seconds_count" and \
                    sample.labels.get("route") == route:
                total += sample.value
    return total


def test_several_workers_add_up_their_metrics_and_log_json(tmp_path):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {"PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema,
           "PREPAID_METRICS_TOKEN": TOKEN, "PREPAID_LOG_FORMAT": "json"}
    log_file = tmp_path / "serve.log"
    try:
        migrate(env, tmp_path)
        create_admin(env, tmp_path)
        port = free_port()
        with open(log_file, "wb") as out:
            process = subprocess.Popen([*PREPAID, "serve", "--port", str(port), "--workers",
                                        "2"], cwd=tmp_path, env=environment(env),
                                       start_new_session=True, stdout=out,
                                       stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                try:
                    if httpx.get(f"{base}/health/live", timeout=1).status_code == 200 and \
                            len(server_processes(process.pid)) == 2:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, \
                    log_file.read_text()
                time.sleep(0.2)
            assert httpx.get(f"{base}/metrics").status_code == 401
            token = httpx.post(f"{base}/api/v1/auth/token",
                               data={"username": "root", "password": PASSWORD}).json()
            bearer = {"Authorization": f"Bearer {token['access_token']}"}
            requests = 12
            for n in range(requests):  # a new connection each: spread over both workers
                with httpx.Client(base_url=base, headers=bearer, timeout=10) as fresh:
                    assert fresh.get("/api/v1/me",
                                     headers={"X-Request-Id": f"e2e-{n}"}).status_code == 200
            scraped = httpx.get(f"{base}/metrics",
                                headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200
            assert _count(scraped.text, "/api/v1/me") == requests
            assert httpx.get(f"{base}/health/ready").status_code == 200
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    finally:
        _drop_schema(schema)
    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    served = [line for line in lines if line.get("route") == "/api/v1/me"]
    assert sorted(line["request_id"] for line in served) == \
        sorted(f"e2e-{n}" for n in range(requests))
    assert all(line["actor"].startswith("operator:") for line in served)
    for secret in (PASSWORD, TOKEN, token["access_token"]):
        assert secret not in text
