"""Helpers shared by the benchmarks: a throwaway PostgreSQL schema and timing."""

from __future__ import annotations

import gc
import os
import time
import uuid
from contextlib import contextmanager

import psycopg

from ledger.config import Settings

POSTGRES_URL = os.environ.get("PREPAID_BENCH_POSTGRES_URL",
                              os.environ.get("PREPAID_TEST_POSTGRES_URL",
                                             "postgresql://postgres@127.0.0.1:5432/test"))


@contextmanager
def scratch_schema(prefix: str = "bench"):
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_settings(schema: str, **overrides) -> Settings:
    return Settings(database_url=POSTGRES_URL, database_schema=schema, auto_migrate=True,
                    **overrides)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed_s = time.perf_counter() - self.start


@contextmanager
def serving_gc(thresholds: str, enabled: bool = True):
    """Python's collector as a serving process tunes it (``api.app.tune_gc``: what start-up
    made set aside, fewer collections) for the block, and back as it was after it,
    so that one measurement's objects do not stay frozen into the next."""
    if not enabled:
        yield
        return
    from api.app import tune_gc

    before = gc.get_threshold()
    gc.collect()
    tune_gc(thresholds)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        gc.collect()
