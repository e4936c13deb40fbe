"""Running the platform for years: metrics, logs, health, status, backups, the move to
PostgreSQL and the collection report."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from pydantic import SecretStr
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from adapters.backup import CopyRefused, backup, restore
from adapters.logs import configure_logging
from bootstrap import Platform
from api.app import create_app
from domain.tariff import TariffSpec
from ledger.chain import verify_chain
from ledger.config import Settings
from ledger.metering import ReadingInput
from projections.accounts.tables import transactions
from tests.conftest import ADMIN_PASSWORD, POSTGRES_URL, FrozenClock, login
from tests.integration.test_devices import poll, sim, site, work  # noqa: F401 (fixtures)

API = "/api/v1"
METRICS_TOKEN = "test-metrics-token-0123456789"  # test fixture only


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples, metric: str, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def give_up_a_command(site) -> None:
    """The gateway stops answering; a trip is tried until it is given up."""
    site["run"](site["runtime"].close())
    site["sim"].run(site["sim"].simulation.set_gateway_offline(0, True))
    site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test", actor={})
    for _ in range(12):
        work(site)
        site["clock"].advance(minutes=11)
    commands = site["platform"].device_queries.commands_of_meter(str(site["meter"].id))
    assert commands[0]["status"] == "given_up"


def test_metrics_after_a_known_workload(site):
    platform = site["platform"]
    platform.settings.metrics_token = SecretStr(METRICS_TOKEN)
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        committers = platform.ledger.committers
        saved = sum(k.commands_saved for k in committers), sum(k.batches_saved for k in committers)
        before = scrape(c)
        poll(site)
        site["sim_meter"].offline = True
        for _ in range(3):
            poll(site)
        give_up_a_command(site)
        account = str(site["account"])
        for n in range(3):
            answer = c.post(f"{API}/accounts/{account}/top-ups",
                            json={"amount": "1.00", "channel": "cash"},
                            headers={"Idempotency-Key": f"metrics-{n}"})
            assert answer.status_code in (200, 201), answer.text
        for _ in range(2):
            assert c.get(f"{API}/accounts/{account}").status_code == 200
        after = scrape(c)
        saved = (sum(k.commands_saved for k in committers) - saved[0],
                 sum(k.batches_saved for k in committers) - saved[1])

        # Refused without the token, and absent when none is configured.
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        platform.settings.metrics_token = None
        assert c.get("/metrics", headers={
            "Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 404

    def delta(metric, **labels):
        return value(after, metric, **labels) - value(before, metric, **labels)

    route = dict(method="GET", route="/api/v1/accounts/{account_id}", status="200")
    assert delta("prepaid_http_request_duration_seconds_count", **route) == 2
    # Every command the committer stored (the three top-ups among them), in its batches.
    assert delta("prepaid_group_commit_commands_total") == saved[0] >= 3
    assert delta("prepaid_group_commit_batches_total") == saved[1] >= 1
    assert delta("prepaid_group_commit_batch_size_sum") == saved[0]
    assert delta("prepaid_group_commit_save_seconds_count") == \
        delta("prepaid_group_commit_batches_total")
    assert value(after, "prepaid_device_commands_given_up") == 1
    assert value(after, "prepaid_device_commands", status="given_up") == 1
    assert value(after, "prepaid_meters", state="offline") == 1
    assert value(after, "prepaid_meters", state="online") == 0
    assert delta("prepaid_poll_cycle_seconds_count", site_id="all") == 4
    assert value(after, "prepaid_projection_lag_events", name="read-models",
                 kind="read_model") == 0
    gateway = str(site["meter"].gateway_id)
    assert delta("prepaid_gateway_reads_total", gateway_id=gateway, result="answered") == 1
    assert delta("prepaid_gateway_reads_total", gateway_id=gateway, result="failed") == 3
    assert value(after, "prepaid_gateway_read_success_ratio", gateway_id=gateway,
                 gateway="GW0") == 0


def test_json_logs_carry_the_request_id_and_no_secret(site):
    from tests.integration.simulation import TEST_MASTER_KEY

    platform = site["platform"]
    stream = io.StringIO()
    configure_logging("json", level=logging.DEBUG, stream=stream)
    try:
        # Device work with the master key: polls, a secure relay write, a given-up command.
        poll(site)
        site["ledger"].devices.command_meter(site["meter"].id, action="trip", reason="test",
                                             actor={})
        work(site)
        give_up_a_command(site)
        with TestClient(create_app(platform, background=False)) as c:
            headers = login(platform)
            token = headers["Authorization"].split()[1]
            c.headers.update(headers)
            key = c.post(f"{API}/api-keys", json={"name": "meter-reader",
                                                  "roles": ["auditor"]})
            assert key.status_code == 201, key.text
            secret = key.json()["key"]
            assert c.post(f"{API}/auth/token", data={"username": "test-admin",
                                                      "password": "wrong password!"},
                          headers={"X-Request-Id": "req-login-1"}).status_code == 401
            c.post(f"{API}/auth/token", data={"username": "test-admin",
                                              "password": ADMIN_PASSWORD})
            c.get(f"{API}/accounts", headers={"X-API-Key": secret})
            c.get(f"{API}/accounts", headers={"X-Request-Id": "req-list-2"})
    finally:
        configure_logging("text")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line)
                         for line in lines)
    listed = [line for line in lines if line.get("request_id") == "req-list-2"]
    assert listed and listed[-1]["route"] == "/api/v1/accounts" and \
        listed[-1]["status"] == 200 and listed[-1]["actor"].startswith("operator:") and \
        "duration_ms" in listed[-1]
    # A line written inside the request (the refused login) carries its request id.
    refused = [line for line in lines if line.get("request_id") == "req-login-1"]
    assert {line["logger"] for line in refused} == {"adapters.auth", "prepaid.access"}
    assert [line["status"] for line in refused if "status" in line] == [401]
    text = stream.getvalue()
    master = TEST_MASTER_KEY.hex()
    for secret_text in (ADMIN_PASSWORD, "wrong password!", token, secret, master,
                        master.upper(), repr(TEST_MASTER_KEY)[2:-1]):
        assert secret_text not in text


def _topping_up(platform, accounts, stop, acknowledged, lock):
    n = 0
    while not stop.is_set():
        account = accounts[n % len(accounts)]
        outcome = platform.ledger.accounts.top_up(account, amount_fen=100, channel="cash", actor={},
                                                  idempotency_key=f"{threading.get_ident()}-{n}")
        with lock:
            acknowledged.append(outcome.result["transaction_id"])
        n += 1


def test_backup_during_top_ups_restores_every_acknowledged_one(backend, make_settings,
                                                               tmp_path):
    source = make_settings(backend)
    platform = Platform(source)
    try:
        accounts = [uuid.UUID(platform.ledger.accounts.open_account(name=f"Shop {n}", actor={})
                              .result["account_id"]) for n in range(5)]
        stop, lock, acknowledged = threading.Event(), threading.Lock(), []
        writers = [threading.Thread(target=_topping_up,
                                    args=(platform, accounts, stop, acknowledged, lock))
                   for _ in range(3)]
        for writer in writers:
            writer.start()
        while len(acknowledged) < 50:
            threading.Event().wait(0.01)
        with lock:
            before = list(acknowledged)
        path = str(tmp_path / "backup.db")
        made = backup(source, path)
        stop.set()
        for writer in writers:
            writer.join()
        assert made.events > 0
    finally:
        platform.close()
    with pytest.raises(CopyRefused):
        backup(source, path)  # never over an existing file

    target = Settings(database_url=f"sqlite:///{tmp_path}/restored.db", auto_migrate=True,
                      argon2_time_cost=1, argon2_memory_kib=1024)
    report = restore(path, target)
    assert all(report.checks.values()), report.checks
    restored = Platform(target)
    try:
        assert verify_chain(restored.ledger.recorder)["ok"]
        with restored.engines.reader.connect() as conn:
            present = set(conn.execute(select(transactions.c.id).where(
                transactions.c.kind == "top_up")).scalars())
        assert set(before) <= present
        for account in accounts:
            balance = restored.ledger.accounts.get_account(account).balance_fen("electricity")
            with restored.engines.reader.connect() as conn:
                count = len(conn.execute(select(transactions.c.id).where(
                    transactions.c.account_id == str(account),
                    transactions.c.kind == "top_up")).all())
            assert balance == 100 * count
    finally:
        restored.close()
    with pytest.raises(CopyRefused):
        restore(path, target)  # only into an empty database


def _a_month(platform: Platform, clock: FrozenClock, shops: int = 8) -> list[uuid.UUID]:
    ledger = platform.ledger
    start = datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc)
    clock.now = start + timedelta(days=30, hours=12)
    site = ledger.metering.create_site(name="Mall", actor={})
    tariff = ledger.metering.create_tariff(name="Flat", effective_from=start - timedelta(days=1),
                                           actor={}, spec=TariffSpec.from_dict({"kind": "flat",
                                                                                "price_1e4": 9000}))
    accounts, numbers = [], []
    for n in range(shops):
        account = uuid.UUID(ledger.accounts.open_account(name=f"Shop {n}", actor={})
                            .result["account_id"])
        ledger.accounts.top_up(account, amount_fen=2000 if n % 4 == 0 else 50000, channel="cash",
                               actor={}, effective_at=start + timedelta(hours=1))
        meter = ledger.metering.register_meter(meter_no=f"{n + 1:012d}", kind="electricity",
                                               mode="prepaid", gateway_id=None, address=n + 1,
                                               profile="ref-prepaid-v1", account_id=account,
                                               tariff_id=tariff.id, tariff_from=start,
                                               site_id=site.id, actor={})
        accounts.append(account)
        numbers.append(meter.meter_no)
    for day in range(31):
        when = start + timedelta(days=day)
        ledger.metering.ingest_readings([ReadingInput(no, when, day * (300 + i * 7))
                                         for i, no in enumerate(numbers)])
    ledger.accounts.refund(accounts[1], amount_fen=500, channel="cash", actor={})
    ledger.accounts.gift(accounts[2], amount_fen=800, reason="opening offer", actor={})
    sale = ledger.accounts.top_up(accounts[3], amount_fen=1200, channel="wechat", actor={})
    ledger.accounts.reverse(uuid.UUID(sale.result["transaction_id"]), actor={}, reason="wrong shop")
    platform.enforce()
    platform.catch_up()
    return accounts


def _answers(client: TestClient, accounts) -> dict:
    out = {"trial": client.get(f"{API}/ledger/trial-balance").json(),
           "energy": client.get(f"{API}/reports/energy",
                                params={"group_by": "account", "period": "month"}).json(),
           "periods": client.get(f"{API}/reports/account-periods",
                                 params={"month": "2026-03"}).json()}
    for account in accounts:
        out[f"balance {account}"] = client.get(f"{API}/accounts/{account}").json()
        out[f"statement {account}"] = client.get(
            f"{API}/accounts/{account}/statement",
            params={"wallet": "electricity"}).json()
    return out


def test_db_copy_from_sqlite_to_postgres_answers_the_same(make_settings, tmp_path,
                                                          monkeypatch, capsys):
    from api.cli import main

    clock = FrozenClock()
    source = make_settings("sqlite")
    platform = Platform(source, clock=clock)
    try:
        accounts = _a_month(platform, clock)
        with TestClient(create_app(platform, background=False),
                        headers=login(platform)) as c:
            original = _answers(c, accounts)
            key = c.post(f"{API}/api-keys", json={"name": "reader", "roles": ["auditor"]})
            assert key.status_code == 201, key.text
            api_key, token = key.json()["key"], c.headers["Authorization"]
    finally:
        platform.close()

    schema = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PREPAID_DATABASE_URL", source.database_url)
    try:
        assert main(["db", "copy", "--to", POSTGRES_URL, "--schema", schema]) == 0
        said = capsys.readouterr().out
        assert "verified" in said
        target = Settings(database_url=POSTGRES_URL, database_schema=schema,
                          postgres_pool_size=2, argon2_time_cost=1, argon2_memory_kib=1024)
        copy = Platform(target, clock=clock)
        try:
            # The operators travelled with the log: the same login works on the copy.
            with TestClient(create_app(copy, background=False),
                            headers=login(copy)) as c:
                assert _answers(c, accounts) == original
                # The signing secret travelled too: a token from the original still opens,
                # and so does the API key issued there.
                assert c.get(f"{API}/me", headers={"Authorization": token}).status_code == 200
                keyed = c.get(f"{API}/ledger/trial-balance",
                              headers={"Authorization": "", "X-API-Key": api_key})
                assert keyed.status_code == 200 and keyed.json() == original["trial"]
        finally:
            copy.close()
        # A second copy into the same (no longer empty) database is refused.
        assert main(["db", "copy", "--to", POSTGRES_URL, "--schema", schema]) == 2
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_status_is_non_zero_with_an_offline_gateway(site, monkeypatch, capsys):
    from api.cli import main

    settings = site["platform"].settings
    monkeypatch.setenv("PREPAID_DATABASE_URL", settings.database_url)
    if settings.database_schema:
        monkeypatch.setenv("PREPAID_DATABASE_SCHEMA", settings.database_schema)
    site["clock"].now = datetime.now(timezone.utc)  # status compares polls with the time
    poll(site)
    assert main(["status"]) == 0, capsys.readouterr().out
    assert "all well" in capsys.readouterr().out
    site["sim_meter"].offline = True
    for _ in range(3):
        poll(site)
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "gateway GW0 is offline" in out and site["sim_meter"].meter_no in out


def test_ready_turns_unready_when_the_database_stops_and_back():
    role, schema = f"r_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
    url = POSTGRES_URL.replace("postgres@", f"{role}@", 1)
    try:
        admin.execute(f'GRANT CREATE ON DATABASE test TO "{role}"')
        settings = Settings(database_url=url, database_schema=schema, auto_migrate=True,
                            postgres_pool_size=2)
        platform = Platform(settings)
        try:
            with TestClient(create_app(platform, background=False)) as c:
                assert c.get("/health/ready").status_code == 200
                assert c.get("/health/ready").json()["status"] == "ready"
                # The database stops taking this platform: no logins, sessions ended.
                admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE usename = %s", (role,))
                down = c.get("/health/ready")
                assert down.status_code == 503
                assert down.json()["checks"]["database"]["ok"] is False
                assert c.get("/health/live").status_code == 200
                admin.execute(f'ALTER ROLE "{role}" LOGIN')
                assert c.get("/health/ready").status_code == 200
        finally:
            platform.close()
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE usename = %s", (role,))
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'REVOKE CREATE ON DATABASE test FROM "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_ready_reports_read_models_behind(platform, anonymous):
    platform.settings.ready_max_lag_events = 0
    platform.ledger.accounts.open_account(name="Shop", actor={})  # written, not yet projected
    answer = anonymous.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["read_models"]["ok"] is False
    platform.catch_up()
    assert anonymous.get("/health/ready").status_code == 200


def test_collection_report_per_gateway_and_day(site):
    platform = site["platform"]
    poll(site)
    site["sim_meter"].offline = True
    poll(site)
    poll(site)
    site["sim_meter"].offline = False
    poll(site)
    day = site["clock"].now.astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date().isoformat()
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        answer = c.get(f"{API}/reports/collection", params={"from": day, "to": day})
        assert answer.status_code == 200, answer.text
        rows = [r for r in answer.json()["items"] if r["gateway"] == "GW0"]
        assert len(rows) == 1
        row = rows[0]
        assert (row["polls"], row["meter_polls"], row["answered"]) == (4, 4, 2)
        assert row["success_rate"] == "0.5000"
        assert row["longest_gap_s"] == 90 * 60
        csv = c.get(f"{API}/reports/collection", params={"from": day, "to": day,
                                                          "format": "csv"})
        assert csv.status_code == 200 and "success_rate" in csv.text.splitlines()[0]
        xlsx = c.get(f"{API}/reports/collection", params={"from": day, "to": day,
                                                           "format": "xlsx"})
        assert xlsx.content[:2] == b"PK"
        assert c.get(f"{API}/reports/collection", params={"from": day}).status_code == 422


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    from adapters.progress import progress

    plain = io.StringIO()
    with progress("copying events", 3000, stream=plain, every_s=0) as step:
        for _ in range(3):
            step(1000)
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("copying events: 1000/3000 (")
    assert lines[-1].startswith("copying events: 3000/3000 (") and lines[-1].endswith("done")
    terminal = _Terminal()
    with progress("copying events", 3000, stream=terminal) as step:
        step(3000)
    shown = terminal.getvalue()
    assert "\x1b[" in shown and "3000/3000" in shown and "━" in shown


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_meter_import_and_rebuild_show_progress(platform, monkeypatch, capsys, tmp_path):
    from api.cli import main
    from tests.integration.test_meter_import import mall_rows, sheet

    site = platform.ledger.metering.create_site(name="Mall", actor={})
    account = platform.ledger.accounts.open_account(name="Shop", actor={}).result["account_id"]
    tariff = platform.ledger.metering.create_tariff(
        name="Flat", actor={}, effective_from=datetime(2026, 1, 1, tzinfo=timezone.utc),
        spec=TariffSpec.from_dict({"kind": "flat", "price_1e4": 10_000}))
    path = tmp_path / "meters.csv"
    path.write_bytes(sheet(mall_rows(account, str(tariff.id), count=40)))
    monkeypatch.setenv("PREPAID_DATABASE_URL", platform.settings.database_url)
    assert main(["meters", "import", str(path), "--site-id", str(site.id)]) == 0
    said = capsys.readouterr()
    assert "40 meters created" in said.out
    assert "checking rows: 40/40" in said.err and "done" in said.err
    platform.catch_up()
    assert len(platform.metering_queries.sheet_rows(str(site.id))) == 40
    assert main(["meters", "import", str(path), "--site-id", str(site.id)]) == 0
    assert "40 unchanged" in capsys.readouterr().out

    assert main(["projections", "rebuild"]) == 0
    said = capsys.readouterr()
    last = platform.ledger.recorder.max_notification_id()
    assert f"rebuilt read-models: {last} events" in said.out
    assert f"rebuilding read-models: {last}/{last}" in said.err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_grafana_dashboard_shows_metrics_the_platform_exports(platform):
    import re
    from pathlib import Path

    platform.settings.metrics_token = SecretStr(METRICS_TOKEN)
    with TestClient(create_app(platform, background=False)) as c:
        c.get("/health/live")
        exported = {family.name for family in text_string_to_metric_families(
            c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text)}
    dashboard = json.loads((Path(__file__).parents[2] / "docs" /
                            "grafana-dashboard.json").read_text())
    shown = {re.sub(r"_(bucket|sum|count|total)$", "", name)
             for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"prepaid_\w+", target["expr"])}
    families = {re.sub(r"_total$", "", name) for name in exported
                if name.startswith("prepaid_")}
    assert shown and shown <= families, shown - families
    assert families <= shown, f"not on the dashboard: {families - shown}"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_tampered_backup_does_not_restore_as_good(platform, tmp_path):
    import sqlite3

    from adapters.backup import CopyFailed

    account = uuid.UUID(platform.ledger.accounts.open_account(name="Shop", actor={})
                        .result["account_id"])
    platform.ledger.accounts.top_up(account, amount_fen=5000, channel="cash", actor={})
    path = str(tmp_path / "backup.db")
    backup(platform.settings, path)
    with sqlite3.connect(path) as conn:  # someone edits an event in the file
        conn.execute("UPDATE stored_events SET state = CAST(state || x'20' AS BLOB) "
                     "WHERE rowid = "
                     "(SELECT max(rowid) FROM stored_events)")
    target = Settings(database_url=f"sqlite:///{tmp_path}/restored.db", auto_migrate=True)
    with pytest.raises(CopyFailed, match="chain"):
        restore(path, target)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_on_a_separate_address_need_no_token(platform):
    import httpx

    from adapters.metrics import serve_listener
    from tests.e2e.test_serve import free_port

    port = free_port()
    server = serve_listener(platform, f"127.0.0.1:{port}")
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert answer.status_code == 200
        names = {f.name for f in text_string_to_metric_families(answer.text)}
        assert {"prepaid_meters", "prepaid_projection_lag_events"} <= names
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/accounts",
                         timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_ready_needs_the_device_runtime_where_this_process_runs_it(platform):
    with TestClient(create_app(platform, background=True)) as c:
        answer = c.get("/health/ready")
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"]["device_runtime"] == {"ok": True}
        platform._scheduler.stop()  # the device thread ends
        answer = c.get("/health/ready")
        assert answer.status_code == 503
        assert answer.json()["checks"]["device_runtime"] == {"ok": False}


def test_ready_and_status_notice_a_schema_behind_the_code(platform, anonymous, monkeypatch,
                                                          capsys):
    from sqlalchemy import text

    from api.cli import main

    assert anonymous.get("/health/ready").status_code == 200
    with platform.engines.writer.begin() as conn:  # as if a migration had not been run
        conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
    answer = anonymous.get("/health/ready")
    assert answer.status_code == 503 and answer.json()["checks"]["schema"] == {"ok": False}
    settings = platform.settings
    monkeypatch.setenv("PREPAID_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREPAID_AUTO_MIGRATE", "false")
    if settings.database_schema:
        monkeypatch.setenv("PREPAID_DATABASE_SCHEMA", settings.database_schema)
    assert main(["status"]) == 1
    assert "prepaid migrate" in capsys.readouterr().out
