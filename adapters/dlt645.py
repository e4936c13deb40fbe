"""DL/T 645-2007 frames and data, as pure functions (no sockets, no clock).

The facts come from the standard as summarised in PROTOCOLS.md section 5:

    [FE FE FE FE] 68 A0..A5 68 C L DATA CS 16

* the address is the 12-digit meter number in BCD, low byte first;
* every DATA byte travels plus 0x33 (mod 256): ``Frame.data`` here is always the
  *decoded* data, the offset is applied by :func:`build` and removed by the parsers;
* CS is the sum mod 256 of every byte from the first 68 to the last DATA byte;
* a normal answer sets bit 7 of C, an error answer bits 7 and 6 and carries one error byte.

Values are BCD, low byte first; signed values keep their sign in the top bit of the
highest byte. Decoded values carry their unit in their name (``energy_wh``,
``voltage_dv``, ``current_ma``, ``power_dw``, ``money_fen``), never floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

WAKE_UP = b"\xfe\xfe\xfe\xfe"
START = 0x68
END = 0x16
DATA_OFFSET = 0x33
MAX_DATA_BYTES = 200  # the standard's limit for L from the master; answers stay below 255
BROADCAST_ADDRESS = "999999999999"  # broadcast time
WILDCARD_ADDRESS = "aaaaaaaaaaaa"  # "whoever is on the bus" (read address)
HEADER_BYTES = 10  # 68 A0..A5 68 C L

ANSWER_BIT = 0x80
ERROR_BIT = 0x40
FUNCTION_MASK = 0x1F


class Control(enum.IntEnum):
    BROADCAST_TIME = 0x08
    READ_DATA = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE_DATA = 0x14
    RELAY_CONTROL = 0x1C


class DataId(enum.IntEnum):
    """Data identifiers DI3 DI2 DI1 DI0 written as one number (DI3 first)."""

    COMBINED_ACTIVE_TOTAL = 0x00000000
    FORWARD_ACTIVE_TOTAL = 0x00010000
    FORWARD_ACTIVE_BLOCK = 0x0001FF00  # total, then rates 1..4 (sharp, peak, flat, valley)
    VOLTAGE_A = 0x02010100
    CURRENT_A = 0x02020100
    ACTIVE_POWER_TOTAL = 0x02030000
    STATUS_WORD_3 = 0x04000503
    REMAINING_MONEY = 0x00900200


class RelayAction(enum.IntEnum):
    """N1 of a relay control command (1C)."""

    TRIP = 0x1A
    CLOSE_ALLOWED = 0x1B
    CLOSE_NOW = 0x1C
    ALARM = 0x2A
    ALARM_OFF = 0x2B
    KEEP_POWER = 0x3A
    KEEP_POWER_OFF = 0x3B


class FrameError(ValueError):
    """Bytes that are not a well-formed DL/T 645 frame (or not the one expected)."""


# Error byte bits of an error answer (the standard's table for read/write answers).
ERROR_BITS = (
    (0x01, "other error"),
    (0x02, "no data requested (the meter does not have this data identifier)"),
    (0x04, "password wrong or not authorised"),
    (0x08, "communication rate cannot be changed"),
    (0x10, "too many annual time zones"),
    (0x20, "too many daily periods"),
    (0x40, "too many rates"),
)

ESAM_HINT = ("meters whose relay control needs ESAM identity authentication (security "
             "class 03) cannot be controlled without the vendor's ESAM")


class MeterRefused(Exception):
    """The meter answered with an error answer (control code with bits 7 and 6 set)."""

    def __init__(self, control: int, error_byte: int) -> None:
        self.control = control
        self.error_byte = error_byte
        reasons = [text for bit, text in ERROR_BITS if error_byte & bit] or [
            f"unknown error 0x{error_byte:02X}"]
        if error_byte & 0x04 and (control & FUNCTION_MASK) == Control.RELAY_CONTROL:
            reasons.append(ESAM_HINT)
        self.reason = "; ".join(reasons)
        super().__init__(f"meter refused (0x{control:02X}): {self.reason}")


@dataclass(frozen=True)
class Frame:
    address: str  # the 12-digit meter number (or a broadcast/wildcard address)
    control: int
    data: bytes = b""  # decoded: without the 0x33 offset

    @property
    def is_answer(self) -> bool:
        return bool(self.control & ANSWER_BIT)

    @property
    def is_error(self) -> bool:
        return (self.control & (ANSWER_BIT | ERROR_BIT)) == ANSWER_BIT | ERROR_BIT

    @property
    def function(self) -> int:
        return self.control & FUNCTION_MASK


# -- addresses and BCD ------------------------------------------------------------------

def encode_address(meter_no: str) -> bytes:
    """``"123456789012"`` → ``12 90 78 56 34 12`` (BCD, low byte first)."""
    text = meter_no.lower()
    if len(text) != 12 or any(c not in "0123456789a" for c in text):
        raise FrameError(f"a DL/T 645 address is 12 digits, not {meter_no!r}")
    pairs = [text[i:i + 2] for i in range(0, 12, 2)]
    return bytes(int(pair, 16) for pair in reversed(pairs))


def decode_address(raw: bytes) -> str:
    if len(raw) != 6:
        raise FrameError("a DL/T 645 address is 6 bytes")
    return "".join(f"{byte:02x}" for byte in reversed(raw))


def bcd_encode(value: int, size: int, *, signed: bool = False) -> bytes:
    """A non-negative (or, if ``signed``, any) integer as ``size`` BCD bytes, low first."""
    negative = value < 0
    if negative and not signed:
        raise FrameError(f"{value} is negative and the format is unsigned")
    digits = f"{abs(value):0{size * 2}d}"
    if len(digits) > size * 2:
        raise FrameError(f"{value} does not fit in {size} BCD bytes")
    out = bytearray(int(digits[i:i + 2], 16) for i in range(0, size * 2, 2))
    out.reverse()
    if signed:
        if out[-1] & 0x80:
            raise FrameError(f"{value} does not fit in {size} signed BCD bytes")
        if negative:
            out[-1] |= 0x80
    return bytes(out)


def bcd_decode(raw: bytes, *, signed: bool = False) -> int:
    data = bytearray(raw)
    negative = False
    if signed and data and data[-1] & 0x80:
        negative = True
        data[-1] &= 0x7F
    value = 0
    for byte in reversed(data):
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            raise FrameError(f"0x{byte:02X} is not a BCD byte")
        value = value * 100 + high * 10 + low
    return -value if negative else value


def encode_data_id(data_id: int) -> bytes:
    return int(data_id).to_bytes(4, "little")


def decode_data_id(raw: bytes) -> int:
    return int.from_bytes(raw[:4], "little")


# -- frames -----------------------------------------------------------------------------

def checksum(raw: bytes) -> int:
    return sum(raw) & 0xFF


def build(frame: Frame, *, wake_up: bool = True) -> bytes:
    """The bytes on the wire for ``frame``; wake-up bytes first unless told not to."""
    if not 0 <= frame.control <= 0xFF:
        raise FrameError("a control code is one byte")
    if len(frame.data) > 0xFF:
        raise FrameError("DATA is at most 255 bytes")
    body = bytearray([START, *encode_address(frame.address), START, frame.control,
                      len(frame.data)])
    body.extend((byte + DATA_OFFSET) & 0xFF for byte in frame.data)
    body.extend((checksum(body), END))
    return (WAKE_UP if wake_up else b"") + bytes(body)


def _frame_at(raw: bytes, start: int) -> tuple[Frame, int]:
    """The frame whose first 68 is at ``start``, and the index after its 16."""
    if raw[start + 7] != START:
        raise FrameError("the second 68 is missing")
    length = raw[start + 9]
    end = start + HEADER_BYTES + length + 2
    if len(raw) < end:
        raise FrameError("the frame is cut short")
    if raw[end - 2] != checksum(raw[start:end - 2]):
        raise FrameError("checksum mismatch")
    if raw[end - 1] != END:
        raise FrameError("the closing 16 is missing")
    data = bytes((byte - DATA_OFFSET) & 0xFF for byte in raw[start + HEADER_BYTES:end - 2])
    return Frame(decode_address(raw[start + 1:start + 7]), raw[start + 8], data), end


def parse(raw: bytes) -> Frame:
    """Exactly one frame, wake-up bytes allowed before it; anything else is an error."""
    start = 0
    while start < len(raw) and raw[start] == 0xFE:
        start += 1
    if start >= len(raw) or raw[start] != START:
        raise FrameError("a frame starts with 68")
    if len(raw) < start + HEADER_BYTES + 2:
        raise FrameError("the frame is cut short")
    frame, end = _frame_at(raw, start)
    if end != len(raw):
        raise FrameError(f"{len(raw) - end} bytes after the frame")
    return frame


def first_frame(buffer: bytes) -> tuple[Frame, int] | None:
    """The first valid frame in ``buffer`` and the index after it; ``None`` if none is
    complete yet (the completion rule for a transaction on a byte stream)."""
    start = buffer.find(START)
    while start >= 0:
        if len(buffer) - start >= HEADER_BYTES and buffer[start + 7] == START:
            needed = HEADER_BYTES + buffer[start + 9] + 2
            if len(buffer) - start >= needed:
                try:
                    frame, end = _frame_at(buffer[start:start + needed], 0)
                except FrameError:
                    pass
                else:
                    return frame, start + end
        start = buffer.find(START, start + 1)
    return None


class Deframer:
    """Finds frames in a byte stream from a transparent gateway.

    Bytes that cannot start a frame (wake-up bytes, line noise, a heartbeat a DTU sends
    between transactions) are skipped; a candidate that fails its checksum is skipped one
    byte at a time, so a stray 68 inside noise cannot hide the real frame behind it.
    """

    def __init__(self, max_buffer_bytes: int = 4096) -> None:
        self._buffer = bytearray()
        self._max_buffer_bytes = max_buffer_bytes

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer.extend(chunk)
        frames: list[Frame] = []
        while (found := self._next_frame()) is not None:
            frames.append(found)
        if len(self._buffer) > self._max_buffer_bytes:
            self._buffer.clear()
        return frames

    def _next_frame(self) -> Frame | None:
        """The first complete, valid frame in the buffer, dropping what came before it.

        A 68 in noise can look like the start of a long frame that never completes, so
        an incomplete candidate does not stop the search: a valid frame after it wins.
        """
        buffer = bytes(self._buffer)
        first_incomplete = None
        start = buffer.find(START)
        while start >= 0:
            if len(buffer) - start < HEADER_BYTES:
                first_incomplete = start if first_incomplete is None else first_incomplete
                break
            if buffer[start + 7] == START:
                needed = HEADER_BYTES + buffer[start + 9] + 2
                if len(buffer) - start < needed:
                    if first_incomplete is None:
                        first_incomplete = start
                else:
                    try:
                        frame, end = _frame_at(buffer[start:start + needed], 0)
                    except FrameError:
                        pass
                    else:
                        del self._buffer[:start + end]
                        return frame
            start = buffer.find(START, start + 1)
        if first_incomplete is None:
            self._buffer.clear()
        else:
            del self._buffer[:first_incomplete]
        return None

    @property
    def pending(self) -> int:
        return len(self._buffer)


# -- requests ---------------------------------------------------------------------------

def read_request(meter_no: str, data_id: int) -> Frame:
    return Frame(meter_no, Control.READ_DATA, encode_data_id(data_id))


def read_address_request() -> Frame:
    return Frame(WILDCARD_ADDRESS, Control.READ_ADDRESS)


def _bcd_time(moment: datetime, fields: str) -> bytes:
    """``fields`` from the least significant: s, m, h, D, M, Y (two digits each)."""
    value = {"s": moment.second, "m": moment.minute, "h": moment.hour, "D": moment.day,
             "M": moment.month, "Y": moment.year % 100}
    return b"".join(bcd_encode(value[name], 1) for name in fields)


def broadcast_time_request(local_time: datetime) -> Frame:
    """Broadcast time (08): ss mm hh DD MM YY in the meters' local time; no answer."""
    return Frame(BROADCAST_ADDRESS, Control.BROADCAST_TIME, _bcd_time(local_time, "smhDMY"))


@dataclass(frozen=True)
class ControlCredentials:
    """The password level, password and operator code of a relay command: secrets."""

    password_level: int  # PA, one byte (for example 0x02 or 0x04)
    password: bytes  # P0 P1 P2, three bytes as sent
    operator_code: bytes  # C0..C3, four bytes as sent

    def __post_init__(self) -> None:
        if not 0 <= self.password_level <= 0xFF:
            raise FrameError("the password level is one byte")
        if len(self.password) != 3 or len(self.operator_code) != 4:
            raise FrameError("the password is 3 bytes and the operator code 4")

    def __repr__(self) -> str:  # never print a secret
        return "ControlCredentials(<hidden>)"


def relay_request(meter_no: str, action: RelayAction, credentials: ControlCredentials,
                  deadline_local: datetime) -> Frame:
    """Relay control (1C): PA P0..P2 C0..C3 N1 N2 N3..N8, the deadline ss mm hh DD MM YY."""
    data = (bytes([credentials.password_level]) + credentials.password
            + credentials.operator_code + bytes([int(action), 0x00])
            + _bcd_time(deadline_local, "smhDMY"))
    return Frame(meter_no, Control.RELAY_CONTROL, data)


# -- answers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusWord3:
    raw: int

    @property
    def relay_open(self) -> bool:  # bit 4: 0 closed (power on), 1 open
        return bool(self.raw & (1 << 4))

    @property
    def relay_command_open(self) -> bool:  # bit 6: the relay state last commanded
        return bool(self.raw & (1 << 6))

    @property
    def pre_trip_alarm(self) -> bool:
        return bool(self.raw & (1 << 7))

    @property
    def meter_type(self) -> str:  # bits 8-9
        return {0: "not_prepaid", 1: "energy_prepaid", 2: "money_prepaid"}.get(
            (self.raw >> 8) & 0x3, "reserved")

    @property
    def keep_power(self) -> bool:  # bit 12
        return bool(self.raw & (1 << 12))


# DI → (bytes per value, signed, how many values)
VALUE_FORMATS: dict[int, tuple[int, bool, int]] = {
    DataId.COMBINED_ACTIVE_TOTAL: (4, True, 1),
    DataId.FORWARD_ACTIVE_TOTAL: (4, False, 1),
    DataId.FORWARD_ACTIVE_BLOCK: (4, False, 5),
    DataId.VOLTAGE_A: (2, False, 1),
    DataId.CURRENT_A: (3, True, 1),
    DataId.ACTIVE_POWER_TOTAL: (3, True, 1),
    DataId.REMAINING_MONEY: (4, False, 1),
}


def check_answer(request: Frame, answer: Frame) -> None:
    """The answer belongs to the request: same meter, same function, a normal answer.

    An error answer raises :class:`MeterRefused`; any other mismatch (another meter's
    address, another function, another data identifier) is a :class:`FrameError`, so an
    answer from the wrong meter can never confirm anything.
    """
    if answer.address != request.address:
        raise FrameError(f"answer from meter {answer.address}, expected {request.address}")
    if not answer.is_answer or answer.function != request.function:
        raise FrameError(f"answer 0x{answer.control:02X} does not answer "
                         f"0x{request.control:02X}")
    if answer.is_error:
        raise MeterRefused(answer.control, answer.data[0] if answer.data else 0)
    if request.function == Control.READ_DATA and answer.data[:4] != request.data[:4]:
        raise FrameError(f"answer for data identifier "
                         f"{decode_data_id(answer.data):08X}, expected "
                         f"{decode_data_id(request.data):08X}")


def read_values(request: Frame, answer: Frame) -> list[int]:
    """The raw integer values of a read answer (units as the standard's format)."""
    check_answer(request, answer)
    data_id = decode_data_id(request.data)
    if data_id == DataId.STATUS_WORD_3:
        if len(answer.data) != 6:
            raise FrameError("status word 3 is 2 bytes")
        return [int.from_bytes(answer.data[4:6], "little")]
    size, signed, count = VALUE_FORMATS[data_id]
    payload = answer.data[4:]
    if len(payload) != size * count:
        raise FrameError(f"{len(payload)} value bytes for {data_id:08X}, "
                         f"expected {size * count}")
    return [bcd_decode(payload[i:i + size], signed=signed)
            for i in range(0, size * count, size)]


def energy_wh(hundredths_kwh: int) -> int:
    """XXXXXX.XX kWh → Wh."""
    return hundredths_kwh * 10


def read_answer(request: Frame, values: list[int]) -> Frame:
    """The normal answer a meter gives to ``request`` (for the simulator and tests)."""
    data_id = decode_data_id(request.data)
    if data_id == DataId.STATUS_WORD_3:
        payload = values[0].to_bytes(2, "little")
    else:
        size, signed, count = VALUE_FORMATS[data_id]
        if len(values) != count:
            raise FrameError(f"{data_id:08X} has {count} values")
        payload = b"".join(bcd_encode(v, size, signed=signed) for v in values)
    return Frame(request.address, request.control | ANSWER_BIT, request.data[:4] + payload)


def error_answer(request: Frame, error_byte: int) -> Frame:
    return Frame(request.address, request.control | ANSWER_BIT | ERROR_BIT,
                 bytes([error_byte]))
