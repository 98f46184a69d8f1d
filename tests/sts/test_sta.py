"""EA07 STA: the table-driven cipher against the algorithm as specified."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts import sta
from sts.sta import Sta, decrypt_reference, encrypt_reference

words = st.integers(min_value=0, max_value=2**64 - 1)

IEC_KEY = 0x0ABC12DEF3456789
IEC_BLOCK = 0x0B19EB230100C207
IEC_CIPHER = 0x9335C6C96B7352DC


def test_iec_worked_example() -> None:
    assert encrypt_reference(IEC_KEY, IEC_BLOCK) == IEC_CIPHER
    assert decrypt_reference(IEC_KEY, IEC_CIPHER) == IEC_BLOCK
    cipher = Sta(IEC_KEY)
    assert cipher.encrypt(IEC_BLOCK) == IEC_CIPHER
    assert cipher.decrypt(IEC_CIPHER) == IEC_BLOCK


def test_tables_are_the_production_tables() -> None:
    assert sta.S1 == (14, 10, 7, 9, 12, 3, 2, 5, 13, 0, 15, 1, 4, 8, 6, 11)
    assert sta.S2 == (12, 8, 2, 13, 7, 6, 1, 3, 11, 5, 9, 15, 0, 4, 10, 14)
    assert sorted(sta.P) == list(range(64))
    assert sta.P[:8] == (55, 42, 10, 18, 24, 21, 44, 35)
    assert sta.P[56:] == (57, 34, 59, 8, 47, 14, 45, 26)


@settings(max_examples=300, deadline=None)
@given(words, words)
def test_table_driven_equals_reference(key: int, block: int) -> None:
    cipher = Sta(key)
    encrypted = cipher.encrypt(block)
    assert encrypted == encrypt_reference(key, block)
    assert cipher.decrypt(block) == decrypt_reference(key, block)
    assert cipher.decrypt(encrypted) == block


@settings(max_examples=300, deadline=None)
@given(words, words)
def test_reference_decrypt_inverts_reference_encrypt(key: int, block: int) -> None:
    assert decrypt_reference(key, encrypt_reference(key, block)) == block


@pytest.mark.parametrize(
    ("key", "block"),
    [(0, 0), (2**64 - 1, 2**64 - 1), (0, 2**64 - 1), (2**64 - 1, 0), (1, 1 << 63)],
)
def test_extreme_words(key: int, block: int) -> None:
    assert Sta(key).encrypt(block) == encrypt_reference(key, block)
    assert Sta(key).decrypt(block) == decrypt_reference(key, block)


def test_one_key_bit_changes_the_ciphertext() -> None:
    base = Sta(IEC_KEY).encrypt(IEC_BLOCK)
    for bit in range(64):
        assert Sta(IEC_KEY ^ 1 << bit).encrypt(IEC_BLOCK) != base


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_words_outside_64_bits_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        Sta(bad)
    with pytest.raises(ValueError):
        encrypt_reference(0, bad)
    with pytest.raises(ValueError):
        decrypt_reference(bad, 0)


def test_repr_does_not_show_the_key() -> None:
    assert f"{IEC_KEY:X}" not in repr(Sta(IEC_KEY)).upper()
