"""Meter events stored before their second version still load, and mean what they meant."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from eventsourcing.application import Application

from domain.meter import FROM_FIRST_READING, Meter, Reading

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
ZONE = ZoneInfo("Asia/Shanghai")


def _as_version_1(stored, drop: tuple[str, ...]):
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    for name in drop:
        del state[name]
    return replace(stored, state=json.dumps(state).encode())


def test_version_1_tariff_assignments_and_holds_load_and_a_held_reading_waits():
    meter = Meter.register(meter_no="000000000401", kind="electricity", mode="prepaid",
                           site_id=None, gateway_id=None, address=1, profile="ref-prepaid-v1",
                           ct_ratio=1, actor={})
    tariff_id = meter.id  # any id: the tariff is not looked at here
    meter.assign_tariff(tariff_id, T0 + timedelta(hours=4), {})
    meter.take_reading(Reading(T0, 100), tariff_at=lambda _: None, tariff_changes=[],
                       zone=ZONE, max_wh_per_hour=10**6)
    held = meter.take_reading(Reading(T0 + timedelta(hours=1), 110),
                              tariff_at=lambda _: None, tariff_changes=[], zone=ZONE,
                              max_wh_per_hour=10**6)
    assert held.status == "held"
    source = Application()
    source.save(meter)
    stored = source.recorder.select_events(meter.id)
    topics = [s.topic.rsplit(".", 1)[-1] for s in stored]
    assert topics == ["Registered", "TariffAssigned", "ReadingStarted", "ReadingHeldForReview"]
    old = [stored[0], _as_version_1(stored[1], ("from_first_reading",)), stored[2],
           _as_version_1(stored[3], ("bands", "awaiting_tariff"))]
    target = Application()
    target.recorder.insert_events(old)
    loaded = target.repository.get(meter.id)
    assert loaded.tariffs == [(T0 + timedelta(hours=4), tariff_id)]
    assert loaded.waiting == [{"read_at": T0 + timedelta(hours=1), "total": 110, "bands": None}]


def test_a_tariff_from_the_first_reading_and_a_backdated_one_until_the_next():
    meter = Meter.register(meter_no="000000000402", kind="electricity", mode="prepaid",
                           site_id=None, gateway_id=None, address=1, profile="ref-prepaid-v1",
                           ct_ratio=1, actor={})
    a, b = Meter.register(meter_no="000000000403", kind="electricity", mode="prepaid",
                          site_id=None, gateway_id=None, address=1, profile="ref-prepaid-v1",
                          ct_ratio=1, actor={}).id, meter.id
    meter.assign_tariff(a, T0, {}, from_first_reading=True)
    assert meter.tariffs == [(FROM_FIRST_READING, a)]
    assert meter.tariff_at(T0 - timedelta(days=400)) == a
    meter.assign_tariff(b, T0 + timedelta(days=2), {})
    meter.assign_tariff(a, T0 + timedelta(days=1), {})  # before b: until b
    meter.assign_tariff(a, T0 + timedelta(days=2), {})  # the same instant: replaced
    assert meter.tariffs == [(FROM_FIRST_READING, a), (T0 + timedelta(days=1), a),
                             (T0 + timedelta(days=2), a)]
    assert meter.tariff_at(T0 + timedelta(days=3)) == a
