"""The database goes away and comes back (PostgreSQL behind a relay the test cuts): what a
cashier's client is told, how fast, and that writes resume as soon as it is back."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from bootstrap import Platform
from api.app import create_app
from tests.conftest import POSTGRES_URL, login
from tests.outage import Outage


@pytest.fixture
def outage():
    parts = urlsplit(POSTGRES_URL)
    relay = Outage((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield relay
    relay.close()


@pytest.fixture
def relayed(make_settings, outage, clock):
    """A platform whose every database connection goes through the relay."""
    direct = make_settings("postgres")
    parts = urlsplit(POSTGRES_URL)
    url = POSTGRES_URL.replace(f"{parts.hostname}:{parts.port or 5432}",
                               f"127.0.0.1:{outage.port}", 1)
    p = Platform(direct.model_copy(update={"database_url": url}), clock=clock)
    yield p
    if outage._listener is None:
        outage.restore()
    p.close()


@pytest.fixture
def api(relayed):
    with TestClient(create_app(relayed, background=False), headers=login(relayed)) as c:
        yield c


def open_account(api) -> str:
    made = api.post("/api/v1/accounts", json={"name": "Shop 1F-08"})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def top_up(api, account: str, key: str, amount: str = "88.80"):
    return api.post(f"/api/v1/accounts/{account}/top-ups",
                    json={"amount": amount, "channel": "cash"},
                    headers={"Idempotency-Key": key})


def wait_ready(api, within_s: float = 10) -> float:
    started = time.monotonic()
    while api.get("/health/ready").status_code != 200:
        assert time.monotonic() - started < within_s, "the database did not come back"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_committed_top_up_is_answered_as_done_when_the_read_models_fail(relayed, api, outage):
    """The event store commits; the database fails before the read models are updated.
    The answer is the top-up (never "nothing was acknowledged"); the same key again after
    the outage gives the same transaction; the money is there once."""
    account = open_account(api)
    real_catch_up = relayed.catch_up

    def fail_first(position=None):
        outage.cut()  # the database goes away between the commit and the catch-up
        relayed.catch_up = real_catch_up
        return real_catch_up(position)

    relayed.catch_up = fail_first
    key = str(uuid.uuid4())
    first = top_up(api, account, key)
    assert "nothing" not in first.text
    assert first.status_code == 201, first.text
    transaction = first.json()["transaction_id"]

    outage.restore()
    wait_ready(api)
    again = top_up(api, account, key)
    assert again.status_code == 201, again.text
    assert again.json()["transaction_id"] == transaction
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.get(f"/api/v1/accounts/{account}/balance").json()["balance"] == "88.80"
    entries = api.get(f"/api/v1/accounts/{account}/statement").json()["items"]
    assert [e["amount"] for e in entries] == ["88.80"]


def test_while_the_database_is_unreachable_answers_are_503_with_retry_after_and_fast(
        api, outage):
    account = open_account(api)
    assert api.get("/health").status_code == 200
    outage.cut()

    started = time.monotonic()
    failed = top_up(api, account, str(uuid.uuid4()))
    first_s = time.monotonic() - started
    assert failed.status_code == 503, failed.text
    assert failed.headers["Retry-After"].isdigit()
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert "same Idempotency-Key" in failed.json()["detail"]
    assert "nothing" not in failed.text
    assert first_s < 5

    time.sleep(1)  # the outage is known now: every answer is immediate
    for call in (lambda: top_up(api, account, str(uuid.uuid4())),
                 lambda: api.get("/api/v1/accounts"),
                 lambda: api.get(f"/api/v1/accounts/{account}/statement")):
        started = time.monotonic()
        answer = call()
        assert answer.status_code == 503, answer.text
        assert "Retry-After" in answer.headers
        assert time.monotonic() - started < 0.5

    assert api.get("/health").status_code == 503
    assert api.get("/health/ready").status_code == 503
    assert api.get("/health/live").status_code == 200


def test_writes_resume_within_seconds_of_the_database_returning(api, outage):
    """An outage of several seconds with traffic during it; once the database is back the
    first write goes through within two seconds (no waiting out a reconnect backoff)."""
    account = open_account(api)
    assert top_up(api, account, str(uuid.uuid4()), "1.00").status_code == 201
    outage.cut()
    ended = time.monotonic() + 10
    while time.monotonic() < ended:  # cashiers keep trying
        assert top_up(api, account, str(uuid.uuid4()), "1.00").status_code == 503
        time.sleep(0.5)
    outage.restore()
    back = time.monotonic()
    while True:
        answer = top_up(api, account, str(uuid.uuid4()), "1.00")
        if answer.status_code == 201:
            break
        assert answer.status_code == 503, answer.text
        assert time.monotonic() - back < 2.5, "writes still refused after the database returned"
        time.sleep(0.1)
    resumed_s = time.monotonic() - back
    assert resumed_s < 2.5
    assert api.get(f"/api/v1/accounts/{account}/balance").json()["balance"] == "2.00"
