"""Decoder keys: length per algorithm, the EA09 legacy switch, and secrecy in text."""

from __future__ import annotations

import pytest
from Crypto.Cipher import DES
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.errors import StsError
from sts.keys import DecoderKey, EncryptionAlgorithm, fingerprint, parse_hex_key

KEY_HEX = "0ABC12DEF3456789"


def test_key_text_shows_only_a_fingerprint() -> None:
    key = DecoderKey.from_hex(KEY_HEX)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert KEY_HEX not in text.upper()
    assert key.fingerprint in repr(key)
    assert key.fingerprint == fingerprint(bytes.fromhex(KEY_HEX))
    assert key.hex() == KEY_HEX


def test_fingerprints_differ_between_keys() -> None:
    assert DecoderKey.from_hex(KEY_HEX).fingerprint != DecoderKey.from_hex("0" * 16).fingerprint


@pytest.mark.parametrize(
    ("ea", "hex_digits"),
    [
        (EncryptionAlgorithm.STA, 32),
        (EncryptionAlgorithm.MISTY1, 16),
        (EncryptionAlgorithm.STA, 14),
    ],
)
def test_key_length_must_match_the_algorithm(ea: EncryptionAlgorithm, hex_digits: int) -> None:
    with pytest.raises(StsError) as info:
        DecoderKey.from_hex("A" * hex_digits, ea)
    assert info.value.param == "dk"
    with pytest.raises(StsError) as info:
        DecoderKey(bytes(hex_digits // 2), ea)
    assert info.value.param == "key"


def test_ea09_needs_the_legacy_switch() -> None:
    with pytest.raises(StsError) as info:
        DecoderKey.from_hex(KEY_HEX, EncryptionAlgorithm.DEA)
    assert info.value.param == "ea"
    key = DecoderKey.from_hex(KEY_HEX, EncryptionAlgorithm.DEA, legacy=True)
    block = 0x0B19EB230100C207
    expected = DES.new(bytes.fromhex(KEY_HEX), DES.MODE_ECB).encrypt(block.to_bytes(8, "big"))
    assert key.cipher.encrypt(block) == int.from_bytes(expected, "big")
    assert key.cipher.decrypt(key.cipher.encrypt(block)) == block


@pytest.mark.parametrize("text", ["ABC", "0ABC12DEF345678G", "0x0ABC12DEF345678", "zz"])
def test_bad_hex_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(StsError) as info:
        parse_hex_key(text, "dk", 8)
    assert info.value.param == "dk"
    assert text.lower() not in str(info.value).lower()


def test_hex_forms_accepted() -> None:
    raw = bytes.fromhex(KEY_HEX)
    assert parse_hex_key("0x" + KEY_HEX, "dk", 8) == raw
    assert parse_hex_key(KEY_HEX.lower(), "dk", 8) == raw
    assert parse_hex_key(" 0ABC 12DE F345 6789 ", "dk", 8) == raw


def test_equality_is_by_value_and_algorithm() -> None:
    a = DecoderKey.from_hex(KEY_HEX)
    assert a == DecoderKey(bytes.fromhex(KEY_HEX))
    assert hash(a) == hash(DecoderKey(bytes.fromhex(KEY_HEX)))
    assert a != DecoderKey.from_hex(KEY_HEX, EncryptionAlgorithm.DEA, legacy=True)


@pytest.mark.parametrize("bad", ["08", "10", "x", ""])
def test_unknown_algorithm_is_refused(bad: str) -> None:
    with pytest.raises(StsError) as info:
        EncryptionAlgorithm.parse(bad)
    assert info.value.param == "ea"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1]),
    st.binary(min_size=16, max_size=16),
    st.integers(min_value=0, max_value=2**64 - 1),
)
def test_cipher_round_trip(ea: EncryptionAlgorithm, raw: bytes, block: int) -> None:
    key = DecoderKey(raw[: ea.key_bytes], ea)
    encrypted = key.cipher.encrypt(block)
    assert 0 <= encrypted < 2**64
    assert key.cipher.decrypt(encrypted) == block
