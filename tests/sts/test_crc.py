"""The token CRC: CRC-16/MODBUS over the 50 class|subclass|payload bits, byte-swapped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.crc import crc16_modbus, crc_field


def _modbus_bitwise(data: bytes) -> int:
    """CRC-16/MODBUS one bit at a time: reflected polynomial 0xA001, init 0xFFFF."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def _swap(reg: int) -> int:
    return (reg & 0xFF) << 8 | reg >> 8


def test_modbus_check_value() -> None:
    # The catalogue check value of CRC-16/MODBUS over "123456789".
    assert _modbus_bitwise(b"123456789") == 0x4B37
    assert crc16_modbus(b"123456789") == 0x4B37


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_table_driven_equals_bitwise(data: bytes) -> None:
    assert crc16_modbus(data) == _modbus_bitwise(data)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_crc_field_is_the_byte_swapped_register(input50: int) -> None:
    raw = input50.to_bytes(7, "big")
    assert crc_field(input50) == _swap(_modbus_bitwise(raw))
    # CRC_C (currency transfer): the same register continued over one 0x01 byte.
    assert crc_field(input50, currency=True) == _swap(_modbus_bitwise(raw + b"\x01"))


def test_published_example() -> None:
    assert crc_field(0x00B19EB230100) == 0xC207


def test_ccitt_would_not_reproduce_the_example() -> None:
    # Guard against the common mistake: a CCITT (0x1021) CRC gives another value.
    reg = 0xFFFF
    for byte in (0x00B19EB230100).to_bytes(7, "big"):
        reg ^= byte << 8
        for _ in range(8):
            reg = ((reg << 1) ^ 0x1021) & 0xFFFF if reg & 0x8000 else (reg << 1) & 0xFFFF
    assert 0xC207 not in (reg, _swap(reg))


def test_input_must_be_50_bits() -> None:
    with pytest.raises(ValueError):
        crc_field(1 << 50)
    with pytest.raises(ValueError):
        crc_field(-1)
