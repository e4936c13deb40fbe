"""Operations commands of ``prepaid``: status, backup, restore, db copy."""

from __future__ import annotations

import json
import sys

from ledger.config import Settings


def console_user() -> str:
    """Who acts from a terminal: the operating system's user, as the audit log names it."""
    import getpass

    try:
        return f"console:{getpass.getuser()}"
    except Exception:
        return "console"


def add_commands(commands) -> None:
    status = commands.add_parser("status", help="one screen: is the platform well? "
                                 "(exit status 1 when something needs attention)")
    status.add_argument("--json", action="store_true", help="print JSON")
    backup = commands.add_parser("backup", help="write a consistent backup while running")
    backup.add_argument("file")
    restore = commands.add_parser("restore", help="restore a backup into an empty database")
    restore.add_argument("file")
    db = commands.add_parser("db", help="database moves")
    db_commands = db.add_subparsers(dest="action", required=True)
    copy = db_commands.add_parser("copy", help="copy this platform into an empty database "
                                  "and verify the copy")
    copy.add_argument("--to", required=True, dest="target",
                      help="postgresql://user@host:port/db of the empty database")
    copy.add_argument("--schema", help="PostgreSQL schema on the target (default: public)")
    meters = commands.add_parser("meters", help="meters from the console")
    meters_commands = meters.add_subparsers(dest="action", required=True)
    sheet = meters_commands.add_parser("import", help="import the gateways-and-meters sheet "
                                       "(CSV or XLSX): all rows or none")
    sheet.add_argument("file")
    sheet.add_argument("--site-id", required=True)
    sheet.add_argument("--format", choices=("csv", "xlsx"),
                       help="default: from the file name")


def run(args, settings: Settings) -> int | None:
    """Run an operations command; ``None`` when ``args`` names none of them."""
    if args.command == "status":
        return _status(settings, as_json=args.json)
    if args.command == "backup":
        return _backup(settings, args.file)
    if args.command == "restore":
        return _restore(settings, args.file)
    if args.command == "meters" and args.action == "import":
        return _import_meters(settings, args.file, args.site_id, args.format)
    if args.command == "db" and args.action == "copy":
        target = Settings(database_url=args.target, database_schema=args.schema,
                          auto_migrate=True)
        return _copy(settings, target)
    return None


def _status(settings: Settings, *, as_json: bool) -> int:
    from adapters.health import platform_status, render_status

    report = platform_status(settings)
    print(json.dumps(report, indent=2, default=str) if as_json else render_status(report))
    return 1 if report["attention"] else 0


def _backup(settings: Settings, path: str) -> int:
    from adapters.backup import CopyRefused, backup
    from adapters.progress import progress

    try:
        report = backup(settings, path, progress=progress)
    except CopyRefused as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 2
    print(f"backup written to {path}: {report.events} events, chain head "
          f"{report.head_position} {report.head_hash}")
    return 0


def _restore(settings: Settings, path: str) -> int:
    from adapters.backup import CopyFailed, CopyRefused, restore
    from adapters.progress import progress

    try:
        report = restore(path, settings, progress=progress)
    except CopyRefused as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 2
    except CopyFailed as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), indent=2))
    print(f"restored {path}: {report.events} events, chain verified, "
          f"{report.wallets} wallets checked")
    return 0


def _copy(source: Settings, target: Settings) -> int:
    from adapters.backup import (CopyFailed, CopyRefused, check_copy, copy_platform,
                                 current_balances)
    from adapters.progress import progress

    if not source.is_sqlite:
        print("prepaid: db copy moves an embedded (SQLite) site; on PostgreSQL use "
              "`prepaid backup` or pg_dump", file=sys.stderr)
        return 2
    if not target.is_postgres:
        print("prepaid: --to takes a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        report = copy_platform(source, target, progress=progress, verify=False)
        # The source's own read model, when it is current, must agree with the copy's.
        check_copy(target, report, progress=progress, expected_events=report.events,
                   expected_balances=current_balances(source, report.head_position))
    except CopyRefused as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 2
    except CopyFailed as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), indent=2))
    print(f"done: {report.events} events copied and verified (chain, {report.wallets} "
          "wallet balances, trial balance, event count)")
    return 0



def serve_metrics(settings: Settings, platform) -> None:
    """Before serving: with several workers (``platform`` None) give them a directory to
    add their counters up in; with ``PREPAID_METRICS_LISTEN`` answer /metrics there."""
    from adapters import metrics

    if platform is None:
        metrics.prepare_multiprocess_dir()
    if settings.metrics_listen:
        if platform is None:
            from bootstrap import Platform

            platform = Platform(settings.model_copy(update={"auto_migrate": False}))
        metrics.serve_listener(platform, settings.metrics_listen)


def rebuild(platform) -> None:
    """`prepaid projections rebuild`, with progress on stderr."""
    from adapters.progress import progress

    last = platform.ledger.recorder.max_notification_id() or 0
    for projector in platform.projectors:
        with progress(f"rebuilding {projector.name}", last) as step:
            count = projector.rebuild(on_batch=step)
        print(f"rebuilt {projector.name}: {count} events", flush=True)


def _import_meters(settings: Settings, path: str, site_id: str, fmt: str | None) -> int:
    from uuid import UUID

    from bootstrap import Platform
    from adapters.progress import progress
    from adapters.sheets import SheetError, read_sheet
    from domain.errors import DomainError
    from ledger.sheet_import import import_sheet

    fmt = fmt or ("xlsx" if path.lower().endswith(".xlsx") else "csv")
    try:
        with open(path, "rb") as handle:
            rows = read_sheet(handle.read(), fmt)
        site = UUID(site_id)
    except (OSError, SheetError, ValueError) as error:
        print(f"prepaid: {error}", file=sys.stderr)
        return 2
    user = console_user()
    platform = Platform(settings)
    try:
        with progress("checking rows", len(rows)) as step:
            report = import_sheet(platform.ledger, site, rows,
                                  {"kind": "console", "id": user, "name": user}, on_row=step)
        if report.ok:
            last = platform.ledger.recorder.max_notification_id() or 0
            with progress("updating read models", max(last - platform.projector.position(),
                                                       0)) as step:
                platform.projector.catch_up(on_batch=step)
    except DomainError as error:
        print(f"prepaid: {error.detail}", file=sys.stderr)
        return 1
    finally:
        platform.close()
    if not report.ok:
        for problem in report.errors:
            print(f"row {problem['row']}, {problem['column']}: {problem['reason']}",
                  file=sys.stderr)
        print(f"prepaid: {len(report.errors)} problem(s); nothing was imported",
              file=sys.stderr)
        return 1
    print(f"imported: {report.gateways_created} gateways and {report.meters_created} meters "
          f"created, {report.unchanged} unchanged")
    return 0
