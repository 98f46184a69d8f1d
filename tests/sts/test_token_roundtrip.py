"""Every token kind survives encode -> 20 digits -> decode, under EA07 and EA11 keys."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts import amount as amounts
from sts.crc import crc_field
from sts.errors import StsError
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.tid import TID_LIMIT
from sts.tokens import (
    ClearCredit,
    ClearTamperCondition,
    InitiateMeterTest,
    ReservedToken,
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Set3rdSectionDecoderKey,
    Set4thSectionDecoderKey,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
    SetTariffRate,
    SetWaterMeterFactor,
    Token,
    TokenClass,
    TransferCredit,
    data_block,
    decode,
    describe,
    encode,
)

tids = st.integers(min_value=0, max_value=TID_LIMIT - 1)
nibbles = st.integers(min_value=0, max_value=15)
words16 = st.integers(min_value=0, max_value=0xFFFF)
words32 = st.integers(min_value=0, max_value=0xFFFFFFFF)
unit_amounts = st.one_of(
    st.integers(min_value=0, max_value=20_000),  # exact (e = 0) and the first steps
    st.integers(min_value=0, max_value=amounts.MAX_UNITS),
)
currency_amounts = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.integers(min_value=-amounts.MAX_CURRENCY, max_value=amounts.MAX_CURRENCY),
)


@st.composite
def keys(draw: st.DrawFn) -> DecoderKey:
    """A random decoder key for EA07 or EA11."""
    ea = draw(st.sampled_from([EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1]))
    return DecoderKey(draw(st.binary(min_size=ea.key_bytes, max_size=ea.key_bytes)), ea)


def _check_round_trip(token: Token, key: DecoderKey | None, expected: Token | None = None) -> None:
    digits = encode(token, key)
    assert len(digits) == 20 and digits.isdigit()
    decoded = decode(digits, key)
    assert decoded.crc_ok
    assert decoded.token == (token if expected is None else expected)
    assert decoded.token_class == token.token_class
    assert decoded.subclass == token.subclass
    assert decoded.data_block == data_block(decoded.token)


# --- class 0 -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(keys(), st.integers(min_value=0, max_value=3), tids, unit_amounts, nibbles)
def test_transfer_units(key: DecoderKey, sub: int, tid: int, amount: int, rnd: int) -> None:
    token = TransferCredit(sub, tid, amount, rnd)
    carried = amounts.round_up(amount)
    _check_round_trip(token, key, TransferCredit(sub, tid, carried, rnd))
    assert carried >= amount


@settings(max_examples=300, deadline=None)
@given(keys(), st.integers(min_value=4, max_value=7), tids, currency_amounts)
def test_transfer_currency_with_sign(key: DecoderKey, sub: int, tid: int, amount: int) -> None:
    token = TransferCredit(sub, tid, amount)
    carried = amounts.round_up_currency(amount)
    _check_round_trip(token, key, TransferCredit(sub, tid, carried))
    assert abs(carried) >= abs(amount)
    assert amount == 0 or (carried < 0) == (amount < 0)


# --- class 1 -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**36 - 1), st.integers(min_value=0, max_value=255))
def test_initiate_subclass_0(control: int, mfr: int) -> None:
    _check_round_trip(InitiateMeterTest(0, control, mfr), None)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**28 - 1), words16)
def test_initiate_subclass_1(control: int, mfr: int) -> None:
    _check_round_trip(InitiateMeterTest(1, control, mfr), None)


def test_class1_ignores_the_key() -> None:
    token = InitiateMeterTest(0, 0xFFFFFFFFF, 0)
    key = DecoderKey.from_hex("0ABC12DEF3456789")
    assert encode(token, key) == encode(token) == "56493153725450313471"
    assert decode(encode(token), key).token == token


# --- class 2 -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    keys(),
    st.sampled_from([SetMaximumPowerLimit, SetMaximumPhasePowerUnbalanceLimit]),
    tids,
    unit_amounts,
    nibbles,
)
def test_power_limits(key: DecoderKey, kind: type, tid: int, watts: int, rnd: int) -> None:
    _check_round_trip(kind(tid, watts, rnd), key, kind(tid, amounts.round_up(watts), rnd))


@settings(max_examples=300, deadline=None)
@given(
    keys(),
    st.sampled_from([ClearCredit, SetTariffRate, ClearTamperCondition, SetWaterMeterFactor]),
    tids,
    words16,
    nibbles,
)
def test_raw_value_management(key: DecoderKey, kind: type, tid: int, value: int, rnd: int) -> None:
    _check_round_trip(kind(tid, value, rnd), key)


@settings(max_examples=200, deadline=None)
@given(
    keys(),
    nibbles,
    nibbles,
    st.booleans(),
    st.integers(min_value=0, max_value=3),
    words32,
    st.integers(min_value=0, max_value=1),
)
def test_kct1(
    key: DecoderKey, kenho: int, krn: int, ro: bool, kt: int, word: int, res: int
) -> None:
    _check_round_trip(Set1stSectionDecoderKey(kenho, krn, ro, kt, word, res), key)


@settings(max_examples=150, deadline=None)
@given(keys(), nibbles, st.integers(min_value=0, max_value=255), words32)
def test_kct2(key: DecoderKey, kenlo: int, ti: int, word: int) -> None:
    _check_round_trip(Set2ndSectionDecoderKey(kenlo, ti, word), key)


@settings(max_examples=150, deadline=None)
@given(
    keys(),
    st.sampled_from([Set3rdSectionDecoderKey, Set4thSectionDecoderKey]),
    st.integers(min_value=0, max_value=0xFFF),
    words32,
)
def test_kct3_and_kct4(key: DecoderKey, kind: type, sgc_part: int, word: int) -> None:
    _check_round_trip(kind(sgc_part, word), key)


# --- reserved ------------------------------------------------------------------------------


@st.composite
def reserved_tokens(draw: st.DrawFn) -> ReservedToken:
    token_class = draw(
        st.sampled_from([TokenClass.TRANSFER, TokenClass.INITIATE, TokenClass.MANAGEMENT])
    )
    subclasses = {
        TokenClass.TRANSFER: range(8, 16),
        TokenClass.INITIATE: range(2, 16),
        TokenClass.MANAGEMENT: range(10, 16),
    }[token_class]
    payload = draw(st.integers(min_value=0, max_value=2**44 - 1))
    return ReservedToken(token_class, draw(st.sampled_from(subclasses)), payload)


@settings(max_examples=200, deadline=None)
@given(keys(), reserved_tokens())
def test_reserved_subclasses(key: DecoderKey, token: ReservedToken) -> None:
    _check_round_trip(token, key)


@pytest.mark.parametrize("ea", [EncryptionAlgorithm.STA, EncryptionAlgorithm.MISTY1])
def test_reserved_class_3(ea: EncryptionAlgorithm) -> None:
    # Class 3 is reserved; whatever the engine mints for it must read back the same.
    key = DecoderKey(bytes(range(1, ea.key_bytes + 1)), ea)
    for sub, payload in ((0, 0), (3, 12_345), (15, 2**44 - 1)):
        _check_round_trip(ReservedToken(TokenClass.RESERVED, sub, payload), key)


# --- behaviour around the round trip -------------------------------------------------------


def test_wrong_key_fails_the_crc() -> None:
    right = DecoderKey.from_hex("0ABC12DEF3456789")
    wrong = DecoderKey.from_hex("0ABC12DEF3456788")
    digits = encode(TransferCredit(0, 1698595, 256, 11), right)
    assert not decode(digits, wrong).crc_ok


def test_currency_uses_crc_c() -> None:
    # The same block with the plain CRC would not verify: subclasses 4-7 use CRC_C.
    token = TransferCredit(4, 1000, 10_000_000)
    block = data_block(token)
    assert block & 0xFFFF == crc_field(block >> 16, currency=True)
    assert block & 0xFFFF != crc_field(block >> 16, currency=False)


def test_encrypted_classes_need_a_key() -> None:
    with pytest.raises(StsError) as info:
        encode(TransferCredit(0, 1, 1))
    assert info.value.param == "key"
    digits = encode(TransferCredit(0, 1, 1), DecoderKey.from_hex("0ABC12DEF3456789"))
    with pytest.raises(StsError):
        decode(digits)


@pytest.mark.parametrize(
    ("factory", "param"),
    [
        (lambda: TransferCredit(8, 1, 1), "subclass"),
        (lambda: TransferCredit(0, TID_LIMIT, 1), "tid"),
        (lambda: TransferCredit(0, 1, amounts.MAX_UNITS + 1), "amount"),
        (lambda: TransferCredit(0, 1, -1), "amount"),
        (lambda: TransferCredit(0, 1, 1, 16), "rnd"),
        (lambda: TransferCredit(4, 1, 1, 1), "rnd"),
        (lambda: TransferCredit(4, 1, amounts.MAX_CURRENCY + 1), "amount"),
        (lambda: InitiateMeterTest(2, 1), "subclass"),
        (lambda: InitiateMeterTest(0, 2**36), "control"),
        (lambda: InitiateMeterTest(1, 1, 2**16), "mfr_code"),
        (lambda: SetMaximumPowerLimit(1, amounts.MAX_UNITS + 1), "value"),
        (lambda: ClearCredit(1, 0x10000), "value"),
        (lambda: ClearTamperCondition(-1), "tid"),
        (lambda: Set1stSectionDecoderKey(16, 1, False, 2, 0), "kenho"),
        (lambda: Set1stSectionDecoderKey(1, 1, False, 4, 0), "kt"),
        (lambda: Set2ndSectionDecoderKey(1, 256, 0), "ti"),
        (lambda: Set3rdSectionDecoderKey(0x1000, 0), "sgc_part"),
        (lambda: Set4thSectionDecoderKey(0, 2**32), "key_word"),
        (lambda: ReservedToken(TokenClass.RESERVED, 0, 2**44), "payload"),
    ],
)
def test_fields_out_of_range_are_refused(factory: object, param: str) -> None:
    with pytest.raises(StsError) as info:
        factory()  # type: ignore[operator]
    assert info.value.param == param


def test_describe_never_shows_key_bits() -> None:
    word = 0x060B8643
    for token in (
        Set1stSectionDecoderKey(15, 1, False, 2, word),
        Set2ndSectionDecoderKey(15, 2, word),
        Set3rdSectionDecoderKey(0x241, word),
        Set4thSectionDecoderKey(0x01E, word),
    ):
        text = json.dumps(describe(token))
        assert "060b8643" not in text.lower()
        assert str(word) not in text


def test_describe_transfer() -> None:
    assert describe(TransferCredit(0, 1698595, 256, 11)) == {
        "kind": "TransferCredit",
        "class": 0,
        "subclass": 0,
        "tid": 1698595,
        "amount_base_units": 256,
        "amount": "25.6",
        "unit": "kWh",
        "rnd": 11,
    }
    currency = describe(TransferCredit(5, 7, -150_000))
    assert currency["amount"] == "-1.50000"
    assert "rnd" not in currency
