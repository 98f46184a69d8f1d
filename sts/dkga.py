"""Decoder key generation algorithms: DKGA02 (DES based) and DKGA04 (HMAC-SHA-256).

Both derive a meter's decoder key from the vending key and the meter's identity: PAN, key
type, supply group code, tariff index, key revision number (and for DKGA04 the base date and
the encryption algorithm, since the key length follows the algorithm).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

from sts.errors import StsError
from sts.identity import (
    Pan,
    check_key_type,
    check_krn,
    check_sgc,
    check_ti,
    control_block,
    pan_block,
)
from sts.keys import DecoderKey, EncryptionAlgorithm, parse_hex_key
from sts.tid import BaseDate


class Dkga(IntEnum):
    DKGA02 = 2
    DKGA04 = 4

    @classmethod
    def parse(cls, value: int | str, param: str = "dkga") -> Dkga:
        try:
            return cls(int(value))
        except (ValueError, TypeError):
            raise StsError(param, f"{value!r} is not a supported DKGA (02 or 04)") from None


@dataclass(frozen=True)
class KeyAttributes:
    """Everything that identifies a decoder key except its secret value."""

    pan: Pan
    sgc: int
    ti: int
    krn: int
    kt: int
    base_date: BaseDate = BaseDate.Y1993
    ea: EncryptionAlgorithm = EncryptionAlgorithm.STA

    def __post_init__(self) -> None:
        check_sgc(self.sgc)
        check_ti(self.ti)
        check_krn(self.krn)
        check_key_type(self.kt)
        object.__setattr__(self, "base_date", BaseDate(self.base_date))
        object.__setattr__(self, "ea", EncryptionAlgorithm(self.ea))


def dkga02(vending_key: bytes, attrs: KeyAttributes) -> bytes:
    """DKGA02: ``D = PANBlock ^ CONTROLBlock; DK = DES_VK(D) ^ D ^ VK`` (64-bit keys)."""
    from Crypto.Cipher import DES

    if len(vending_key) != 8:
        raise StsError("vk", f"DKGA02 needs a 64-bit vending key, got {8 * len(vending_key)} bits")
    if attrs.ea.key_bytes != 8:
        raise StsError("ea", f"DKGA02 makes 64-bit keys; EA{attrs.ea.code} needs 128")
    d = pan_block(attrs.pan, attrs.kt) ^ control_block(attrs.kt, attrs.sgc, attrs.ti, attrs.krn)
    vk = int.from_bytes(vending_key, "big")
    enc = int.from_bytes(DES.new(vending_key, DES.MODE_ECB).encrypt(d.to_bytes(8, "big")), "big")
    return (enc ^ d ^ vk).to_bytes(8, "big")


def dkga04_message(attrs: KeyAttributes) -> bytes:
    """The SP 800-108 label/context message DKGA04 authenticates."""
    pan = attrs.pan.common() if attrs.kt == 3 else attrs.pan
    length_bits = 8 * attrs.ea.key_bytes

    def item(text: str) -> bytes:
        raw = text.encode("ascii")
        return bytes([len(raw)]) + raw

    return b"".join(
        [
            b"\x04",
            item("04"),
            item(attrs.base_date.code),
            item(attrs.ea.code),
            item(f"{attrs.ti:02d}"),
            b"\x00",
            b"\x04",
            item(f"{attrs.sgc:06d}"),
            item(str(attrs.kt)),
            item(str(attrs.krn)),
            item(pan.digits),
            length_bits.to_bytes(4, "big"),
        ]
    )


def dkga04(vending_key: bytes, attrs: KeyAttributes) -> bytes:
    """DKGA04: HMAC-SHA-256 with the 160-bit vending key; first 8 or 16 bytes."""
    if len(vending_key) != 20:
        raise StsError("vk", f"DKGA04 needs a 160-bit vending key, got {8 * len(vending_key)} bits")
    mac = hmac.new(vending_key, dkga04_message(attrs), hashlib.sha256).digest()
    return mac[: attrs.ea.key_bytes]


def derive_decoder_key(
    vending_key: bytes, dkga: Dkga, attrs: KeyAttributes, legacy: bool = False
) -> DecoderKey:
    """The decoder key for ``attrs`` under ``vending_key`` with the chosen DKGA."""
    dkga = Dkga(dkga)
    raw = dkga02(vending_key, attrs) if dkga is Dkga.DKGA02 else dkga04(vending_key, attrs)
    return DecoderKey(raw, attrs.ea, legacy=legacy)


def vending_key_from_hex(text: str, dkga: Dkga, param: str = "vk") -> bytes:
    return parse_hex_key(text, param, 8 if Dkga(dkga) is Dkga.DKGA02 else 20)
