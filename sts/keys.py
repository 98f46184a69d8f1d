"""Decoder keys and the encryption algorithms that use them.

A :class:`DecoderKey` is secret: its ``repr``/``str`` show only a fingerprint, and no error
message carries its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Protocol

from sts.errors import StsError


class EncryptionAlgorithm(IntEnum):
    """STS encryption algorithm codes."""

    STA = 7  # EA07, 64-bit key
    DEA = 9  # EA09, single DES: deprecated, legacy only
    MISTY1 = 11  # EA11, 128-bit key

    @property
    def key_bytes(self) -> int:
        return 16 if self is EncryptionAlgorithm.MISTY1 else 8

    @property
    def code(self) -> str:
        return f"{int(self):02d}"

    @classmethod
    def parse(cls, value: int | str, param: str = "ea") -> EncryptionAlgorithm:
        try:
            return cls(int(value))
        except (ValueError, TypeError):
            raise StsError(param, f"{value!r} is not an algorithm code (07, 09 or 11)") from None


class BlockCipher(Protocol):
    def encrypt(self, block: int) -> int: ...
    def decrypt(self, block: int) -> int: ...


class _Des:
    __slots__ = ("_des",)

    def __init__(self, key: bytes) -> None:
        from Crypto.Cipher import DES

        self._des = DES.new(key, DES.MODE_ECB)

    def encrypt(self, block: int) -> int:
        return int.from_bytes(self._des.encrypt(block.to_bytes(8, "big")), "big")

    def decrypt(self, block: int) -> int:
        return int.from_bytes(self._des.decrypt(block.to_bytes(8, "big")), "big")


def fingerprint(secret: bytes) -> str:
    """A short, non-reversible name for a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(b"stslab-key-fingerprint\x00" + secret).hexdigest()[:8]


def parse_hex_key(text: str, param: str, length: int | None = None) -> bytes:
    """Key bytes from hex text; errors name ``param`` and never echo the text."""
    cleaned = str(text).strip().replace(" ", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if len(cleaned) % 2:
        raise StsError(param, "hex key has an odd number of digits")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise StsError(param, "key is not hexadecimal") from None
    if length is not None and len(raw) != length:
        raise StsError(param, f"key must be {length} bytes ({8 * length} bits), got {len(raw)}")
    return raw


@dataclass(frozen=True, repr=False, eq=True)
class DecoderKey:
    """A meter's decoder key and the algorithm it is used with.

    EA09 (single DES) is refused unless ``legacy=True``: it is deprecated and only for
    meters that still run it.
    """

    value: bytes
    ea: EncryptionAlgorithm = EncryptionAlgorithm.STA
    legacy: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        ea = EncryptionAlgorithm(self.ea)
        object.__setattr__(self, "ea", ea)
        if len(self.value) != ea.key_bytes:
            raise StsError(
                "key", f"EA{ea.code} needs a {8 * ea.key_bytes}-bit key, got {8 * len(self.value)}"
            )
        if ea is EncryptionAlgorithm.DEA and not self.legacy:
            raise StsError("ea", "EA09 (DES) is deprecated; enable the legacy switch to use it")

    @classmethod
    def from_hex(
        cls, text: str, ea: EncryptionAlgorithm = EncryptionAlgorithm.STA, legacy: bool = False
    ) -> DecoderKey:
        ea = EncryptionAlgorithm(ea)
        return cls(parse_hex_key(text, "dk", ea.key_bytes), ea, legacy)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    def __repr__(self) -> str:
        return f"DecoderKey(EA{self.ea.code}, fp={self.fingerprint})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash((self.value, self.ea))

    def __deepcopy__(self, memo: dict) -> DecoderKey:
        return self  # immutable; copying would copy the cipher's tables

    @cached_property
    def cipher(self) -> BlockCipher:
        """The block cipher under this key (schedule computed once)."""
        if self.ea is EncryptionAlgorithm.STA:
            from sts.sta import Sta

            return Sta(int.from_bytes(self.value, "big"))
        if self.ea is EncryptionAlgorithm.MISTY1:
            from sts.misty1 import Misty1

            return Misty1(self.value)
        return _Des(self.value)

    def hex(self) -> str:
        """The key as hex. Only for the places a key must be written (a key store)."""
        return self.value.hex().upper()
