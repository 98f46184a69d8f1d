"""The 66-bit token and its 20 decimal digits (IEC 62055-41 class-bit transposition).

The two class bits travel in bits 65/64 of the decimal number; bits 28/27 of the encrypted
block are swapped with them, so the class can be read before decryption.
"""

from __future__ import annotations

from sts.errors import TokenFormatError

TOKEN_DIGITS = 20
MAX_TOKEN = (1 << 66) - 1
_LOW64 = (1 << 64) - 1
_CLEAR_27_28 = _LOW64 & ~(0b11 << 27)


def transpose(value: int) -> int:
    """Swap bits 65/64 with bits 28/27 of a 66-bit value (an involution)."""
    hi = (value >> 64) & 0b11
    mid = (value >> 27) & 0b11
    return (mid << 64) | (value & _CLEAR_27_28) | (hi << 27)


def insert_class(token_class: int, block: int) -> int:
    """Build the 66-bit token from the class and the (encrypted) 64-bit block."""
    return transpose((token_class << 64) | block)


def split_class(token: int) -> tuple[int, int]:
    """The class and the 64-bit (encrypted) block of a 66-bit token."""
    restored = transpose(token)
    return restored >> 64, restored & _LOW64


def to_digits(token: int) -> str:
    """The 20-digit decimal form of a 66-bit token."""
    if not 0 <= token <= MAX_TOKEN:
        raise TokenFormatError("value is not a 66-bit number")
    return f"{token:020d}"


def parse_digits(text: str) -> int:
    """The 66-bit value of a token written as 20 digits (spaces and dashes allowed).

    Raises :class:`TokenFormatError` for anything else: wrong length, non-digits, or a value
    of 2**66 or more.
    """
    digits = text.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit():
        raise TokenFormatError("must contain only the digits 0-9")
    if len(digits) != TOKEN_DIGITS:
        raise TokenFormatError(f"must be {TOKEN_DIGITS} digits, got {len(digits)}")
    value = int(digits)
    if value > MAX_TOKEN:
        raise TokenFormatError("value is 2**66 or more")
    return value


def group(digits: str) -> str:
    """Digits grouped 4-4-4-4-4, the way tokens are printed on receipts."""
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
