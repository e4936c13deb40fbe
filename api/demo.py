"""``prepaid demo``: the platform together with a simulated mall.

A simulator process serves 300 prepaid and 50 common-area meters behind 5 Modbus TCP
gateways, and a mix of real-world buses: a DL/T 645-2007 serial server, a Modbus RTU
serial server (Acrel DDSY1352 profile) and a 4G DTU that calls the platform's listener,
8 prepaid meters each. The platform gets a site, a time-of-use tariff, 300 shops with
some credit, and polls every 60 seconds. Simulated time runs faster (``--speed``), so balances visibly go down, the
poorest shops are tripped, and a top-up closes them again.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from ledger.commands import ChangeOperator, RegisterOperator
from ledger.config import Settings

DEMO_PREPAID = 300
DEMO_MONITORING = 50
DEMO_GATEWAYS = 5
DEMO_SERIAL_METERS = 8  # per DL/T 645 server, Modbus RTU server and DTU
DEMO_DTU_LISTEN = "127.0.0.1:15099"
DEMO_POLL_INTERVAL_S = 60
SIMULATOR_CONTROL_PORT = 15019
SIMULATOR_PORT_BASE = 15020
STARTUP_TIMEOUT_S = 60
# The demo's own database, so that its 300 shops never mix with ./var/prepaid.db.
DEMO_DATABASE_URL = "sqlite:///./var/demo.db"


class Stopped(Exception):
    """SIGTERM: stop like Ctrl-C does, through every ``finally`` (the simulator too)."""


def _stop(signum, _frame) -> None:
    raise Stopped(signal.Signals(signum).name)


def ports_in_use(host: str, ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def run_demo(settings: Settings, *, host: str | None, port: int | None, speed: float,
             database_url: str | None = None, control_port: int = SIMULATOR_CONTROL_PORT,
             port_base: int = SIMULATOR_PORT_BASE) -> int:
    # SIGTERM as well as SIGINT stops the server, the simulator and everything else.
    signal.signal(signal.SIGTERM, _stop)
    try:
        return _run_demo(settings, host=host, port=port, speed=speed,
                         database_url=database_url, control_port=control_port,
                         port_base=port_base)
    except (Stopped, KeyboardInterrupt):
        print("demo stopped", flush=True)
        return 0


def _run_demo(settings: Settings, *, host: str | None, port: int | None, speed: float,
              database_url: str | None, control_port: int, port_base: int) -> int:
    var = Path("var")
    var.mkdir(exist_ok=True)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    elif "database_url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"database_url": DEMO_DATABASE_URL})
    host, port = host or settings.host, port or settings.port
    if not settings.dtu_listen:
        settings = settings.model_copy(update={"dtu_listen": DEMO_DTU_LISTEN})
    # The Modbus TCP gateways, then the DL/T 645 and the Modbus RTU serial servers, and
    # the port the simulated DTU calls in to.
    wanted = [port, control_port, *range(port_base, port_base + DEMO_GATEWAYS + 2),
              settings.dtu_listen_address[1]]
    busy = ports_in_use(host, [port]) + ports_in_use("127.0.0.1", wanted[1:])
    if busy:
        print(f"prepaid: the demo cannot start: port(s) {', '.join(map(str, busy))} are in "
              f"use (is another demo still running?). Stop it, or choose other ports with "
              f"--port, --control-port, --port-base and PREPAID_DTU_LISTEN.", file=sys.stderr, flush=True)
        return 1
    print(f"demo database: {settings.database_url} (the demo's own; give --database-url "
          f"or PREPAID_DATABASE_URL to use another)", flush=True)
    if not settings.master_key_file:
        key_file = var / "demo-master.key"
        if not key_file.exists():
            # A key for this demo only, made here and kept out of the repository.
            key_file.write_text(secrets.token_hex(16))
            key_file.chmod(0o600)
        settings = settings.model_copy(update={"master_key_file": str(key_file)})
    # The simulator's gateways listen on loopback: the demo (only) allows that network.
    settings = settings.model_copy(update={"gateway_allowed_networks": ",".join(
        filter(None, [settings.gateway_allowed_networks, "127.0.0.0/8"]))})
    credentials_file = var / "demo-dlt645.json"
    if not settings.dlt645_credentials_file:
        settings = settings.model_copy(update={
            "dlt645_credentials_file": str(credentials_file)})
    layout_file = var / "demo-layout.json"
    layout_file.unlink(missing_ok=True)
    simulator = subprocess.Popen([
        sys.executable, "-m", "api.cli", "simulate",
        "--meters", str(DEMO_PREPAID + DEMO_MONITORING), "--gateways", str(DEMO_GATEWAYS),
        "--speed", str(speed), "--layout-file", str(layout_file),
        "--master-key-file", settings.master_key_file,
        "--control-port", str(control_port),
        "--port-base", str(port_base),
        "--dlt645-gateways", "1", "--rtu-gateways", "1", "--dtus", "1",
        "--serial-meters-per-gateway", str(DEMO_SERIAL_METERS),
        "--dtu-target", settings.dtu_listen, "--dtu-heartbeat-s", "20"])
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not layout_file.exists():
            if simulator.poll() is not None or time.monotonic() > deadline:
                print("prepaid: the simulator did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        layout = json.loads(layout_file.read_text())
        from api import server
        from api.app import create_app
        from bootstrap import Platform

        platform = Platform(settings)
        try:
            summary = build_demo_site(platform, layout)
            if settings.dlt645_credentials_file == str(credentials_file):
                # The simulated DL/T 645 meters' control password (a demo value).
                site_id = str(platform.ledger.metering.create_site(
                    name="Demo Mall", actor={}, idempotency_key="demo-mall").id)
                credentials_file.write_text(json.dumps({"sites": {site_id: {
                    "password_level": 2, "password": "000000",
                    "operator_code": "00000000"}}}))
                credentials_file.chmod(0o600)
            logins = demo_logins(platform, var / "demo-logins.json")
            app = create_app(platform)
            banner = (f"\nDemo mall ready: {summary}\n"
                      f"  console:    http://{host}:{port}/console\n"
                      f"  API:        http://{host}:{port}/api/v1  (docs at /docs)\n"
                      + "".join(f"  {role + ' login:':<16}{name} / {password}\n"
                                for role, name, password in logins) +
                      f"  (log in with POST /api/v1/auth/token, or Authorize in /docs)\n"
                      f"  simulator:  http://127.0.0.1:{control_port}/layout\n"
                      f"  meters are polled every {DEMO_POLL_INTERVAL_S} s; simulated time "
                      f"runs {speed:g}x\n")
            # "Ready" only once the server accepts connections: whoever reads it and opens
            # the address at once must find it answering.
            threading.Thread(target=_announce_when_listening, args=(host, port, banner),
                             daemon=True).start()
            server.run(app, settings=settings, host=host, port=port)
        finally:
            platform.close()
    finally:
        simulator.terminate()
        try:
            simulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            simulator.kill()
            simulator.wait()
    return 0


def _announce_when_listening(host: str, port: int, banner: str,
                             timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                print(banner, flush=True)
                return
        except OSError:
            time.sleep(0.1)


def demo_logins(platform, path: Path) -> list[tuple[str, str, str]]:
    """A demo admin and a finance operator (a second person for approvals), made once;
    their generated passwords are kept in ``var/`` (this is a demo database)."""
    import secrets

    actor = {"kind": "system", "id": "demo"}
    saved = json.loads(path.read_text()) if path.exists() else {}
    logins = []
    for role, name in (("admin", "demo-admin"), ("finance", "demo-finance")):
        password = saved.get(name) or secrets.token_urlsafe(12)
        existing = platform.ledger.access.find_operator(name)
        if existing is None:
            platform.ledger.execute(RegisterOperator(
                name, platform.auth.hash_password(password), (role,)), actor)
        elif name not in saved:  # the file was lost: give the login a new password
            platform.ledger.execute(ChangeOperator(
                existing.id, password_hash=platform.auth.hash_password(password)), actor)
        saved[name] = password
        logins.append((role, name, password))
    path.write_text(json.dumps(saved))
    path.chmod(0o600)
    platform.catch_up()
    return logins


def build_demo_site(platform, layout: list[dict]) -> str:
    """Create (once) the demo site; running the demo again finds it as it was left."""
    from domain.errors import AlreadyExists
    from domain.tariff import TariffSpec

    ledger = platform.ledger
    actor = {"kind": "system", "id": "demo"}
    now = ledger.clock()
    site = ledger.metering.create_site(name="Demo Mall", poll_interval_s=DEMO_POLL_INTERVAL_S,
                                       actor=actor, idempotency_key="demo-mall")
    tariff = ledger.metering.create_tariff(
        name="Commercial time of use", effective_from=now - timedelta(days=1), actor=actor,
        idempotency_key="demo-tou", spec=TariffSpec.from_dict({
            "kind": "tou",
            "band_prices_1e4": {"sharp": 13500, "peak": 11200, "flat": 7100, "valley": 3200},
            "schedule": [{"start": "00:00", "band": "valley"},
                         {"start": "08:00", "band": "peak"},
                         {"start": "11:00", "band": "sharp"},
                         {"start": "13:00", "band": "flat"},
                         {"start": "17:00", "band": "peak"},
                         {"start": "22:00", "band": "valley"}]}))
    created = 0
    index = 0
    for gateway_layout in layout:
        protocol = gateway_layout.get("protocol", "modbus-tcp")
        inbound = gateway_layout.get("connect") == "inbound"
        gateway = ledger.metering.register_gateway(
            site_id=site.id, name=("DTU-" if inbound else "GW-") + str(gateway_layout["gateway"]),
            host=gateway_layout["host"], port=gateway_layout["port"], protocol=protocol,
            connect=gateway_layout.get("connect", "outbound"),
            registration_id=gateway_layout.get("registration_id"),
            heartbeat=gateway_layout.get("heartbeat"), baud=gateway_layout.get("baud"),
            actor=actor)
        profile = {"modbus-tcp": "ref-prepaid-v1", "dlt645-tcp": "dlt645-2007",
                   "modbus-rtu-tcp": "acrel-ddsy1352"}[protocol]
        for meter in gateway_layout["meters"]:
            prepaid = index < DEMO_PREPAID or index >= DEMO_PREPAID + DEMO_MONITORING
            account_id = None
            if prepaid:
                outcome = ledger.accounts.open_account(name=f"Shop {index + 1:03d}",
                                                       unit=f"A-{index + 1:03d}",
                                                       site_id=str(site.id), actor=actor,
                                                       idempotency_key=f"demo-shop-{index}")
                account_id = UUID(outcome.result["account_id"])
                ledger.accounts.top_up(account_id, amount_fen=2000 + (index * 7919) % 30000,
                                       channel="cash", actor=actor,
                                       idempotency_key=f"demo-top-up-{index}")
            try:
                ledger.metering.register_meter(
                    meter_no=meter["meter_no"], kind="electricity",
                    mode="prepaid" if prepaid else "monitoring", gateway_id=gateway.id,
                    address=meter["address"], profile=profile, account_id=account_id,
                    tariff_id=tariff.id, tariff_from=now - timedelta(days=1), building="A",
                    floor=str(index // 60 + 1), unit=f"A-{index + 1:03d}", actor=actor)
                created += 1
            except AlreadyExists:
                pass
            index += 1
    platform.catch_up()
    kinds = ", ".join(sorted({f"{g.get('protocol', 'modbus-tcp')} {g.get('connect', 'outbound')}"
                              for g in layout}))
    shops = index - DEMO_MONITORING
    return (f"site {site.id}, {len(layout)} gateways ({kinds}), {index} meters "
            f"({created} new), {shops} shops")



