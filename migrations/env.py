"""Alembic environment: runs on the connection ``prepaid migrate`` hands over, or on
``PREPAID_DATABASE_URL`` when alembic is called directly (``alembic -c alembic.ini``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from projections.tables import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from ledger.config import Settings

    settings = Settings()
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
