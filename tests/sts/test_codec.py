"""The 66-bit token, the class-bit transposition and the 20 decimal digits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.codec import (
    MAX_TOKEN,
    group,
    insert_class,
    parse_digits,
    split_class,
    to_digits,
    transpose,
)
from sts.errors import TokenFormatError

values66 = st.integers(min_value=0, max_value=MAX_TOKEN)
blocks = st.integers(min_value=0, max_value=2**64 - 1)
classes = st.integers(min_value=0, max_value=3)


@settings(max_examples=500, deadline=None)
@given(values66)
def test_transposition_is_an_involution(value: int) -> None:
    assert transpose(transpose(value)) == value
    assert 0 <= transpose(value) <= MAX_TOKEN


def test_transposition_is_an_involution_for_every_pattern_of_the_moved_bits() -> None:
    # Only bits 65, 64, 28 and 27 move: all 16 patterns of them over varied backgrounds.
    moved = 0b11 << 64 | 0b11 << 27
    for background in (0, MAX_TOKEN & ~moved, 0x5555_5555_5555_5555 & ~moved, 1 << 26, 1 << 29):
        for pattern in range(16):
            value = background | (pattern >> 2) << 64 | (pattern & 0b11) << 27
            assert transpose(transpose(value)) == value
            assert transpose(value) != value or pattern in (0b0000, 0b0101, 0b1010, 0b1111)


@settings(max_examples=300, deadline=None)
@given(values66)
def test_transposition_swaps_bits_65_64_with_28_27(value: int) -> None:
    out = transpose(value)
    assert (out >> 64 & 0b11) == (value >> 27 & 0b11)
    assert (out >> 27 & 0b11) == (value >> 64 & 0b11)
    untouched = ((1 << 66) - 1) & ~(0b11 << 64) & ~(0b11 << 27)
    assert out & untouched == value & untouched


@settings(max_examples=500, deadline=None)
@given(classes, blocks)
def test_class_is_recovered_before_decryption(token_class: int, block: int) -> None:
    token = insert_class(token_class, block)
    assert 0 <= token <= MAX_TOKEN
    assert split_class(token) == (token_class, block)
    assert parse_digits(to_digits(token)) == token


def test_iec_example_transposition() -> None:
    # Ciphertext 9335C6C96B7352DC, class 0 -> 2905 4347 1393 0985 1356 (REFERENCE.md §6.1).
    token = insert_class(0, 0x9335C6C96B7352DC)
    assert to_digits(token) == "29054347139309851356"
    assert group(to_digits(token)) == "2905 4347 1393 0985 1356"


def test_digits_are_zero_padded_to_twenty() -> None:
    assert to_digits(0) == "0" * 20
    assert to_digits(MAX_TOKEN) == "73786976294838206463"
    with pytest.raises(TokenFormatError):
        to_digits(MAX_TOKEN + 1)
    with pytest.raises(TokenFormatError):
        to_digits(-1)


def test_spaces_and_dashes_are_allowed_between_digits() -> None:
    assert parse_digits("2905 4347 1393 0985 1356") == 29054347139309851356
    assert parse_digits("2905-4347-1393-0985-1356") == 29054347139309851356


@pytest.mark.parametrize(
    "text",
    [
        "1" * 19,
        "1" * 21,
        "",
        "2905434713930985135a",
        "29054347139309851356\n",
        "+2905434713930985135",
        "2905434713930985135٣",  # a non-ASCII digit
        "73786976294838206464",  # 2**66
        "99999999999999999999",
    ],
)
def test_malformed_digits_are_format_errors(text: str) -> None:
    with pytest.raises(TokenFormatError) as info:
        parse_digits(text)
    assert info.value.param == "token"
