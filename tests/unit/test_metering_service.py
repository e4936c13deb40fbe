"""Readings billed on the in-memory event store, the reading store a fake port."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.tariff import TariffSpec
from ledger.app import Ledger
from ledger.metering import ReadingInput

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
STAFF = {"kind": "operator", "id": "staff"}


class FakeReadingStore:
    """The ReadingStore port: keeps rows in a list, answers each row 'new'."""

    def __init__(self) -> None:
        self.rows: list = []
        self.billed: list = []

    def store(self, rows):
        self.rows.extend(rows)
        return ["new"] * len(rows)

    def mark_billed(self, meter_id, read_ats):
        self.billed.append((meter_id, list(read_ats)))


@pytest.fixture
def world():
    readings = FakeReadingStore()
    ledger = Ledger(clock=lambda: T0 + timedelta(hours=5), group_commit_max_commands=1,
                    reading_store=readings)
    site = ledger.metering.create_site(name="Mall", actor=STAFF)
    tariff = ledger.metering.create_tariff(name="Flat", effective_from=T0 - timedelta(days=1),
                                           actor=STAFF, spec=TariffSpec.from_dict(
                                               {"kind": "flat", "price_1e4": 10000}))
    account = uuid.UUID(ledger.accounts.open_account(name="Noodle Bar", actor=STAFF)
                        .result["account_id"])
    ledger.accounts.top_up(account, amount_fen=10_000, channel="cash", actor=STAFF)
    ledger.metering.register_meter(meter_no="000000000301", kind="electricity", mode="prepaid",
                                   gateway_id=None, address=1, profile="ref-prepaid-v1",
                                   actor=STAFF,
                                   account_id=account, tariff_id=tariff.id, site_id=site.id,
                                   tariff_from=T0 - timedelta(days=1))
    yield ledger, readings, account
    ledger.close()


def test_readings_are_stored_through_the_port_and_charged_once(world):
    ledger, readings, account = world
    batch = [ReadingInput("000000000301", T0, 100_000),
             ReadingInput("000000000301", T0 + timedelta(hours=1), 102_000)]
    first = ledger.metering.ingest_readings(batch)
    again = ledger.metering.ingest_readings(batch)
    assert [a["billing"] for a in first.answers] == ["started", "charged"]
    assert [a["charge_fen"] for a in first.answers] == [0, 2000]  # 20.00 kWh at 1.0000
    assert [a["charge_fen"] for a in again.answers] == [0, 0]
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 10_000 - 2000
    assert len(readings.rows) == 4  # the port saw every row; billing decided once


def test_a_reading_from_the_future_is_refused_and_charges_nothing(world):
    ledger, readings, account = world
    answers = ledger.metering.ingest_readings(
        [ReadingInput("000000000301", T0 + timedelta(days=1), 100_000)]).answers
    assert answers[0]["status"] == "rejected"
    assert ledger.accounts.get_account(account).balance_fen("electricity") == 10_000
