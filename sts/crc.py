"""The STS token CRC (IEC 62055-41): CRC-16/MODBUS, byte-swapped into the token field.

Input: the 50 bits ``class | subclass | payload`` as 7 big-endian bytes (6 zero pad bits).
Currency transfer tokens (class 0, subclasses 4-7) use CRC_C: the same register run over one
more byte, 0x01.
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    rows = []
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
        rows.append(reg)
    return tuple(rows)


_TABLE = _table()


def crc16_modbus(data: bytes, reg: int = 0xFFFF) -> int:
    """CRC-16/MODBUS register (reflected 0xA001, init 0xFFFF, no final XOR)."""
    table = _TABLE
    for byte in data:
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg


def crc_field(input50: int, currency: bool = False) -> int:
    """The 16-bit CRC field for the 50-bit ``class|subclass|payload`` value.

    ``currency`` selects CRC_C (one extra 0x01 byte), used by currency transfer tokens.
    """
    if not 0 <= input50 < 1 << 50:
        raise ValueError("CRC input must be a 50-bit value")
    table = _TABLE
    reg = 0xFFFF
    for shift in (48, 40, 32, 24, 16, 8, 0):
        reg = (reg >> 8) ^ table[(reg ^ (input50 >> shift)) & 0xFF]
    if currency:
        reg = (reg >> 8) ^ table[(reg ^ 0x01) & 0xFF]
    return ((reg & 0xFF) << 8) | (reg >> 8)
