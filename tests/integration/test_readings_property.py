"""For any readings in any arrival order, with duplicates, the total charged equals the
rounded price of the total energy, to the fen (within one billing month)."""

from __future__ import annotations

import random
import tempfile
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap import Platform
from domain.tariff import TariffSpec, round_cost_to_fen
from ledger.config import Settings
from ledger.metering import ReadingInput
from tests.conftest import FrozenClock

START = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)  # 08:00 on 1 March in Shanghai


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.integers(min_value=1, max_value=240),
                                st.integers(min_value=0, max_value=5_000)),
                      min_size=1, max_size=40),
       price=st.integers(min_value=1, max_value=30_000),
       seed=st.integers(min_value=0, max_value=2**32 - 1),
       chunk=st.integers(min_value=1, max_value=10))
def test_any_order_with_duplicates_charges_the_rounded_total(steps, price, seed, chunk):
    with tempfile.TemporaryDirectory() as folder:
        clock = FrozenClock(START + timedelta(days=30))
        # Plausibility limits are tested elsewhere: here every interval must be billed.
        platform = Platform(Settings(database_url=f"sqlite:///{folder}/p.db",
                                     max_plausible_kw=10**9), clock=clock)
        try:
            ledger = platform.ledger
            account = uuid.UUID(ledger.accounts.open_account(name="Shop",
                                                             actor={}).result["account_id"])
            tariff = ledger.metering.create_tariff(name="t", spec=TariffSpec.from_dict(
                {"kind": "flat", "price_1e4": price}), effective_from=START, actor={})
            ledger.metering.register_meter(meter_no="000000000001", kind="electricity",
                                           mode="prepaid",
                                           gateway_id=None, address=1, profile="ref-prepaid-v1",
                                           account_id=account, tariff_id=tariff.id,
                                           tariff_from=START,
                                           actor={})
            readings, when, total = [ReadingInput("000000000001", START, 0)], START, 0
            for minutes, units in steps:  # units of 0.01 kWh
                when += timedelta(minutes=minutes)
                total += units
                readings.append(ReadingInput("000000000001", when, total))
            rng = random.Random(seed)
            arrivals = readings + rng.sample(readings, k=len(readings) // 2)
            rng.shuffle(arrivals)
            # The earliest reading must come first for all energy to be billed: it is
            # the meter's starting point. Everything after it may come in any order.
            arrivals.remove(readings[0])
            arrivals.insert(0, readings[0])
            charged = 0
            for start in range(0, len(arrivals), chunk):
                answers = ledger.metering.ingest_readings(arrivals[start:start + chunk]).answers
                charged += sum(a["charge_fen"] for a in answers)
                assert all(a["status"] != "rejected" for a in answers), answers
            meter_id = ledger.metering.get_meter_id("000000000001")
            last_billed = ledger.metering.get_meter(meter_id).last["total"]
            assert last_billed == total
            assert charged == round_cost_to_fen(total * 10 * price)
            assert -ledger.accounts.get_account(account).balance_fen("electricity") == charged
        finally:
            platform.close()
