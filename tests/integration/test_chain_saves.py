"""Saves link their chain entries in the database (small saves, one round trip) or in
Python (large ones): the chain is the same either way, and a refused save leaves nothing."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

import ledger.chain as chain
from bootstrap import Platform
from ledger.chain import GENESIS, entry_hash, verify_chain


def _events(count: int, aggregate: uuid.UUID | None = None, first: int = 1):
    aggregate = aggregate or uuid.uuid4()
    return [StoredEvent(aggregate, version, "tests:Thing.Happened",
                        f'{{"n":{version},"text":"铺位 {version}"}}'.encode())
            for version in range(first, first + count)]


@pytest.fixture
def recorder(make_settings):
    platform = Platform(make_settings("postgres"))
    yield platform.ledger.recorder
    platform.close()


def test_small_and_large_saves_chain_alike_and_verify(recorder, monkeypatch):
    assert isinstance(recorder, chain.ChainedPostgresRecorder)
    before = recorder.max_notification_id() or 0
    saves = [_events(3), _events(chain.LINK_IN_DATABASE_MAX + 5), _events(1), _events(40)]
    all_ids = []
    for stored in saves:
        ids = recorder.insert_events(stored)
        assert ids == sorted(ids) and len(ids) == len(stored)
        all_ids.append(ids)
    # Every entry is the published hash over the previous one and its event, whichever
    # side linked it.
    entries = dict(recorder.chain_entries(0, 10_000))
    previous = entries[before] if before else GENESIS
    for stored, ids in zip(saves, all_ids):
        for position, event in zip(ids, stored):
            previous = entry_hash(previous, position, event.originator_id,
                                  event.originator_version, event.topic, event.state)
            assert entries[position] == previous
    assert verify_chain(recorder)["ok"] is True


def test_a_refused_small_save_stores_neither_events_nor_chain_entries(recorder):
    aggregate = uuid.uuid4()
    first = recorder.insert_events(_events(2, aggregate))
    head = recorder.chain_entries(0, 10_000)[-1]
    with pytest.raises(IntegrityError):  # version 2 is taken: the whole save is refused
        recorder.insert_events(_events(1, uuid.uuid4()) + _events(2, aggregate, first=2))
    assert recorder.max_notification_id() == max(first)
    assert recorder.chain_entries(0, 10_000)[-1] == head
    # The connections are usable afterwards, and the chain goes on from the same head.
    later = recorder.insert_events(_events(1, aggregate, first=3))
    assert later[0] > max(first)
    assert verify_chain(recorder)["ok"] is True
