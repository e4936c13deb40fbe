"""The DL/T 645-2007 codec: worked frames, round trips, and an implementation we did not write.

The independent implementation is the ``dlt645`` package from PyPI (its frame codec and
its simulated meter, ``MeterServerService``). It agrees with the standard on the 0x33
offset, the checksum, data identifier order and BCD values. It puts the address on the
wire in reading order, where the standard (and every meter) sends it low byte first, so
its meter is given the address in wire order; the address order itself is checked
against the standard's worked example below.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import dlt645 as d

dlt645_package = pytest.importorskip("dlt645")


def hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (what, frame, bytes on the wire without wake-up): the first three are published frames;
# the answers below them were worked out by hand from the rules in PROTOCOLS.md.
WORKED = [
    ("meter 123456789012 goes on the wire low byte first",
     d.Frame("123456789012", d.Control.READ_DATA, bytes.fromhex("00000100")),
     "68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16"),
    ("read forward active energy of meter 000000000001 (a frame published with most "
     "DL/T 645 tools)",
     d.read_request("000000000001", d.DataId.FORWARD_ACTIVE_TOTAL),
     "68 01 00 00 00 00 00 68 11 04 33 33 34 33 B3 16"),
    ("read the address of whoever is on the bus",
     d.read_address_request(),
     "68 AA AA AA AA AA AA 68 13 00 DF 16"),
    ("status word 3 answer: relay open, keep-power off, money prepaid",
     d.Frame("000000000001", 0x91, bytes.fromhex("03050004") + (0x0210).to_bytes(2, "little")),
     "68 01 00 00 00 00 00 68 91 06 36 38 33 37 43 35 B8 16"),
    ("relay control answered normally: 9C, no data",
     d.Frame("000000000001", 0x9C, b""),
     "68 01 00 00 00 00 00 68 9C 00 6D 16"),
    ("relay control refused: DC with error byte 04 (password / authorisation)",
     d.Frame("000000000001", 0xDC, b"\x04"),
     "68 01 00 00 00 00 00 68 DC 01 37 E5 16"),
]


@pytest.mark.parametrize("what, frame, wire", WORKED, ids=[w[0][:40] for w in WORKED])
def test_worked_frames_build_and_parse(what, frame, wire):
    assert d.build(frame, wake_up=False) == hex_bytes(wire)
    assert d.build(frame) == b"\xfe\xfe\xfe\xfe" + hex_bytes(wire)
    assert d.parse(hex_bytes(wire)) == frame
    assert d.parse(b"\xfe\xfe" + hex_bytes(wire)) == frame


@pytest.mark.parametrize("what, frame, wire", WORKED, ids=[w[0][:40] for w in WORKED])
def test_worked_frames_agree_with_the_dlt645_package(what, frame, wire):
    from dlt645 import DLT645Protocol
    theirs = DLT645Protocol.build_frame(d.encode_address(frame.address), frame.control,
                                        frame.data, preamble_count=4)
    assert bytes(theirs) == d.build(frame)
    parsed = DLT645Protocol.deserialize(d.build(frame))
    assert bytes(parsed.data) == frame.data and parsed.ctrl_code == frame.control


def test_bcd_values_with_sign_bits():
    assert d.bcd_encode(12345678, 4) == hex_bytes("78 56 34 12")
    assert d.bcd_decode(hex_bytes("78 56 34 12")) == 12345678
    assert d.bcd_encode(-1234, 3, signed=True) == hex_bytes("34 12 80")
    assert d.bcd_decode(hex_bytes("34 12 80"), signed=True) == -1234
    assert d.bcd_decode(hex_bytes("34 12 80")) != -1234  # unsigned formats have no sign
    with pytest.raises(d.FrameError):
        d.bcd_decode(hex_bytes("7A"))
    with pytest.raises(d.FrameError):
        d.bcd_encode(100, 1)


def test_broken_frames_are_refused():
    good = hex_bytes("68 01 00 00 00 00 00 68 11 04 33 33 34 33 B3 16")
    for broken, why in [(good[:-1], "cut short"), (good[:-2] + b"\xb4\x16", "checksum"),
                        (good[:-1] + b"\x17", "closing 16"), (good + b"\x00", "after"),
                        (b"\x00" + good, "starts with 68")]:
        with pytest.raises(d.FrameError, match=why):
            d.parse(broken)


def test_deframer_finds_frames_in_a_noisy_stream_split_anywhere():
    one = d.build(d.read_request("123456789012", d.DataId.VOLTAGE_A))
    two = d.build(d.Frame("123456789012", 0x9C))
    stream = b"HEARTBEAT\x68\x68\x00" + one + b"\x01\x02" + two
    for split in range(len(stream)):
        deframer = d.Deframer()
        frames = deframer.feed(stream[:split]) + deframer.feed(stream[split:])
        assert frames == [d.parse(one), d.parse(two)]


def meter(values: dict[int, float] | None = None):
    """The dlt645 package's simulated meter at address 123456789012."""
    from dlt645 import MeterServerService
    simulated = MeterServerService(None)
    simulated.set_address(d.encode_address("123456789012"))
    for data_id, value in (values or {}).items():
        setter = simulated.set_00 if data_id >> 24 == 0 else simulated.set_02
        assert setter(data_id, value)
    return simulated


def ask(simulated, request: d.Frame) -> d.Frame:
    from dlt645 import DLT645Protocol
    answer = simulated.handle_request(DLT645Protocol.deserialize(d.build(request)))
    return d.parse(bytes(answer))


@pytest.mark.parametrize("data_id, theirs, ours", [
    (d.DataId.FORWARD_ACTIVE_TOTAL, 123456.78, 12345678),
    (d.DataId.COMBINED_ACTIVE_TOTAL, 42.5, 4250),
    (d.DataId.VOLTAGE_A, 220.1, 2201),
    (d.DataId.CURRENT_A, -1.234, -1234),
    (d.DataId.ACTIVE_POWER_TOTAL, 1.2345, 12345),
])
def test_reads_decoded_from_the_dlt645_package_meter(data_id, theirs, ours):
    request = d.read_request("123456789012", data_id)
    answer = ask(meter({data_id: theirs}), request)
    assert d.read_values(request, answer) == [ours]


def test_an_error_answer_from_the_package_meter_is_a_refusal_with_its_reason():
    request = d.read_request("123456789012", d.DataId.REMAINING_MONEY)
    with pytest.raises(d.MeterRefused, match="no data requested"):
        d.read_values(request, ask(meter(), request))


def test_an_answer_from_another_meter_never_counts():
    request = d.read_request("123456789012", d.DataId.STATUS_WORD_3)
    other = d.read_answer(d.read_request("123456789013", d.DataId.STATUS_WORD_3), [0x10])
    with pytest.raises(d.FrameError, match="from meter 123456789013"):
        d.read_values(request, other)
    wrong_item = d.read_answer(d.read_request("123456789012", d.DataId.VOLTAGE_A), [2201])
    with pytest.raises(d.FrameError, match="data identifier"):
        d.read_values(request, wrong_item)


def test_status_word_3_bits():
    word = d.StatusWord3(1 << 4 | 1 << 12 | 0b10 << 8)
    assert word.relay_open and word.keep_power and word.meter_type == "money_prepaid"
    closed = d.StatusWord3(0b01 << 8)
    assert not closed.relay_open and not closed.keep_power
    assert closed.meter_type == "energy_prepaid"


def test_relay_control_frame_layout_and_secrets_kept_out_of_repr():
    credentials = d.ControlCredentials(0x02, bytes.fromhex("123456"),
                                       bytes.fromhex("01020304"))
    frame = d.relay_request("123456789012", d.RelayAction.TRIP, credentials,
                            datetime(2026, 12, 1, 20, 15, 30))
    assert frame.control == 0x1C
    assert frame.data == hex_bytes("02 123456 01020304 1A 00 30 15 20 01 12 26")
    assert "123456" not in repr(credentials)
    refused = d.error_answer(frame, 0x04)
    with pytest.raises(d.MeterRefused, match="ESAM"):
        d.check_answer(frame, refused)


def test_broadcast_time():
    frame = d.broadcast_time_request(datetime(2026, 12, 1, 8, 5, 9))
    assert d.build(frame, wake_up=False).startswith(hex_bytes("68 99 99 99 99 99 99 68 08 06"))
    assert frame.data == hex_bytes("09 05 08 01 12 26")


addresses = st.text("0123456789", min_size=12, max_size=12)


@given(addresses, st.sampled_from([0x11, 0x91, 0x1C, 0x9C, 0xD1, 0x14]),
       st.binary(max_size=d.MAX_DATA_BYTES), st.booleans())
def test_parse_of_build_is_identity(address, control, data, wake_up):
    frame = d.Frame(address, control, data)
    assert d.parse(d.build(frame, wake_up=wake_up)) == frame
    assert d.Deframer().feed(d.build(frame, wake_up=wake_up)) == [frame]


@given(st.integers(0, 10**8 - 1), st.integers(-(10**5 - 1), 10**5 - 1))
def test_bcd_round_trip(unsigned, signed):
    assert d.bcd_decode(d.bcd_encode(unsigned, 4)) == unsigned
    assert d.bcd_decode(d.bcd_encode(signed, 3, signed=True), signed=True) == signed


@given(addresses, st.integers(0, 10**8 - 1))
def test_read_answers_round_trip(address, value):
    request = d.read_request(address, d.DataId.FORWARD_ACTIVE_TOTAL)
    assert d.read_values(request, d.parse(d.build(d.read_answer(request, [value])))) == [value]
