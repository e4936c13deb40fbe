"""The chain's entry hash keeps its published definition (auditors recompute it)."""

from __future__ import annotations

import hashlib
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.chain import GENESIS, _chain, entry_hash

AGGREGATE = UUID("12345678-1234-5678-1234-567812345678")


def by_definition(previous: bytes, position: int, aggregate: UUID, version: int, topic: str,
                  state: bytes) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(f"|{position}|{aggregate}|{version}|{topic}|".encode())
    digest.update(hashlib.sha256(state).digest())
    return digest.digest()


def test_entry_hash_is_sha256_of_previous_position_event_and_state_digest():
    state = '{"name":"铺位 1"}'.encode()
    assert entry_hash(GENESIS, 7, AGGREGATE, 3, "domain.account:Account.Opened", state) == \
        by_definition(GENESIS, 7, AGGREGATE, 3, "domain.account:Account.Opened", state)
    assert entry_hash(GENESIS, 7, str(AGGREGATE), 3, "t", state) == \
        by_definition(GENESIS, 7, AGGREGATE, 3, "t", state)


def test_a_save_chains_its_events_in_position_order():
    events = [StoredEvent(AGGREGATE, version, "t", bytes([version])) for version in (1, 2, 3)]
    ids = [12, 10, 11]  # positions as the database returned them
    previous, expected = b"\x01" * 32, []
    for position, event in sorted(zip(ids, events), key=lambda pair: pair[0]):
        previous = by_definition(previous, position, AGGREGATE, event.originator_version,
                                 "t", event.state)
        expected.append((position, previous))
    assert _chain(b"\x01" * 32, ids, events) == expected
