"""The 3DES secure frame: the MAC check vector, round trips and every refusal."""

import struct

import pytest

from adapters.secure_frame import (
    Command,
    RelayAction,
    Status,
    build_frame,
    diversify,
    open_frame,
    pad_method2,
    retail_mac,
    unpad_method2,
)

MASTER = bytes.fromhex("00112233445566778899AABBCCDDEEFF")  # test fixture, not a real key
METER = "202611210001"


def test_retail_mac_check_vector_from_the_protocol():
    key = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
    assert retail_mac(key, b"Hello World !!!!").hex().upper() == "F09B856213BAB83B"


@pytest.mark.parametrize("data", [b"", b"a", b"1234567", b"12345678", b"123456789"])
def test_padding_method_2_round_trips(data):
    padded = pad_method2(data)
    assert len(padded) % 8 == 0 and padded[len(data)] == 0x80
    assert unpad_method2(padded) == data


def test_keys_are_diversified_per_meter():
    one, other = diversify(MASTER, METER), diversify(MASTER, "202611210002")
    assert one.enc != other.enc and one.mac != other.mac and one.enc != one.mac
    assert "hidden" in repr(one)


def frame(counter=8, command=Command.RELAY, payload=bytes([RelayAction.TRIP]), meter=METER,
          keys=None):
    return build_frame(keys or diversify(MASTER, meter), meter, command, counter, payload)


def test_a_good_frame_opens_with_its_command_and_payload():
    keys = diversify(MASTER, METER)
    opened = open_frame(keys, METER, frame(), last_counter=7)
    assert opened.status == Status.OK
    assert opened.command == Command.RELAY and opened.payload == bytes([RelayAction.TRIP])
    tariff = build_frame(keys, METER, Command.TARIFF, 8, struct.pack(">4I", 1, 2, 3, 4))
    assert open_frame(keys, METER, tariff, 7).payload == struct.pack(">4I", 1, 2, 3, 4)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


@pytest.mark.parametrize("make, last, status", [
    (lambda f: flip(f, 20), 7, Status.BAD_MAC),             # ciphertext changed
    (lambda f: flip(f, len(f) - 3), 7, Status.BAD_MAC),      # MAC changed
    (lambda f: flip(f, 1), 7, Status.BAD_MAC),               # command byte changed
    (lambda f: flip(f, 6), 7, Status.BAD_MAC),               # header counter changed
    (lambda f: f, 8, Status.BAD_COUNTER),                    # replayed
    (lambda f: f, 5, Status.BAD_COUNTER),                    # skipped ahead
    (lambda f: f[:12], 7, Status.BAD_FORMAT),                # truncated header
    (lambda f: f[:20], 7, Status.BAD_FORMAT),                # truncated body
    (lambda f: bytes([2]) + f[1:], 7, Status.BAD_FORMAT),    # unknown version
])
def test_tampered_or_replayed_frames_are_refused(make, last, status):
    keys = diversify(MASTER, METER)
    assert open_frame(keys, METER, make(frame()), last).status == status


def test_a_frame_for_another_meter_is_refused():
    other = "202611219999"
    assert open_frame(diversify(MASTER, METER), METER, frame(meter=other), 7).status == \
        Status.WRONG_METER
    # Same meter number in the header but keys of another meter: the MAC fails.
    forged = build_frame(diversify(MASTER, other), METER, Command.RELAY, 8,
                         bytes([RelayAction.TRIP]))
    assert open_frame(diversify(MASTER, METER), METER, forged, 7).status == Status.BAD_MAC
