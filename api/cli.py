"""The ``prepaid`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ledger.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prepaid", description="Prepaid energy ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the REST API (and in-process jobs)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1,
                       help="API processes (PostgreSQL); device work then runs in Celery")
    commands.add_parser("migrate", help="create or upgrade the database tables")
    simulate = commands.add_parser("simulate", help="run the meter simulator")
    simulate.add_argument("--meters", type=int, default=350)
    simulate.add_argument("--gateways", type=int, default=5)
    simulate.add_argument("--meters-per-gateway", type=int)
    simulate.add_argument("--first-meter-no", type=int, default=900_000_000_001)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port-base", type=int, default=15020)
    simulate.add_argument("--baud", type=int, default=9600)
    simulate.add_argument("--speed", type=float, default=1.0,
                          help="simulated seconds per real second")
    simulate.add_argument("--min-power-w", type=int, default=200)
    simulate.add_argument("--max-power-w", type=int, default=3000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--control-port", type=int, default=15019)
    simulate.add_argument("--layout-file")
    simulate.add_argument("--master-key-file", help="default: PREPAID_MASTER_KEY_FILE")
    simulate.add_argument("--dlt645-gateways", type=int, default=0,
                          help="DL/T 645 serial servers (outbound), after the Modbus ones")
    simulate.add_argument("--rtu-gateways", type=int, default=0,
                          help="Modbus RTU serial servers (acrel-ddsy1352 meters)")
    simulate.add_argument("--dtus", type=int, default=0,
                          help="DL/T 645 DTUs that call --dtu-target")
    simulate.add_argument("--serial-meters-per-gateway", type=int, default=8)
    simulate.add_argument("--dtu-target", help="host:port of PREPAID_DTU_LISTEN")
    simulate.add_argument("--dtu-heartbeat-s", type=float, default=30.0)
    simulate.add_argument("--bus-time-scale", type=float, default=1.0,
                          help="bus time of transparent buses (0: none)")
    demo = commands.add_parser("demo", help="serve with a simulated mall (300 + 50 meters)")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--speed", type=float, default=120.0,
                      help="simulated seconds per real second (default: 2 hours a minute)")
    demo.add_argument("--database-url",
                      help="default: PREPAID_DATABASE_URL if set, else sqlite:///./var/demo.db")
    demo.add_argument("--control-port", type=int, default=15019,
                      help="the simulator's control API")
    demo.add_argument("--port-base", type=int, default=15020,
                      help="the simulated gateways' first port (5 ports)")
    commands.add_parser("worker", help="run a Celery worker (needs PREPAID_BROKER_URL)")
    commands.add_parser("beat", help="run the Celery beat (needs PREPAID_BROKER_URL)")
    admin = commands.add_parser("admin", help="operators from the console")
    admin_commands = admin.add_subparsers(dest="action", required=True)
    create = admin_commands.add_parser("create", help="create an admin (the first one)")
    create.add_argument("--username", required=True)
    create.add_argument("--password-file",
                        help="a file holding the password (default: ask for it)")
    audit = commands.add_parser("audit", help="tamper evidence")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    audit_commands.add_parser("verify", help="recompute the event log's hash chain")
    projections = commands.add_parser("projections", help="read-model maintenance")
    projections_commands = projections.add_subparsers(dest="action", required=True)
    projections_commands.add_parser("rebuild", help="rebuild every read model from event zero")
    projections_commands.add_parser("status", help="show each read model's position")
    projections_commands.add_parser(
        "run", help="keep the read models current from this process (beside API processes "
                    "started with PREPAID_PROJECTIONS_IN_PROCESS=false)")
    from api import ops_cli

    ops_cli.add_commands(commands)
    args = parser.parse_args(argv)
    settings = Settings()
    from adapters.logs import configure_logging

    configure_logging(settings.log_format)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    handled = ops_cli.run(args, settings)
    if handled is not None:
        return handled

    if args.command == "migrate":
        from bootstrap import migrate

        migrate(settings)
        print(f"migrated {_safe_url(settings)}")
        return 0
    if args.command == "projections":
        from bootstrap import Platform

        platform = Platform(settings)
        if args.action in ("rebuild", "run"):
            from api.app import tune_gc

            tune_gc(settings.gc_thresholds)  # a long batch or a follower: as serving tunes it
        try:
            if args.action == "rebuild":
                from api.ops_cli import rebuild

                rebuild(platform)
            elif args.action == "run":
                import signal
                import threading

                stop = threading.Event()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stop.set())
                print(f"projecting {_safe_url(settings)} every "
                      f"{settings.projection_poll_interval_s} s", flush=True)
                platform.project_forever(stop)
            else:
                last = platform.ledger.recorder.max_notification_id() or 0
                for projector in platform.projectors:
                    print(f"{projector.name}: position {projector.position()} of {last}")
        finally:
            platform.close()
        return 0
    if args.command == "simulate":
        return _simulate(args, settings)
    if args.command == "admin":
        return _create_admin(args, settings)
    if args.command == "audit":
        return _verify(settings)
    if args.command == "demo":
        from api.demo import run_demo

        return run_demo(settings, host=args.host, port=args.port, speed=args.speed,
                        database_url=args.database_url, control_port=args.control_port,
                        port_base=args.port_base)
    if args.command in ("worker", "beat"):
        if not settings.broker_url:
            print("prepaid: set PREPAID_BROKER_URL (redis://... or amqp://...)",
                  file=sys.stderr)
            return 2
        from adapters.celery_app import all_queues, app

        if args.command == "worker":
            app.worker_main(["worker", "--loglevel", "INFO", "-Q", ",".join(all_queues())])
        else:
            app.start(["beat", "--loglevel", "INFO"])
        return 0
    if args.command == "serve":
        from api import server
        from api.app import create_app

        from bootstrap import SchemaNotMigrated, migrate

        if args.workers > 1:
            # Several processes: migrate once here, and leave polling and device commands
            # to Celery workers (one in-process runner per API process would poll twice).
            if settings.should_auto_migrate:
                migrate(settings)
            os.environ["PREPAID_AUTO_MIGRATE"] = "false"
            os.environ.setdefault("PREPAID_DEVICES_IN_PROCESS", "false")
            from api.ops_cli import serve_metrics

            serve_metrics(settings, None)  # the workers' counters add up in files
            print(f"serving with {args.workers} processes on "
                  f"http://{args.host or settings.host}:{args.port or settings.port}",
                  flush=True)
            _hint_first_admin(settings)
            server.run("api.app:create_default_app", settings=settings, factory=True,
                       workers=args.workers, host=args.host or settings.host,
                       port=args.port or settings.port,
                       log_config=_log_config(settings))
            return 0
        from adapters.auth import SecretFileExposed

        try:
            app = create_app(settings=settings)
        except (SchemaNotMigrated, SecretFileExposed) as error:
            print(f"prepaid: {error}", file=sys.stderr)
            return 1
        from api.app import tune_gc

        tune_gc(settings.gc_thresholds)
        from api.ops_cli import serve_metrics

        serve_metrics(settings, app.state.platform)
        print(f"serving on http://{args.host or settings.host}:{args.port or settings.port} "
              f"({_safe_url(settings)})", flush=True)
        _hint_first_admin(settings, app.state.platform)
        server.run(app, settings=settings, host=args.host or settings.host,
                   port=args.port or settings.port,
                   log_config=_log_config(settings))
        return 0
    return 2


def _create_admin(args, settings: Settings) -> int:
    import getpass

    from adapters.auth import password_problem
    from api.ops_cli import console_user
    from bootstrap import Platform
    from domain.errors import DomainError
    from ledger.commands import RegisterOperator

    if args.password_file:
        with open(args.password_file, encoding="utf-8") as handle:
            password = handle.read().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("prepaid: the passwords differ", file=sys.stderr)
            return 2
    if len(password) > 128:
        print("prepaid: a password has at most 128 characters", file=sys.stderr)
        return 2
    problem = password_problem(password, ["admin"], args.username, settings)
    if problem:
        print(f"prepaid: {problem}", file=sys.stderr)
        return 2
    platform = Platform(settings)
    try:
        outcome = platform.ledger.execute(
            RegisterOperator(args.username, platform.auth.hash_password(password), ("admin",)),
            {"kind": "console", "id": console_user(), "name": console_user()})
        platform.catch_up(outcome.position)
    except DomainError as error:
        print(f"prepaid: {error.detail}", file=sys.stderr)
        return 1
    finally:
        platform.close()
    print(f"admin {args.username} created ({outcome.result['id']})")
    return 0


def has_admin(platform) -> bool:
    platform.catch_up()
    return any(row["active"] and "admin" in str(row["roles"]).split(",")
               for row in platform.access_queries.operators())


def _hint_first_admin(settings: Settings, platform=None) -> None:
    """On a database with no administrator, say how to make the first one."""
    from bootstrap import Platform

    own = platform is None
    try:
        platform = platform or Platform(settings)
    except Exception:  # the server itself reports what is wrong
        return
    try:
        if has_admin(platform):
            return
    finally:
        if own:
            platform.close()
    command = os.environ.get("PREPAID_COMMAND") or "prepaid"
    print(f"\nNo administrator yet: nobody can log in. Create the first one with\n"
          f"    {command} admin create --username admin\n"
          f"(it asks for a password; or give --password-file FILE), then log in with "
          f"POST /api/v1/auth/token or Authorize in /docs.\n", flush=True)


def _verify(settings: Settings) -> int:
    import json

    from bootstrap import Platform
    from ledger.chain import verify_chain

    platform = Platform(settings)
    try:
        report = verify_chain(platform.ledger.recorder)
    finally:
        platform.close()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _simulate(args, settings: Settings) -> int:
    import asyncio

    from adapters.secure_frame import load_master_key
    from adapters.simulator import SimulationConfig
    from adapters.simulator_service import serve

    key_file = args.master_key_file or settings.master_key_file
    if not key_file:
        print("prepaid: give --master-key-file or PREPAID_MASTER_KEY_FILE", file=sys.stderr)
        return 2
    config = SimulationConfig(
        meters=args.meters, gateways=args.gateways, first_meter_no=args.first_meter_no,
        host=args.host, port_base=args.port_base, baud=args.baud, speed=args.speed,
        min_power_w=args.min_power_w, max_power_w=args.max_power_w, seed=args.seed,
        meters_per_gateway=args.meters_per_gateway, dlt645_gateways=args.dlt645_gateways,
        rtu_gateways=args.rtu_gateways, dtus=args.dtus,
        serial_meters_per_gateway=args.serial_meters_per_gateway, dtu_target=args.dtu_target,
        dtu_heartbeat_s=args.dtu_heartbeat_s, bus_time_scale=args.bus_time_scale)
    try:
        asyncio.run(serve(config, load_master_key(key_file), args.control_port,
                          args.layout_file))
    except KeyboardInterrupt:
        pass
    return 0


def _log_config(settings: Settings) -> dict:
    from adapters.logs import uvicorn_log_config

    return uvicorn_log_config(settings.log_format)


def _safe_url(settings: Settings) -> str:
    """The database URL without its password, for logs."""
    url = settings.database_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url


if __name__ == "__main__":
    sys.exit(main())
