"""Alembic migrations for the SQL read models (run with ``prepaid migrate``)."""
