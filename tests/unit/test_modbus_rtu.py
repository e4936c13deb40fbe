"""Modbus RTU framing for transparent gateways, checked against pymodbus' own RTU framer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import (ReadHoldingRegistersRequest,
                                           ReadHoldingRegistersResponse,
                                           WriteMultipleRegistersRequest)

from adapters import modbus_rtu as rtu


def test_a_published_frame():
    # Read 10 holding registers from 0 at unit 1: the example in most Modbus references.
    assert rtu.read_registers_request(1, 0, 10) == bytes.fromhex("01 03 00 00 00 0A C5 CD")


@given(st.integers(1, 247), st.integers(0, 0xFFFF - 125), st.integers(1, 125))
def test_read_requests_match_pymodbus(unit, address, count):
    theirs = FramerRTU(DecodePDU(False)).buildFrame(
        ReadHoldingRegistersRequest(address=address, count=count, dev_id=unit))
    assert rtu.read_registers_request(unit, address, count) == theirs


@given(st.integers(1, 247), st.integers(0, 0xFF00),
       st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123))
def test_write_requests_match_pymodbus(unit, address, values):
    theirs = FramerRTU(DecodePDU(False)).buildFrame(
        WriteMultipleRegistersRequest(address=address, registers=values, dev_id=unit))
    assert rtu.write_registers_request(unit, address, values) == theirs


@given(st.integers(1, 247), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_pymodbus_answers_are_read_back(unit, values):
    request = rtu.read_registers_request(unit, 0, len(values))
    answer = FramerRTU(DecodePDU(True)).buildFrame(
        ReadHoldingRegistersResponse(registers=values, dev_id=unit))
    assert rtu.answer_length(request, answer[:3]) == len(answer)
    assert rtu.registers(request, answer) == values
    assert answer == rtu.read_answer(request, values)
    # and what we build as the simulated meter's answer, pymodbus reads as the same values
    used, pdu = FramerRTU(DecodePDU(False)).handleFrame(rtu.read_answer(request, values), 0, 0)
    assert used == len(answer) and pdu.registers == values and pdu.dev_id == unit


def test_wrong_unit_bad_crc_and_exceptions_are_refused():
    request = rtu.read_registers_request(5, 0, 2)
    good = rtu.read_answer(request, [1, 2])
    with pytest.raises(rtu.RtuFrameError, match="CRC"):
        rtu.registers(request, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(rtu.RtuFrameError, match="unit 6"):
        rtu.registers(request, rtu.read_answer(rtu.read_registers_request(6, 0, 2), [1, 2]))
    exception = rtu.frame(5, bytes([0x83, 0x02]))
    assert rtu.answer_length(request, exception[:2]) == 5
    with pytest.raises(rtu.ModbusException, match="illegal data address"):
        rtu.registers(request, exception)
    with pytest.raises(rtu.RtuFrameError, match="expected 4"):
        rtu.registers(request, rtu.read_answer(rtu.read_registers_request(5, 0, 3), [1, 2, 3]))
