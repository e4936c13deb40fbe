"""The event store reads stored events to exactly what the stock ``eventsourcing`` mapper
reads them to, and writes exactly the bytes it writes (ledger/core/transcoding.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)
from eventsourcing.utils import get_topic

from domain.account import Account, MoneyContext
from domain.chart import Wallet
from domain.meter import Meter
from domain.payment import RejectedNotification
from domain.transaction import Transaction
from ledger.core.store import EventStore
from ledger.core.transcoding import LedgerMapper, LedgerTranscoder, uuid_from_hex


def stock() -> Mapper:
    transcoder = JSONTranscoder()
    EventStore.register_transcodings(None, transcoder)
    return Mapper(transcoder=transcoder)


def some_events() -> list:
    account = Account.open(account_id=uuid.uuid4(), name="Shop 3", site_id="s1", unit="3F-12",
                           contact="王先生", phone=None, area_m2="35.5",
                           actor={"kind": "operator", "id": "op-1", "name": "Li"},
                           idempotency_key="k", request_fingerprint="f")
    shanghai = timezone(timedelta(hours=8))
    events = []
    for n, at in enumerate([datetime(2026, 3, 1, 9, 30, tzinfo=shanghai),
                            datetime(2026, 3, 1, 1, 30, 0, 123456, tzinfo=timezone.utc)]):
        ctx = MoneyContext(uuid.uuid4(), at, at, {"kind": "api_key", "id": str(n)})
        event = account.top_up(ctx, wallet=Wallet.electricity, amount_fen=12345 + n,
                               channel="cash", reference="收据 7")
        record = Transaction.record(
            transaction_id=ctx.transaction_id, account_id=account.id, kind="top_up",
            wallet="electricity", amount_fen=12345 + n, postings=event.postings,
            effective_at=at, recorded_at=at, actor={}, idempotency_key=None,
            request_fingerprint="x", corrects=None,
            result={"nested": {"at": at, "ids": [uuid.uuid4()], "d": Decimal("1.10")}})
        events += record.collect_events()
    return account.collect_events() + events


def test_the_same_bytes_are_written_and_the_same_events_read_back() -> None:
    ours, theirs = EventStore().mapper, stock()
    assert isinstance(ours, LedgerMapper) and isinstance(ours.transcoder, LedgerTranscoder)
    for event in some_events():
        stored = theirs.to_stored_event(event)
        assert ours.to_stored_event(event) == stored
        a, b = ours.to_domain_event(stored), theirs.to_domain_event(stored)
        assert type(a) is type(b) and a.__dict__ == b.__dict__
        for name, value in b.__dict__.items():  # the same types, not only equal values
            assert type(a.__dict__[name]) is type(value), name
        assert a.originator_id == event.originator_id and a.__dict__ == event.__dict__


@pytest.mark.parametrize("cls, state, added", [
    (Meter.TariffAssigned, {"tariff_id": {"_type_": "uuid_hex", "_data_": "0" * 31 + "7"},
                            "effective_from": {"_type_": "datetime_iso",
                                               "_data_": "2026-01-01T00:00:00+00:00"},
                            "actor": {}, "timestamp": {"_type_": "datetime_iso",
                                                       "_data_": "2026-01-01T00:00:00+00:00"}},
     {"from_first_reading": False}),
    (RejectedNotification.Recorded,
     {"provider": "alipay", "reason": "unknown order", "headers": {}, "raw_body": "a=1",
      "received_at": {"_type_": "datetime_iso", "_data_": "2026-01-01T08:00:00+08:00"},
      "timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},
      "originator_topic": get_topic(RejectedNotification)},
     {"body_excerpt": "a=1", "body_sha256": None, "body_bytes": None}),
])
def test_events_stored_in_an_older_version_are_upcast(cls, state, added) -> None:
    stored = StoredEvent(originator_id=uuid.uuid4(), originator_version=3,
                         topic=get_topic(cls), state=json.dumps(state).encode())
    ours, theirs = EventStore().mapper.to_domain_event(stored), \
        stock().to_domain_event(stored)
    assert ours.__dict__ == theirs.__dict__
    for name, value in added.items():
        assert getattr(ours, name) == value
    assert "raw_body" not in ours.__dict__ and "class_version" not in ours.__dict__


def test_uuids_and_odd_input_decode_as_the_stock_transcoder_decodes_them() -> None:
    for text in ["0123456789abcdef0123456789ABCDEF", "f" * 32, "0" * 32]:
        made = uuid_from_hex(text)
        assert made == UUID(text) and made.int == UUID(text).int
        assert str(made) == str(UUID(text)) and hash(made) == hash(UUID(text))
        assert made.is_safe == UUID(text).is_safe
    with pytest.raises(ValueError):
        uuid_from_hex("z" * 32)
    ours, theirs = EventStore().mapper.transcoder, stock().transcoder
    for data in [b' {"a": 1} ', b'[{"_type_":"decimal_str","_data_":"2.50"}]',
                 b'{"_type_":"uuid_hex","_data_":"12345678-1234-5678-1234-567812345678"}',
                 b'{"_type_":"x"}']:
        assert ours.decode(data) == theirs.decode(data)
    for bad in [b'{"_type_":"nope","_data_":1}', b'{"a":1} x', b""]:
        with pytest.raises(Exception) as theirs_error:
            theirs.decode(bad)
        with pytest.raises(theirs_error.type):
            ours.decode(bad)
    stored = StoredEvent(uuid.uuid4(), 1, get_topic(Meter.TariffAssigned), b"not json")
    with pytest.raises(MapperDeserialisationError):
        EventStore().mapper.to_domain_event(stored)


def test_what_the_stock_encoder_refuses_is_refused_alike() -> None:
    from eventsourcing.persistence import TranscodingNotRegisteredError

    class OwnUUID(UUID):  # not the registered type itself: the stock lookup is exact
        pass

    ours, theirs = EventStore().mapper.transcoder, stock().transcoder
    for value in (object(), OwnUUID(int=7), {1, 2}):
        for transcoder in (ours, theirs):
            with pytest.raises(TranscodingNotRegisteredError):
                transcoder.encode({"x": value})
    shanghai = timezone(timedelta(hours=8))
    state = {"ids": [uuid.uuid4(), uuid.UUID(int=0)], "at": datetime(2026, 1, 1, tzinfo=shanghai),
             "naive": datetime(2026, 1, 1, 2, 3, 4, 5), "d": Decimal("-0.10"), "s": "电"}
    assert ours.encode(state) == theirs.encode(state)
