"""Decoder key generation: DKGA02 (DES) and DKGA04 (HMAC-SHA-256)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from Crypto.Cipher import DES
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.dkga import (
    Dkga,
    KeyAttributes,
    derive_decoder_key,
    dkga02,
    dkga04,
    dkga04_message,
    vending_key_from_hex,
)
from sts.errors import StsError
from sts.identity import Drn, Pan, luhn_check_digit
from sts.keys import EncryptionAlgorithm
from sts.tid import BaseDate

VK02 = bytes.fromhex("abababababababab")
VK04 = bytes.fromhex("abababababababab949494949494949401234567")
PAN = Pan.parse("600727000000000009")


def test_dkga02_example() -> None:
    # REFERENCE.md §7.2: VK abab..., KT 2, SGC 123456, TI 01, KRN 1 -> E653341F9D5BF36F.
    key = dkga02(VK02, KeyAttributes(PAN, 123456, 1, 1, 2))
    assert key == bytes.fromhex("E653341F9D5BF36F")


def test_dkga04_example() -> None:
    # REFERENCE.md §7.3: SGC 123457, base 1993, EA07 -> AA4BAA8749C10D27.
    key = dkga04(VK04, KeyAttributes(PAN, 123457, 1, 1, 2, BaseDate.Y1993))
    assert key == bytes.fromhex("AA4BAA8749C10D27")


def test_dkga04_message_layout() -> None:
    attrs = KeyAttributes(PAN, 123457, 1, 1, 2, BaseDate.Y1993, EncryptionAlgorithm.STA)
    expected = (
        b"\x04"
        + b"\x0204"
        + b"\x0293"
        + b"\x0207"
        + b"\x0201"
        + b"\x00"
        + b"\x04"
        + b"\x06123457"
        + b"\x012"
        + b"\x011"
        + b"\x12600727000000000009"
        + b"\x00\x00\x00\x40"
    )
    assert dkga04_message(attrs) == expected
    misty = KeyAttributes(PAN, 123457, 1, 1, 2, BaseDate.Y2035, EncryptionAlgorithm.MISTY1)
    message = dkga04_message(misty)
    assert message[4:7] == b"\x0235" and message[7:10] == b"\x0211"
    assert message.endswith(b"\x00\x00\x00\x80")


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=999_999),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(list(BaseDate)),
    st.sampled_from([EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1]),
)
def test_dkga04_is_the_hmac_prefix(
    sgc: int, ti: int, krn: int, kt: int, base: BaseDate, ea: EncryptionAlgorithm
) -> None:
    attrs = KeyAttributes(PAN, sgc, ti, krn, kt, base, ea)
    mac = hmac.new(VK04, dkga04_message(attrs), hashlib.sha256).digest()
    key = derive_decoder_key(VK04, Dkga.DKGA04, attrs)
    assert key.value == mac[: ea.key_bytes]
    assert key.ea is ea


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=999_999),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=3),
    st.binary(min_size=8, max_size=8),
)
def test_dkga02_formula(sgc: int, ti: int, krn: int, kt: int, vk: bytes) -> None:
    attrs = KeyAttributes(PAN, sgc, ti, krn, kt)
    pan_digits = (PAN.common() if kt == 3 else PAN).digits
    d = int(pan_digits[1:17], 16) ^ int(f"{kt}{sgc:06d}{ti:02d}{krn}FFFFFF", 16)
    des = int.from_bytes(DES.new(vk, DES.MODE_ECB).encrypt(d.to_bytes(8, "big")), "big")
    expected = (des ^ d ^ int.from_bytes(vk, "big")).to_bytes(8, "big")
    assert dkga02(vk, attrs) == expected


def test_common_key_is_shared_by_a_supply_group() -> None:
    other = Pan.from_drn(Drn.build(12, 34567890))
    for method, vk in ((Dkga.DKGA02, VK02), (Dkga.DKGA04, VK04)):
        common = [
            derive_decoder_key(vk, method, KeyAttributes(p, 123456, 1, 1, 3)) for p in (PAN, other)
        ]
        unique = [
            derive_decoder_key(vk, method, KeyAttributes(p, 123456, 1, 1, 2)) for p in (PAN, other)
        ]
        assert common[0] == common[1]
        assert unique[0] != unique[1]


def test_every_attribute_changes_the_key() -> None:
    base = KeyAttributes(PAN, 123456, 1, 1, 2)
    variants = [
        KeyAttributes(PAN, 123457, 1, 1, 2),
        KeyAttributes(PAN, 123456, 2, 1, 2),
        KeyAttributes(PAN, 123456, 1, 2, 2),
        KeyAttributes(PAN, 123456, 1, 1, 1),
        KeyAttributes(Pan.from_drn(Drn.build(1, 2)), 123456, 1, 1, 2),
    ]
    for method, vk in ((Dkga.DKGA02, VK02), (Dkga.DKGA04, VK04)):
        keys = {derive_decoder_key(vk, method, a).value for a in [base, *variants]}
        assert len(keys) == 1 + len(variants)
    # DKGA04 also binds the base date (a rollover key differs from the 1993 one).
    rollover = KeyAttributes(PAN, 123456, 1, 1, 2, BaseDate.Y2014)
    assert dkga04(VK04, rollover) != dkga04(VK04, base)


def test_vending_key_length_is_checked() -> None:
    with pytest.raises(StsError) as info:
        dkga02(VK04, KeyAttributes(PAN, 1, 1, 1, 2))
    assert info.value.param == "vk"
    with pytest.raises(StsError) as info:
        dkga04(VK02, KeyAttributes(PAN, 1, 1, 1, 2))
    assert info.value.param == "vk"
    with pytest.raises(StsError) as info:
        vending_key_from_hex("abab", Dkga.DKGA04)
    assert info.value.param == "vk"
    assert vending_key_from_hex(VK04.hex(), Dkga.DKGA04) == VK04


def test_dkga02_makes_no_128_bit_keys() -> None:
    attrs = KeyAttributes(PAN, 1, 1, 1, 2, ea=EncryptionAlgorithm.MISTY1)
    with pytest.raises(StsError) as info:
        dkga02(VK02, attrs)
    assert info.value.param == "ea"


@pytest.mark.parametrize("bad", ["01", "03", "5", "x"])
def test_unknown_dkga_is_refused(bad: str) -> None:
    with pytest.raises(StsError) as info:
        Dkga.parse(bad)
    assert info.value.param == "dkga"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"sgc": 10**6}, "sgc"), ({"ti": 100}, "ti"), ({"krn": 10}, "krn"), ({"kt": 4}, "kt")],
)
def test_key_attributes_are_validated(kwargs: dict[str, int], param: str) -> None:
    fields = {"pan": PAN, "sgc": 1, "ti": 1, "krn": 1, "kt": 2} | kwargs
    with pytest.raises(StsError) as info:
        KeyAttributes(**fields)  # type: ignore[arg-type]
    assert info.value.param == param


def test_error_messages_never_carry_the_vending_key() -> None:
    for text in ("abababababababab94", "abababababababab9", "zzabababababababab"):
        with pytest.raises(StsError) as info:
            vending_key_from_hex(text, Dkga.DKGA04)
        assert "abababab" not in str(info.value).lower()


#: An engineering sample's PAN: its own check digit (2) and its DRN's (1) are both wrong.
SAMPLE = "600727123456789012"


def test_a_pan_with_a_wrong_check_digit_derives_its_keys_from_the_digits_as_given() -> None:
    pan = Pan.parse(SAMPLE, check_digits=False)
    assert pan.digits == SAMPLE
    # DKGA02: the PANBlock is digits 2-17, the DRN's wrong check digit among them.
    attrs = KeyAttributes(pan, 123456, 1, 1, 2)
    d = int(SAMPLE[1:17], 16) ^ 0x2123456011FFFFFF
    des = int.from_bytes(DES.new(VK02, DES.MODE_ECB).encrypt(d.to_bytes(8, "big")), "big")
    assert dkga02(VK02, attrs) == (des ^ d ^ int.from_bytes(VK02, "big")).to_bytes(8, "big")
    # DKGA04: the message carries all 18 digits, the PAN's wrong check digit last.
    attrs04 = KeyAttributes(pan, 123457, 1, 1, 2)
    message = dkga04_message(attrs04)
    assert b"\x12" + SAMPLE.encode() in message
    assert dkga04(VK04, attrs04) == hmac.new(VK04, message, hashlib.sha256).digest()[:8]
    # Nothing is recomputed: the PAN with the right check digits is another meter's.
    drn = SAMPLE[6:16]
    corrected = Pan.parse(Pan.from_drn(Drn.parse(drn + str(luhn_check_digit(drn)))).digits)
    assert corrected.digits != SAMPLE
    assert dkga02(VK02, KeyAttributes(corrected, 123456, 1, 1, 2)) != dkga02(VK02, attrs)
    assert dkga04(VK04, KeyAttributes(corrected, 123457, 1, 1, 2)) != dkga04(VK04, attrs04)
