"""The composition root moved to ``bootstrap.py``; these names stay importable here."""

from bootstrap import Platform, SchemaNotMigrated, alembic_config, migrate, schema_is_current

__all__ = ["Platform", "SchemaNotMigrated", "alembic_config", "migrate", "schema_is_current"]
