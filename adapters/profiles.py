"""Meter register maps as data. Billing never sees these; only the meter client does.

A profile says which blocks to read in one transaction each and where every field lies
in them. Another vendor's map is another ``Profile`` value, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    address: int
    registers: int  # 1 or 2 (big-endian, high word first)
    signed: bool = False


@dataclass(frozen=True)
class Profile:
    """What the platform reads from a meter, how it decodes it, and how it expresses and
    confirms each relay action.

    ``protocol`` is the gateway protocol the meter needs. Modbus profiles list register
    blocks and fields; relay actions are either secure frames (``secure_buffer``, the
    reference profile) or plain register writes (``relay_writes``: action -> (register,
    values)), confirmed by reading ``state_block`` back. DL/T 645 profiles read data
    identifiers and send relay control codes (``relay_codes``: action -> N1), confirmed
    by status word 3. ``verified`` False: the relay registers come from a secondary
    source and a site must confirm them against its meters' manual first."""

    name: str
    blocks: tuple[tuple[int, int], ...]  # (start, count) read per poll
    fields: dict[str, Field]
    secure_buffer: int | None = None
    secure_buffer_registers: int = 0
    state_block: tuple[int, int] | None = None  # read to confirm a command
    protocol: str = "modbus-tcp"
    relay_writes: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    relay_codes: dict[str, int] = field(default_factory=dict)
    data_ids: tuple[int, ...] = ()
    keep_power: bool = True  # the meter has a keep-power state of its own
    verified: bool = True

    def relay_actions(self) -> tuple[str, ...]:
        if self.secure_buffer is not None:
            return ("trip", "close", "keep_power_on", "keep_power_off")
        return tuple(self.relay_writes or self.relay_codes)

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

# Acrel DDSY1352 over Modbus RTU: the published reading registers (PROTOCOLS.md section 7).
# The relay pair at 0x0057 is what one open-source platform writes to trip Acrel 4G meters;
# it is not in the published map, hence unverified. Register 0x0058 is read back as the
# relay (1 open). The map carries no meter number: identity cannot be checked on the bus.
ACREL_DDSY1352 = Profile(
    name="acrel-ddsy1352",
    protocol="modbus-rtu-tcp",
    blocks=((0x0000, 0x11), (0x0057, 2)),
    fields={
        "total": Field(0x0000, 2), "sharp": Field(0x0002, 2), "peak": Field(0x0004, 2),
        "flat": Field(0x0006, 2), "valley": Field(0x0008, 2),
        "voltage_dv": Field(0x000B, 1), "current_ca": Field(0x000C, 1),
        "power_w": Field(0x000D, 1, signed=True), "power_factor_milli": Field(0x0010, 1, True),
        "relay": Field(0x0058, 1),
    },
    state_block=(0x0057, 2),
    relay_writes={"trip": (0x0057, (0x0001, 0x0001)), "close": (0x0057, (0x0001, 0x0000))},
    keep_power=False,
    verified=False,
)

# DL/T 645-2007: the meter number is the bus address; every answer carries it.
# Data identifiers: forward active energy with rates 1..4, phase A voltage and current,
# total active power, status word 3 (relay bit 4, keep-power bit 12).
DLT645_2007 = Profile(
    name="dlt645-2007",
    protocol="dlt645-tcp",
    blocks=(),
    fields={},
    data_ids=(0x0001FF00, 0x02010100, 0x02020100, 0x02030000, 0x04000503),
    relay_codes={"trip": 0x1A, "close": 0x1C, "keep_power_on": 0x3A, "keep_power_off": 0x3B},
)

PROFILES = {p.name: p for p in (REF_PREPAID_V1, ACREL_DDSY1352, DLT645_2007)}


def meter_no_from(values: dict[str, int]) -> str:
    return "".join(f"{values[f'meter_no_{i}']:04x}" for i in (1, 2, 3))
