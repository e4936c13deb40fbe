"""Modbus RTU frames for transparent serial servers and DTUs, as pure functions.

Through a transparent gateway the platform writes the RTU frame itself, unit id || PDU ||
CRC-16/MODBUS (low byte first), and must find the answer's end in the byte stream by its
length: RTU has no delimiter but the silence after the frame, and a TCP socket does not
keep that silence. The master knows what it asked, so it knows the answer's length:
function 03/04 carry a byte count, 06/10 echo a fixed 4 bytes, an exception is 5 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
EXCEPTION_BIT = 0x80
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123

EXCEPTIONS = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x0B: "gateway target device failed to respond",
}


class RtuFrameError(ValueError):
    """Bytes that are not the RTU answer expected (bad CRC, other unit, cut short)."""


class ModbusException(Exception):
    def __init__(self, function: int, code: int) -> None:
        self.function = function
        self.code = code
        super().__init__(f"modbus exception {code:#04x} ({EXCEPTIONS.get(code, 'unknown')}) "
                         f"to function {function:#04x}")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def frame(unit: int, pdu: bytes) -> bytes:
    if not 0 <= unit <= 247:
        raise RtuFrameError(f"unit id {unit} is outside 0..247")
    body = bytes([unit]) + pdu
    return body + crc16(body).to_bytes(2, "little")


def read_registers_request(unit: int, address: int, count: int,
                           function: int = READ_HOLDING) -> bytes:
    if not 1 <= count <= MAX_READ_REGISTERS:
        raise RtuFrameError(f"a read is 1..{MAX_READ_REGISTERS} registers, not {count}")
    return frame(unit, bytes([function]) + address.to_bytes(2, "big") + count.to_bytes(2, "big"))


def write_registers_request(unit: int, address: int, values: list[int]) -> bytes:
    if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
        raise RtuFrameError(f"a write is 1..{MAX_WRITE_REGISTERS} registers")
    payload = b"".join(v.to_bytes(2, "big") for v in values)
    return frame(unit, bytes([WRITE_MULTIPLE]) + address.to_bytes(2, "big")
                 + len(values).to_bytes(2, "big") + bytes([len(payload)]) + payload)


def answer_length(request: bytes, head: bytes) -> int | None:
    """Total length of the answer to ``request`` once its first bytes ``head`` are in.

    ``None`` until enough of the answer has arrived to know.
    """
    if len(head) < 2:
        return None
    if head[1] & EXCEPTION_BIT:
        return 5
    if head[1] in (READ_HOLDING, READ_INPUT):
        return None if len(head) < 3 else 3 + head[2] + 2
    if head[1] in (WRITE_SINGLE, WRITE_MULTIPLE):
        return 8
    raise RtuFrameError(f"function {head[1]:#04x} is not one the platform asks")


@dataclass(frozen=True)
class Answer:
    unit: int
    function: int
    payload: bytes  # the PDU after the function code, before the CRC


def parse_answer(request: bytes, raw: bytes) -> Answer:
    """Check ``raw`` is the answer to ``request`` (unit, function, CRC) and split it."""
    if len(raw) < 5:
        raise RtuFrameError("an RTU answer is at least 5 bytes")
    if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise RtuFrameError("CRC mismatch")
    if raw[0] != request[0]:
        raise RtuFrameError(f"answer from unit {raw[0]}, expected {request[0]}")
    function = raw[1]
    if function == request[1] | EXCEPTION_BIT:
        raise ModbusException(request[1], raw[2])
    if function != request[1]:
        raise RtuFrameError(f"answer to function {function:#04x}, expected {request[1]:#04x}")
    return Answer(raw[0], function, raw[2:-2])


def registers(request: bytes, raw: bytes) -> list[int]:
    """The register values of a read answer, checked against the count asked."""
    answer = parse_answer(request, raw)
    count = int.from_bytes(request[4:6], "big")
    if answer.payload[0] != 2 * count or len(answer.payload) != 1 + 2 * count:
        raise RtuFrameError(f"answer carries {answer.payload[0]} bytes, "
                            f"expected {2 * count}")
    data = answer.payload[1:]
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def read_answer(request: bytes, values: list[int]) -> bytes:
    """The answer a meter gives to a read request (for the simulator and tests)."""
    payload = b"".join(v.to_bytes(2, "big") for v in values)
    return frame(request[0], bytes([request[1], len(payload)]) + payload)
