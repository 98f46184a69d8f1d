"""The vending side: distinct TIDs per meter, KEN limits, key change token sets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.errors import StsError, TokenExhaustedError
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tid import TID_LIMIT, BaseDate, tid_from_datetime
from sts.tokens import (
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Set3rdSectionDecoderKey,
    Set4thSectionDecoderKey,
    decode,
)
from sts.vending import (
    KEN_NEVER_EXPIRES,
    NewKey,
    TidAllocator,
    check_ken,
    encode_key_change,
    ken_allows,
    key_change_tokens,
)

tids = st.integers(min_value=0, max_value=TID_LIMIT - 1)


def test_second_token_in_a_minute_gets_the_next_minute() -> None:
    allocator = TidAllocator()
    when = datetime(2004, 3, 1, 13, 55, 10)
    first = allocator.allocate_at(when)
    second = allocator.allocate_at(when.replace(second=50))
    assert first == tid_from_datetime(when) == 5871715
    assert second == first + 1
    assert allocator.last_issued == second
    # A later minute that is already taken moves on as well.
    assert allocator.allocate(first) == first + 2


def test_allocate_at_uses_the_base_date() -> None:
    allocator = TidAllocator()
    when = datetime(2025, 1, 1)
    assert allocator.allocate_at(when, BaseDate.Y2014) == tid_from_datetime(when, BaseDate.Y2014)
    with pytest.raises(StsError):
        TidAllocator().allocate_at(when)  # past the 1993 range


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), tids), st.lists(tids, max_size=40))
def test_never_the_same_tid_twice(last: int | None, requests: list[int]) -> None:
    allocator = TidAllocator(last)
    issued: list[int] = []
    for requested in requests:
        try:
            tid = allocator.allocate(requested)
        except TokenExhaustedError:
            assert (issued[-1] if issued else last) == TID_LIMIT - 1
            break
        assert tid >= requested
        assert last is None or tid > last
        issued.append(tid)
    assert issued == sorted(set(issued))


def test_refuses_past_the_last_tid() -> None:
    allocator = TidAllocator(TID_LIMIT - 2)
    assert allocator.allocate(0) == TID_LIMIT - 1
    with pytest.raises(TokenExhaustedError) as info:
        allocator.allocate(0)
    assert info.value.param == "tid"
    assert allocator.last_issued == TID_LIMIT - 1  # a refusal issues nothing


def test_refuses_past_ken() -> None:
    allocator = TidAllocator(ken=3)
    last_allowed = (3 << 16) | 0xFFFF
    assert allocator.allocate(last_allowed) == last_allowed
    with pytest.raises(TokenExhaustedError):
        allocator.allocate(0)  # would be 4 << 16
    with pytest.raises(TokenExhaustedError):
        TidAllocator(ken=3).allocate(4 << 16)
    # KEN 255 never expires.
    assert TidAllocator(ken=KEN_NEVER_EXPIRES).allocate(TID_LIMIT - 1) == TID_LIMIT - 1


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), tids), st.integers(min_value=0, max_value=255), tids)
def test_allocators_persist_nothing(last: int | None, ken: int, requested: int) -> None:
    a, b = TidAllocator(last, ken), TidAllocator(last, ken)
    try:
        peeked = a.peek(requested)
    except TokenExhaustedError:
        with pytest.raises(TokenExhaustedError):
            b.allocate(requested)
        assert a.last_issued == b.last_issued == last
        return
    assert a.last_issued == last  # peek issues nothing
    assert a.allocate(requested) == b.allocate(requested) == peeked
    assert a.last_issued == b.last_issued == peeked


@pytest.mark.parametrize("bad", [-1, TID_LIMIT])
def test_bad_tids_are_refused(bad: int) -> None:
    with pytest.raises(StsError):
        TidAllocator(bad)
    with pytest.raises(StsError):
        TidAllocator().allocate(bad)


def test_ken_rules() -> None:
    assert ken_allows(5 << 16 | 0xFFFF, 5)
    assert not ken_allows(6 << 16, 5)
    assert ken_allows(TID_LIMIT - 1, 255)
    assert check_ken(0) == 0
    for bad in (-1, 256, True):
        with pytest.raises(StsError):
            check_ken(bad)  # type: ignore[arg-type]


# --- key change sets -----------------------------------------------------------------------


def test_64_bit_key_change_set() -> None:
    new = DecoderKey.from_hex("060B8643C59A27F1")
    kcts = key_change_tokens(NewKey(new, krn=3, kt=2, ti=99, ken=0xA5, ro=True))
    assert kcts == (
        Set1stSectionDecoderKey(0xA, 3, True, 2, 0x060B8643),
        Set2ndSectionDecoderKey(0x5, 99, 0xC59A27F1),
    )


def test_128_bit_key_change_set_carries_the_sgc() -> None:
    new = DecoderKey.from_hex("00112233445566778899AABBCCDDEEFF", EncryptionAlgorithm.MISTY1)
    kcts = key_change_tokens(NewKey(new, krn=2, kt=2, ti=1, sgc=123457))
    assert kcts == (
        Set1stSectionDecoderKey(15, 2, False, 2, 0x00112233),  # bits 127-96
        Set2ndSectionDecoderKey(15, 1, 0xCCDDEEFF),  # bits 31-0
        Set3rdSectionDecoderKey(0x241, 0x44556677),  # SGC 0x01E241 bits 11-0; bits 95-64
        Set4thSectionDecoderKey(0x01E, 0x8899AABB),  # SGC bits 23-12; bits 63-32
    )


def test_128_bit_key_change_needs_the_sgc() -> None:
    new = DecoderKey(bytes(16), EncryptionAlgorithm.MISTY1)
    with pytest.raises(StsError) as info:
        NewKey(new, krn=1, kt=2, ti=1)
    assert info.value.param == "new_sgc"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"krn": 10}, "new_krn"),
        ({"kt": 4}, "new_kt"),
        ({"ti": 100}, "new_ti"),
        ({"ken": 256}, "ken"),
    ],
)
def test_new_key_fields_are_checked(kwargs: dict[str, int], param: str) -> None:
    fields = {"krn": 1, "kt": 2, "ti": 1} | kwargs
    with pytest.raises(StsError) as info:
        NewKey(DecoderKey(bytes(8)), **fields)  # type: ignore[arg-type]
    assert info.value.param == param


def test_key_change_is_encrypted_under_the_current_key(make_key: Callable[..., DecoderKey]) -> None:
    current, new = make_key(), make_key(krn=2)
    digits = encode_key_change(NewKey(new, krn=2, kt=2, ti=1), current)
    assert len(digits) == 2
    assert all(decode(d, current).crc_ok for d in digits)
    assert not any(decode(d, new).crc_ok for d in digits)


def test_key_change_refuses_another_algorithm(make_key: Callable[..., DecoderKey]) -> None:
    current = make_key()
    new = make_key(EncryptionAlgorithm.MISTY1)
    with pytest.raises(StsError) as info:
        encode_key_change(NewKey(new, krn=1, kt=2, ti=1, sgc=123457), current)
    assert info.value.param == "new_key"
