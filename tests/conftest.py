"""Shared fixtures. The application and API tests run on SQLite and on PostgreSQL.

PostgreSQL comes from ``PREPAID_TEST_POSTGRES_URL`` (default: the local server, database
``test``). Each test gets its own schema, dropped afterwards. When the server cannot be
reached the PostgreSQL tests fail rather than skip: the test command starts it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from bootstrap import Platform
from ledger.config import Settings
from projections.accounts.tables import VIEW_TABLES as ACCOUNT_TABLES
from projections.alerts.tables import VIEW_TABLES as ALERT_TABLES
from projections.devices.tables import VIEW_TABLES as DEVICE_TABLES
from projections.metering.tables import VIEW_TABLES as METERING_TABLES
from projections.payments.tables import VIEW_TABLES as PAYMENT_TABLES
from projections.property.tables import VIEW_TABLES as PROPERTY_TABLES

POSTGRES_URL = os.environ.get("PREPAID_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


class FrozenClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_settings(tmp_path) -> Iterator:
    """Settings for a fresh database on the named backend; schemas are cleaned up."""
    schemas: list[str] = []

    def make(backend: str, **overrides) -> Settings:
        # Cheap password hashing keeps logins fast in tests; second-person approvals are
        # switched off except in the tests of approvals (tests/integration/test_access.py).
        overrides = {"argon2_time_cost": 1, "argon2_memory_kib": 1024,
                     "approvals_required": "", **overrides}
        if backend == "sqlite":
            return Settings(database_url=f"sqlite:///{tmp_path}/prepaid.db", auto_migrate=True,
                            **overrides)
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        return Settings(database_url=POSTGRES_URL, database_schema=schema, auto_migrate=True,
                        postgres_pool_size=4, **overrides)

    yield make
    for schema in schemas:
        _drop_schema(schema)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(backend, make_settings) -> Settings:
    return make_settings(backend)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def platform(settings, clock) -> Iterator[Platform]:
    p = Platform(settings, clock=clock)
    yield p
    p.close()


ADMIN = "test-admin"
ADMIN_PASSWORD = "test-admin-password"  # test fixture only


def login(platform: Platform, username: str = ADMIN, password: str = ADMIN_PASSWORD,
          roles: tuple[str, ...] = ("admin",), site_ids: tuple[str, ...] = (),
          account_ids: tuple[str, ...] = ()) -> dict[str, str]:
    """Create the login if it does not exist yet; answer its Authorization header."""
    if platform.ledger.access.find_operator(username) is None:
        outcome = platform.ledger.access.register_operator(
            username=username, password_hash=platform.auth.hash_password(password),
            roles=list(roles), site_ids=list(site_ids), account_ids=list(account_ids),
            actor={"kind": "console", "id": "tests"})
        platform.catch_up(outcome.position)
    found = platform.ledger.access.find_operator(username)
    token, _ = platform.auth.login(username, password,
                                   lambda _: (found.id, found.password_hash, found.active,
                                             found.version))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(platform) -> Iterator[TestClient]:
    """The API, called as an admin."""
    with TestClient(create_app(platform, background=False), headers=login(platform)) as c:
        yield c


@pytest.fixture
def anonymous(platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, background=False)) as c:
        yield c


def read_models(platform: Platform) -> dict[str, list[tuple]]:
    """Every read-model row, without surrogate ids, in a stable order."""
    out = {}
    with platform.engines.reader.connect() as conn:
        for table in (ACCOUNT_TABLES + METERING_TABLES + DEVICE_TABLES + PAYMENT_TABLES
                      + PROPERTY_TABLES + ALERT_TABLES):
            surrogate = table.name in ("statement_entries", "journal_postings", "meter_alerts")
            columns = [c for c in table.c if not (surrogate and c.name == "id")]
            rows = conn.execute(select(*columns)).all()
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out
