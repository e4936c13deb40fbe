"""Reading stored events with less work per event, in the stock format.

The event store writes exactly what ``eventsourcing``'s ``JSONTranscoder`` and ``Mapper``
write (the encoding is theirs, unchanged) and reads it back to the same values: the same
tagged objects (``{"_type_": name, "_data_": ...}``) turned into the same types by the
same registered transcodings, and every upcaster applied as the stock mapper applies
them. What differs is only how much Python runs per event, which is most of what a
projection rebuild spends on reading:

* the JSON text is scanned with the C scanner directly (no whitespace regex around it)
  and each object goes through one small hook instead of the stock method's nested tries;
* a UUID tagged ``uuid_hex`` of 32 hex digits is built from its integer, without
  ``UUID.__init__`` parsing the string again (the same value, ``SafeUUID.unknown``), and
  a ``datetime_iso`` goes straight to ``datetime.fromisoformat``;
* per topic, the event class, its ``class_version`` and the originator id's converter
  are found once and kept;
* writing, the JSON encoder's ``default`` goes straight to a UUID's ``hex`` and a
  datetime's ``isoformat`` (the stock transcodings' own), other registered types to their
  transcoding, all by exact type as the stock method looks them up.

``tests/unit/test_transcoding.py`` checks both ways against the stock classes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID, SafeUUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def uuid_from_hex(data: str) -> UUID:
    """``UUID(data)`` for the 32 hex digits ``UUIDAsHex`` writes."""
    if type(data) is not str or len(data) != 32:
        return UUID(data)  # anything else takes the stock path, errors and all
    value = _new(UUID)
    _set(value, "int", int(data, 16))
    _set(value, "is_safe", _UNKNOWN)
    return value


def datetime_from_iso(data: str) -> datetime:
    """``DatetimeAsISO().decode(data)`` without its frame."""
    if type(data) is not str:
        return DatetimeAsISO().decode(data)
    return datetime.fromisoformat(data)


_uuid_hex = UUID.hex.fget


class LedgerTranscoder(JSONTranscoder):
    """``JSONTranscoder`` with the same encoding and decoding, cheaper both ways."""

    def __init__(self) -> None:
        super().__init__()
        self._decoders: dict[str, Any] = {}
        decoders = self._decoders

        def hook(d: dict[str, Any]) -> Any:
            if len(d) == 2 and "_type_" in d and "_data_" in d:
                name = d["_type_"]
                try:
                    decode = decoders[name]
                except KeyError:
                    raise TranscodingNotRegisteredError(
                        f"Data serialized with name '{name}' is not deserializable. "
                        "Please register a custom transcoding for this type.") from None
                return decode(d["_data_"])
            return d

        self.decoder = json.JSONDecoder(object_hook=hook)
        self._scan = self.decoder.scan_once

        # Encoding: the stock encoder and separators, with a default that goes straight
        # to each registered type's encoding (by exact type, as the stock one looks up).
        encoders: dict[type, tuple[str, Any]] = {}
        self._encoders = encoders
        stock_default = self._encode_obj

        def default(o: Any) -> Any:
            try:
                name, encode = encoders[type(o)]
            except KeyError:
                return stock_default(o)  # what it raises, for a type not registered
            return {"_type_": name, "_data_": encode(o)}

        self.encoder = json.JSONEncoder(default=default, separators=(",", ":"),
                                        ensure_ascii=False)

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        if transcoding.name == "uuid_hex" and type(transcoding) is UUIDAsHex:
            self._decoders[transcoding.name] = uuid_from_hex
            encode = _uuid_hex  # UUIDAsHex.encode: ``obj.hex``
        elif transcoding.name == "datetime_iso" and type(transcoding) is DatetimeAsISO:
            self._decoders[transcoding.name] = datetime_from_iso
            encode = datetime.isoformat  # DatetimeAsISO.encode: ``obj.isoformat()``
        else:
            self._decoders[transcoding.name] = transcoding.decode
            encode = transcoding.encode
        self._encoders[transcoding.type] = (transcoding.name, encode)

    def decode(self, data: bytes) -> Any:
        text = data.decode("utf8")
        try:
            obj, end = self._scan(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # leading or trailing whitespace, or not JSON: stock path
            return self.decoder.decode(text)
        return obj


class LedgerMapper(Mapper):
    """``Mapper`` that keeps, per topic, what it resolves for each event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._topics: dict[tuple[str, type], tuple[type, int, Any]] = {}

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        topic = stored_event.topic
        key = (topic, type(stored_event.originator_id))
        found = self._topics.get(key)
        if found is None:
            cls = resolve_topic(topic)
            found = self._topics[key] = (cls, getattr(cls, "class_version", 1),
                                         find_id_convertor(cls, key[1]))
        cls, class_version, id_convertor = found
        stored_state = stored_event.state
        try:
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            event_state: dict[str, Any] = self.transcoder.decode(stored_state)
        except Exception as e:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{topic}', "
                f"originator_id '{stored_event.originator_id}' and "
                f"originator_version {stored_event.originator_version}: {e}") from e
        event_state["originator_id"] = id_convertor(stored_event.originator_id)
        event_state["originator_version"] = stored_event.originator_version
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = _new(cls)
        _set(domain_event, "__dict__", event_state)
        return domain_event
