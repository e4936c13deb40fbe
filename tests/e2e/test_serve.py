"""The real command over real HTTP: ``prepaid serve`` on its embedded default and on
PostgreSQL. Killing the process loses nothing that was acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from tests.conftest import POSTGRES_URL, _drop_schema

PREPAID = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 90  # generous: two workers on a loaded two-core machine took over 30 s


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any PREPAID_ setting, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREPAID_")}
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], cwd: Path, workers: int = 1):
    port = free_port()
    process = subprocess.Popen([*PREPAID, "serve", "--port", str(port),
                                "--workers", str(workers)], cwd=cwd,
                               env=environment(env), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"prepaid serve did not start:\n{output}")
        time.sleep(0.2)
    try:
        client = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
        client.server_pid = process.pid
        yield client
    finally:
        # A crash, not a clean shutdown: every process of the server at once.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def server_processes(pid: int) -> list[int]:
    """The server's worker processes: those of its process group that uvicorn spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pid and \
                        b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                pass
    return found


def migrate(env: dict[str, str], cwd: Path) -> None:
    migrated = subprocess.run([*PREPAID, "migrate"], cwd=cwd, capture_output=True,
                              env=environment(env), timeout=60)
    assert migrated.returncode == 0, migrated.stderr


def create_admin(env: dict[str, str], cwd: Path) -> None:
    password_file = cwd / "admin-password"
    password_file.write_text("correct horse battery staple\n")  # test fixture only
    created = subprocess.run([*PREPAID, "admin", "create", "--username", "root",
                              "--password-file", str(password_file)], cwd=cwd,
                             capture_output=True, env=environment(env), timeout=60)
    assert created.returncode == 0, created.stderr
    again = subprocess.run([*PREPAID, "admin", "create", "--username", "root",
                            "--password-file", str(password_file)], cwd=cwd,
                           capture_output=True, env=environment(env), timeout=60)
    assert again.returncode == 1 and b"exists" in again.stderr


def log_in(api: httpx.Client) -> None:
    """Nothing is served to a caller who has not logged in; then the token opens it."""
    assert api.get("/accounts").status_code == 401
    assert api.post("/accounts", json={"name": "x"}).status_code == 401
    wrong = api.post("/auth/token", data={"username": "root", "password": "nope"})
    assert wrong.status_code == 401
    token = api.post("/auth/token", data={"username": "root",
                                          "password": "correct horse battery staple"})
    assert token.status_code == 200, token.text
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    assert api.get("/me").json()["roles"] == ["admin"]


def cashier_session(api: httpx.Client) -> tuple[str, str]:
    account = api.post("/accounts", json={"name": "Shop 1F-08"}).json()["id"]
    sale = api.post(f"/accounts/{account}/top-ups", json={"amount": "88.80", "channel": "cash"},
                    headers={"Idempotency-Key": str(uuid.uuid4())})
    assert sale.status_code == 201, sale.text
    statement = api.get(f"/accounts/{account}/statement").json()["items"]
    assert [e["balance_after"] for e in statement] == ["88.80"]  # read your own write
    return account, sale.json()["id"]


def after_restart(api: httpx.Client, account: str, sale: str) -> None:
    assert api.get(f"/accounts/{account}").json()["balance"] == "88.80"
    assert api.get(f"/transactions/{sale}").json()["amount"] == "88.80"
    assert [e["amount"] for e in api.get(f"/accounts/{account}/statement").json()["items"]] \
        == ["88.80"]
    tb = api.get("/ledger/trial-balance").json()
    assert tb["total_debit"] == tb["total_credit"] == "88.80"


def test_embedded_default_serves_and_keeps_everything_across_a_crash(tmp_path):
    # No configuration at all: SQLite in ./var/prepaid.db under the working directory.
    with serving({}, tmp_path) as api:
        assert api.get("/accounts").status_code == 401  # a fresh database serves no one
    assert (tmp_path / "var" / "prepaid.db").exists()
    create_admin({}, tmp_path)
    with serving({}, tmp_path) as api:
        log_in(api)
        account, sale = cashier_session(api)
    with serving({}, tmp_path) as api:
        log_in(api)
        after_restart(api, account, sale)
    verified = subprocess.run([*PREPAID, "audit", "verify"], cwd=tmp_path,
                              capture_output=True, env=environment({}), timeout=60)
    assert verified.returncode == 0 and b'"ok": true' in verified.stdout


def test_postgres_needs_migrate_then_serves_and_survives_a_crash(tmp_path):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {"PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema}
    try:
        refused = subprocess.run([*PREPAID, "serve"], cwd=tmp_path, capture_output=True,
                                 env=environment(env), timeout=60)
        assert refused.returncode != 0
        assert b"prepaid migrate" in refused.stdout + refused.stderr
        migrate(env, tmp_path)
        create_admin(env, tmp_path)
        with serving(env, tmp_path) as api:
            log_in(api)
            account, sale = cashier_session(api)
        rebuilt = subprocess.run([*PREPAID, "projections", "rebuild"], cwd=tmp_path,
                                 capture_output=True, timeout=60,
                                 env=environment(env))
        assert rebuilt.returncode == 0 and b"rebuilt read-models: 4 events" in rebuilt.stdout
        with serving(env, tmp_path) as api:
            log_in(api)
            after_restart(api, account, sale)
    finally:
        _drop_schema(schema)


def test_postgres_with_several_api_processes(tmp_path):
    """``--workers 2``: each process serves, writes and reads the shared read models."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {"PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema}
    try:
        migrate(env, tmp_path)
        create_admin(env, tmp_path)
        with serving(env, tmp_path, workers=2) as api:
            log_in(api)
            assert len(server_processes(api.server_pid)) == 2
            for _ in range(3):  # new connections, spread over the processes
                with httpx.Client(base_url=str(api.base_url), headers=api.headers,
                                  timeout=10) as fresh:
                    cashier_session(fresh)
            total = api.get("/ledger/trial-balance").json()
            assert total["total_debit"] == total["total_credit"] == "266.40"
    finally:
        _drop_schema(schema)


@pytest.mark.parametrize("argv", [["--help"], ["projections", "--help"]])
def test_cli_help(argv):
    result = subprocess.run([*PREPAID, *argv], capture_output=True, timeout=30,
                            env=environment({}))
    assert result.returncode == 0 and b"usage: prepaid" in result.stdout


def test_projections_run_keeps_read_models_for_api_processes_that_do_not(tmp_path):
    """``PREPAID_PROJECTIONS_IN_PROCESS=false``: the API process leaves polling to
    ``prepaid projections run``, which applies what any process wrote."""
    from bootstrap import Platform
    from ledger.config import Settings

    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {"PREPAID_DATABASE_URL": POSTGRES_URL, "PREPAID_DATABASE_SCHEMA": schema}
    settings = Settings(database_url=POSTGRES_URL, database_schema=schema, auto_migrate=True,
                        projections_in_process=False, devices_in_process=False)
    platform = Platform(settings)
    projector = None
    try:
        platform.start_background()
        assert platform._runner is None  # no polling thread in this process
        account = platform.ledger.accounts.open_account(name="Shop 2F-11", actor={}).result
        account_id = account["account_id"]
        platform.ledger.accounts.top_up(UUID(account_id), amount_fen=12_345, channel="cash",
                                        actor={})
        time.sleep(1.5)  # three poll intervals: nobody here projects
        assert platform.queries.wallet_balances(account_id) == {}
        projector = subprocess.Popen([*PREPAID, "projections", "run"], cwd=tmp_path,
                                     env=environment(env), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not platform.queries.wallet_balances(account_id):
            assert time.monotonic() < deadline and projector.poll() is None
            time.sleep(0.2)
        assert platform.queries.wallet_balances(account_id)["electricity"]["balance_fen"] \
            == 12_345
        projector.send_signal(signal.SIGTERM)  # stops cleanly
        assert projector.wait(timeout=20) == 0
        assert b"projecting" in projector.stdout.read()
    finally:
        if projector is not None and projector.poll() is None:
            projector.kill()
        platform.close()
        _drop_schema(schema)
