"""MISTY1 (EA11): RFC 2994 vectors, round trips, input errors and the STS EA11 token vector."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sts.misty1 import _S7, _S9, Misty1, decrypt_block, encrypt_block, expand_key

RFC_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
RFC_VECTORS = [
    (0x0123456789ABCDEF, 0x8B1DA5F56AB3D07C),
    (0xFEDCBA9876543210, 0x04B68240B13BE95D),
]
# EK[8..15] for the RFC key: the "extended key" check value published with the RFC's test data.
RFC_EXTENDED_KEY = bytes.fromhex("cf518e7f5e29673acdbc07d6bf355e11")

keys = st.binary(min_size=16, max_size=16)
blocks = st.integers(min_value=0, max_value=2**64 - 1)


# --- RFC 2994 pseudo-code, transcribed line by line, as an independent oracle -------------


def _rfc_fi(fi_in: int, fi_key: int) -> int:
    d9 = fi_in >> 7
    d7 = fi_in & 0x7F
    d9 = _S9[d9] ^ d7
    d7 = _S7[d7] ^ (d9 & 0x7F)
    d7 = d7 ^ (fi_key >> 9)
    d9 = d9 ^ (fi_key & 0x1FF)
    d9 = _S9[d9] ^ d7
    return (d7 << 9) | d9


def _rfc_ek(key: bytes) -> list[int]:
    ek = [0] * 32
    for i in range(8):
        ek[i] = key[i * 2] * 256 + key[i * 2 + 1]
    for i in range(8):
        ek[i + 8] = _rfc_fi(ek[i], ek[(i + 1) % 8])
        ek[i + 16] = ek[i + 8] & 0x1FF
        ek[i + 24] = ek[i + 8] >> 9
    return ek


def _rfc_fo(ek: list[int], fo_in: int, k: int) -> int:
    t0 = fo_in >> 16
    t1 = fo_in & 0xFFFF
    t0 = t0 ^ ek[k]
    t0 = _rfc_fi(t0, ek[(k + 5) % 8 + 8])
    t0 = t0 ^ t1
    t1 = t1 ^ ek[(k + 2) % 8]
    t1 = _rfc_fi(t1, ek[(k + 1) % 8 + 8])
    t1 = t1 ^ t0
    t0 = t0 ^ ek[(k + 7) % 8]
    t0 = _rfc_fi(t0, ek[(k + 3) % 8 + 8])
    t0 = t0 ^ t1
    t1 = t1 ^ ek[(k + 4) % 8]
    return (t1 << 16) | t0


def _rfc_fl(ek: list[int], fl_in: int, k: int) -> int:
    d0 = fl_in >> 16
    d1 = fl_in & 0xFFFF
    if k % 2 == 0:
        d1 = d1 ^ (d0 & ek[k // 2])
        d0 = d0 ^ (d1 | ek[(k // 2 + 6) % 8 + 8])
    else:
        d1 = d1 ^ (d0 & ek[((k - 1) // 2 + 2) % 8 + 8])
        d0 = d0 ^ (d1 | ek[((k - 1) // 2 + 4) % 8])
    return (d0 << 16) | d1


def _rfc_encrypt(key: bytes, p: int) -> int:
    ek = _rfc_ek(key)
    d0 = p >> 32
    d1 = p & 0xFFFFFFFF
    for i in range(0, 8, 2):
        d0 = _rfc_fl(ek, d0, i)
        d1 = _rfc_fl(ek, d1, i + 1)
        d1 = d1 ^ _rfc_fo(ek, d0, i)
        d0 = d0 ^ _rfc_fo(ek, d1, i + 1)
    d0 = _rfc_fl(ek, d0, 8)
    d1 = _rfc_fl(ek, d1, 9)
    return (d1 << 32) | d0


# --- RFC 2994 test data ---------------------------------------------------------------------


@pytest.mark.parametrize(("plaintext", "ciphertext"), RFC_VECTORS)
def test_rfc_vectors_encrypt_and_decrypt(plaintext: int, ciphertext: int) -> None:
    cipher = Misty1(RFC_KEY)
    assert cipher.encrypt(plaintext) == ciphertext
    assert cipher.decrypt(ciphertext) == plaintext
    assert encrypt_block(RFC_KEY, plaintext) == ciphertext
    assert decrypt_block(RFC_KEY, ciphertext) == plaintext


def test_expand_key_matches_rfc_check_values_and_layout() -> None:
    ek = expand_key(RFC_KEY)
    assert len(ek) == 32
    assert ek[:8] == (0x0011, 0x2233, 0x4455, 0x6677, 0x8899, 0xAABB, 0xCCDD, 0xEEFF)
    assert b"".join(w.to_bytes(2, "big") for w in ek[8:16]) == RFC_EXTENDED_KEY
    assert ek[16:24] == tuple(w & 0x1FF for w in ek[8:16])
    assert ek[24:32] == tuple(w >> 9 for w in ek[8:16])


def test_sboxes_are_the_rfc_permutations() -> None:
    """Guards the S-box tables: one wrong entry breaks these properties of S7 and S9."""

    def degree(sbox: tuple[int, ...], bits: int) -> int:
        # Highest algebraic degree over the output bits (Moebius transform of each bit).
        worst = 0
        for out_bit in range(bits):
            anf = [(v >> out_bit) & 1 for v in sbox]
            for i in range(bits):
                for x in range(1 << bits):
                    if x >> i & 1:
                        anf[x] ^= anf[x ^ (1 << i)]
            worst = max(worst, *(x.bit_count() for x in range(1 << bits) if anf[x]))
        return worst

    def differential_uniformity(sbox: tuple[int, ...]) -> int:
        worst = 0
        for diff in range(1, len(sbox)):
            counts: dict[int, int] = {}
            for x, y in enumerate(sbox):
                out = y ^ sbox[x ^ diff]
                counts[out] = counts.get(out, 0) + 1
            worst = max(worst, *counts.values())
        return worst

    assert sorted(_S7) == list(range(128))
    assert sorted(_S9) == list(range(512))
    assert degree(_S7, 7) == 3
    assert degree(_S9, 9) == 2
    assert differential_uniformity(_S7) == 2
    assert differential_uniformity(_S9) == 2


# --- properties -----------------------------------------------------------------------------


@given(key=keys, block=blocks)
def test_matches_rfc_pseudocode(key: bytes, block: int) -> None:
    assert Misty1(key).encrypt(block) == _rfc_encrypt(key, block)


@given(key=keys, block=blocks)
def test_decrypt_inverts_encrypt(key: bytes, block: int) -> None:
    cipher = Misty1(key)
    assert cipher.decrypt(cipher.encrypt(block)) == block
    assert cipher.encrypt(cipher.decrypt(block)) == block
    assert decrypt_block(key, encrypt_block(key, block)) == block


@pytest.mark.parametrize("block", [0, 1, 2**63, 2**64 - 1])
def test_extreme_blocks_round_trip(block: int) -> None:
    cipher = Misty1(RFC_KEY)
    encrypted = cipher.encrypt(block)
    assert 0 <= encrypted < 2**64
    assert cipher.decrypt(encrypted) == block


@given(key=keys, block=blocks)
def test_module_functions_agree_with_class_for_any_bytes_like_key(key: bytes, block: int) -> None:
    expected = Misty1(key).encrypt(block)
    for same_key in (key, bytearray(key), memoryview(key)):
        assert encrypt_block(same_key, block) == expected
        assert decrypt_block(same_key, expected) == block


def test_one_key_bit_changes_the_ciphertext() -> None:
    other_key = bytes([RFC_KEY[0] ^ 0x01]) + RFC_KEY[1:]
    for plaintext, ciphertext in RFC_VECTORS:
        assert encrypt_block(other_key, plaintext) != ciphertext


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 8, 15, 17, 32])
def test_wrong_key_length_is_rejected_without_echoing_the_key(length: int) -> None:
    key = bytes((0xA5 + i) & 0xFF for i in range(length))
    for call in (
        lambda: Misty1(key),
        lambda: expand_key(key),
        lambda: encrypt_block(key, 0),
        lambda: decrypt_block(key, 0),
    ):
        with pytest.raises(ValueError, match=r"^key must be 16 bytes") as caught:
            call()
        message = str(caught.value)
        assert f"got {length} bytes" in message
        if key:
            assert key.hex() not in message.lower()
            assert repr(key) not in message


@pytest.mark.parametrize("key", [RFC_KEY.hex(), 0x00112233445566778899AABBCCDDEEFF, None])
def test_non_bytes_key_is_a_type_error(key: object) -> None:
    with pytest.raises(TypeError, match=r"^key must be bytes"):
        Misty1(key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^key must be bytes"):
        encrypt_block(key, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [-1, 2**64, 2**80])
def test_block_out_of_range_is_rejected(block: int) -> None:
    cipher = Misty1(RFC_KEY)
    for call in (cipher.encrypt, cipher.decrypt):
        with pytest.raises(ValueError, match=r"^block must be a 64-bit unsigned integer"):
            call(block)
    with pytest.raises(ValueError, match=r"^block"):
        encrypt_block(RFC_KEY, block)
    with pytest.raises(ValueError, match=r"^block"):
        decrypt_block(RFC_KEY, block)


@pytest.mark.parametrize("block", [1.0, "0123456789abcdef", b"\x00" * 8, None, True])
def test_non_int_block_is_a_type_error(block: object) -> None:
    cipher = Misty1(RFC_KEY)
    for call in (cipher.encrypt, cipher.decrypt):
        with pytest.raises(TypeError, match=r"^block must be an int"):
            call(block)  # type: ignore[arg-type]


def test_repr_does_not_show_key_material() -> None:
    cipher = Misty1(RFC_KEY)
    text = repr(cipher) + str(cipher)
    assert "Misty1" in text
    assert RFC_KEY.hex() not in text.lower()
    assert not any(f"{word:04x}" in text.lower() for word in expand_key(RFC_KEY))
    assert not hasattr(cipher, "__dict__")


# --- the STS EA11 vector ------------------------------------------------------------------

# STS 531 EA11 vector (DKGA04, MISTY1): a TransferCredit of 0.1 kWh, subclass 0, RND 5.
STS_VECTOR_ID = "STS531-1-0-04/CTSA01 600727000000000009 KRN1 BD1993 sub0"
STS_DECODER_KEY = bytes.fromhex("F94B6ED353C3BFDB113E2D3A7EA3C41D")
STS_TID = 5871660
STS_TOKEN = "59386323472137426967"
VECTORS_JSON = Path(__file__).with_name("vectors.json")  # the published vectors


def _crc_field(input50: int) -> int:
    """CRC-16/MODBUS over the 50-bit class|subclass|payload as 7 bytes, byte-swapped."""
    reg = 0xFFFF
    for byte in input50.to_bytes(7, "big"):
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return (reg & 0xFF) << 8 | reg >> 8


def _class0_block(subclass: int, rnd: int, tid: int, amount: int) -> int:
    payload = rnd << 40 | tid << 16 | amount
    input50 = 0 << 48 | subclass << 44 | payload  # class 0
    return subclass << 60 | payload << 16 | _crc_field(input50)


def _transpose_class(encrypted: int, token_class: int) -> int:
    """Move bits 28/27 of the encrypted block to bits 65/64 and put the class there."""
    b28 = encrypted >> 28 & 1
    b27 = encrypted >> 27 & 1
    clear = encrypted & ~(0b11 << 27) | (token_class >> 1) << 28 | (token_class & 1) << 27
    return b28 << 65 | b27 << 64 | clear


@pytest.mark.parametrize(
    ("input50", "field"),
    [(0x00B19EB230100, 0xC207), (0x0004A2D900FF2, 0x0FFA), (0x005C02A552710, 0x1970)],
)
def test_crc_helper_reproduces_reference_examples(input50: int, field: int) -> None:
    assert _crc_field(input50) == field


def test_block_helper_reproduces_a_published_data_block() -> None:
    # EA07 vector CTSA01/1: same fields as the EA11 vector but TID 5871715.
    assert _class0_block(subclass=0, rnd=5, tid=5871715, amount=0x0001) == 0x05599863000119E6


def test_sts_ea11_vector_encrypts_to_the_published_token() -> None:
    block = _class0_block(subclass=0, rnd=5, tid=STS_TID, amount=0x0001)
    token = _transpose_class(Misty1(STS_DECODER_KEY).encrypt(block), token_class=0)
    assert f"{token:020d}" == STS_TOKEN


def test_sts_ea11_token_decrypts_to_the_data_block() -> None:
    number = int(STS_TOKEN)
    assert (number >> 28 & 1, number >> 27 & 1) == (0, 0)  # class 0
    encrypted = (
        number & (2**64 - 1) & ~(0b11 << 27) | (number >> 65 & 1) << 28 | (number >> 64 & 1) << 27
    )
    block = decrypt_block(STS_DECODER_KEY, encrypted)
    assert block >> 60 == 0
    assert block >> 56 & 0xF == 5
    assert block >> 32 & 0xFFFFFF == STS_TID
    assert block >> 16 & 0xFFFF == 0x0001
    assert block & 0xFFFF == _crc_field(block >> 16)
    # Another meter's key yields garbage whose CRC does not check: the meter's CRC error.
    wrong = decrypt_block(bytes(16), encrypted)
    assert wrong & 0xFFFF != _crc_field(wrong >> 16)


def test_sts_vector_constants_match_shared_vectors_file() -> None:
    vectors = {v["id"]: v for v in json.loads(VECTORS_JSON.read_text())["vectors"]}
    vector = vectors[STS_VECTOR_ID]
    assert vector["algorithm"]["ea"].startswith("11")
    assert bytes.fromhex(vector["intermediate"]["decoder_key_hex"]) == STS_DECODER_KEY
    assert vector["intermediate"]["tid"] == STS_TID
    assert vector["token"] == STS_TOKEN
    inputs = vector["inputs"]
    assert (inputs["token_class"], inputs["subclass"], inputs["rnd"]) == (0, 0, 5)
    assert inputs["amount_units_tenths"] == 1
