"""The 3DES-protected command frame of PROTOCOLS.md section 2, both sides of it.

Keys never leave this module's callers' memory: they come from the site master key
(configuration, never the database) diversified per meter, and are never logged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from Crypto.Cipher import DES, DES3

VERSION = 0x01
HEADER_BYTES = 13
MAC_BYTES = 8
BLOCK = 8
BUFFER_REGISTERS = 32
BUFFER_BYTES = BUFFER_REGISTERS * 2


class Command(IntEnum):
    RECHARGE = 0x01
    RELAY = 0x02
    TARIFF = 0x03
    THRESHOLDS = 0x04
    SET_BALANCE = 0x05


class RelayAction(IntEnum):
    TRIP = 0x1A
    CLOSE = 0x1B
    KEEP_POWER_ON = 0x3A
    KEEP_POWER_OFF = 0x3B


class Status(IntEnum):
    OK = 0
    BAD_MAC = 1
    BAD_COUNTER = 2
    BAD_FORMAT = 3
    UNKNOWN_COMMAND = 4
    WRONG_METER = 5


PAYLOAD_BYTES = {Command.RECHARGE: 4, Command.RELAY: 1, Command.TARIFF: 16,
                 Command.THRESHOLDS: 12, Command.SET_BALANCE: 4}


@dataclass(frozen=True)
class MeterKeys:
    enc: bytes
    mac: bytes

    def __repr__(self) -> str:  # never print key material
        return "MeterKeys(<hidden>)"


def meter_no_bcd(meter_no: str) -> bytes:
    assert len(meter_no) == 12 and meter_no.isdigit(), meter_no
    return bytes.fromhex(meter_no)


def pad_method2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros to a multiple of 8."""
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % BLOCK)


def unpad_method2(data: bytes) -> bytes | None:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        return None
    return stripped[:-1]


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 over ``data`` (already padded to 8 bytes)."""
    assert len(key) == 16 and len(data) % BLOCK == 0
    left, right = key[:8], key[8:]
    last = DES.new(left, DES.MODE_CBC, iv=bytes(BLOCK)).encrypt(data)[-BLOCK:]
    return DES.new(left, DES.MODE_ECB).encrypt(DES.new(right, DES.MODE_ECB).decrypt(last))


def _tdes(key: bytes) -> bytes:
    # pycryptodome refuses two-key keys whose halves are equal (that is single DES);
    # diversified keys never are, and a master key that is gets refused here.
    return DES3.adjust_key_parity(key)


def diversify(master_key: bytes, meter_no: str) -> MeterKeys:
    assert len(master_key) == 16

    def derive(constant: int) -> bytes:
        div = bytes([constant, 0x00]) + meter_no_bcd(meter_no)
        cipher = DES3.new(_tdes(master_key), DES3.MODE_ECB)
        return cipher.encrypt(div) + cipher.encrypt(bytes(b ^ 0xFF for b in div))

    return MeterKeys(enc=derive(0x01), mac=derive(0x02))


def build_frame(keys: MeterKeys, meter_no: str, command: Command, counter: int,
                payload: bytes) -> bytes:
    assert 0 < counter < 2**32 and len(payload) == PAYLOAD_BYTES[command]
    plain = pad_method2(struct.pack(">I", counter) + payload)
    ciphertext = DES3.new(_tdes(keys.enc), DES3.MODE_CBC, iv=bytes(BLOCK)).encrypt(plain)
    header = bytes([VERSION, command, len(ciphertext)]) + struct.pack(">I", counter) + \
        meter_no_bcd(meter_no)
    frame = header + ciphertext + retail_mac(keys.mac, pad_method2(header + ciphertext))
    if len(frame) % 2:
        frame += b"\x00"
    assert len(frame) <= BUFFER_BYTES
    return frame


@dataclass(frozen=True)
class Opened:
    status: Status
    command: int | None = None
    counter: int | None = None
    payload: bytes = b""


def open_frame(keys: MeterKeys, meter_no: str, frame: bytes, last_counter: int) -> Opened:
    """The meter's side: check a frame in the order PROTOCOLS.md gives, decrypt it."""
    if len(frame) < HEADER_BYTES or frame[0] != VERSION:
        return Opened(Status.BAD_FORMAT)
    command, ct_len = frame[1], frame[2]
    counter = struct.unpack(">I", frame[3:7])[0]
    if ct_len == 0 or ct_len % BLOCK or HEADER_BYTES + ct_len + MAC_BYTES > len(frame):
        return Opened(Status.BAD_FORMAT)
    if frame[7:13] != meter_no_bcd(meter_no):
        return Opened(Status.WRONG_METER)
    signed = frame[:HEADER_BYTES + ct_len]
    mac = frame[HEADER_BYTES + ct_len:HEADER_BYTES + ct_len + MAC_BYTES]
    if retail_mac(keys.mac, pad_method2(signed)) != mac:
        return Opened(Status.BAD_MAC)
    plain = unpad_method2(DES3.new(_tdes(keys.enc), DES3.MODE_CBC, iv=bytes(BLOCK))
                          .decrypt(frame[HEADER_BYTES:HEADER_BYTES + ct_len]))
    if plain is None or len(plain) < 4 or struct.unpack(">I", plain[:4])[0] != counter:
        return Opened(Status.BAD_FORMAT)
    if counter != last_counter + 1:
        return Opened(Status.BAD_COUNTER)
    if command not in PAYLOAD_BYTES:
        return Opened(Status.UNKNOWN_COMMAND)
    payload = plain[4:]
    if len(payload) != PAYLOAD_BYTES[Command(command)]:
        return Opened(Status.BAD_FORMAT)
    return Opened(Status.OK, command, counter, payload)


def frame_to_registers(frame: bytes) -> list[int]:
    assert len(frame) % 2 == 0
    return [int.from_bytes(frame[i:i + 2], "big") for i in range(0, len(frame), 2)]


def registers_to_bytes(registers: list[int]) -> bytes:
    return b"".join(r.to_bytes(2, "big") for r in registers)


def load_master_key(path: str) -> bytes:
    """The site master key: 32 hex digits in a file (whitespace ignored)."""
    with open(path, encoding="ascii") as handle:
        text = "".join(handle.read().split())
    key = bytes.fromhex(text)
    if len(key) != 16:
        raise ValueError("the master key file must hold 16 bytes as 32 hex digits")
    return key
