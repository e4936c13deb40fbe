"""Meter register maps as data. Billing never sees these; only the meter client does.

A profile says which blocks to read in one transaction each and where every field lies
in them. Another vendor's map is another ``Profile`` value, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    address: int
    registers: int  # 1 or 2 (big-endian, high word first)
    signed: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    blocks: tuple[tuple[int, int], ...]  # (start, count) read per poll
    fields: dict[str, Field]
    secure_buffer: int
    secure_buffer_registers: int
    state_block: tuple[int, int]  # read before and after a secure write

    def decode(self, blocks: dict[int, list[int]]) -> dict[str, int]:
        """Field values from the registers of the blocks read (keyed by block start)."""
        values = {}
        for name, field in self.fields.items():
            for start, registers in blocks.items():
                offset = field.address - start
                if 0 <= offset and offset + field.registers <= len(registers):
                    raw = 0
                    for register in registers[offset:offset + field.registers]:
                        raw = (raw << 16) | register
                    bits = 16 * field.registers
                    if field.signed and raw >= 1 << (bits - 1):
                        raw -= 1 << bits
                    values[name] = raw
                    break
        return values


REF_PREPAID_V1 = Profile(
    name="ref-prepaid-v1",
    blocks=((0x0000, 0x11), (0x0100, 0x0A)),
    fields={
        "total": Field(0x0000, 2), "sharp": Field(0x0002, 2), "peak": Field(0x0004, 2),
        "flat": Field(0x0006, 2), "valley": Field(0x0008, 2),
        "voltage_dv": Field(0x000B, 1), "current_ca": Field(0x000C, 1),
        "power_w": Field(0x000D, 1, signed=True), "power_factor_milli": Field(0x0010, 1, True),
        "relay": Field(0x0100, 1), "keep_power": Field(0x0101, 1),
        "counter": Field(0x0102, 2), "balance_fen": Field(0x0104, 2, signed=True),
        "status": Field(0x0106, 1),
        "meter_no_1": Field(0x0107, 1), "meter_no_2": Field(0x0108, 1),
        "meter_no_3": Field(0x0109, 1),
    },
    secure_buffer=0x0110,
    secure_buffer_registers=32,
    state_block=(0x0100, 0x0A),
)

PROFILES = {REF_PREPAID_V1.name: REF_PREPAID_V1}


def meter_no_from(values: dict[str, int]) -> str:
    return "".join(f"{values[f'meter_no_{i}']:04x}" for i in (1, 2, 3))
