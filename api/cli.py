"""The ``prepaid`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from ledger.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prepaid", description="Prepaid energy ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the REST API (and in-process jobs)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    commands.add_parser("migrate", help="create or upgrade the database tables")
    projections = commands.add_parser("projections", help="read-model maintenance")
    projections_commands = projections.add_subparsers(dest="action", required=True)
    projections_commands.add_parser("rebuild", help="rebuild every read model from event zero")
    projections_commands.add_parser("status", help="show each read model's position")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings()

    if args.command == "migrate":
        from api.platform import migrate

        migrate(settings)
        print(f"migrated {_safe_url(settings)}")
        return 0
    if args.command == "projections":
        from api.platform import Platform

        platform = Platform(settings)
        try:
            if args.action == "rebuild":
                for name, count in platform.rebuild_projections().items():
                    print(f"rebuilt {name}: {count} events")
            else:
                last = platform.ledger.recorder.max_notification_id() or 0
                for projector in platform.projectors:
                    print(f"{projector.name}: position {projector.position()} of {last}")
        finally:
            platform.close()
        return 0
    if args.command == "serve":
        import uvicorn

        from api.app import create_app

        from api.platform import SchemaNotMigrated

        try:
            app = create_app(settings=settings)
        except SchemaNotMigrated as error:
            print(f"prepaid: {error}", file=sys.stderr)
            return 1
        print(f"serving on http://{args.host or settings.host}:{args.port or settings.port} "
              f"({_safe_url(settings)})", flush=True)
        uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port)
        return 0
    return 2


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
