"""DRN and PAN with Luhn check digits, PANBlock and CONTROLBlock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.errors import StsError
from sts.identity import (
    CheckDigitError,
    Drn,
    Pan,
    control_block,
    luhn_check_digit,
    luhn_valid,
    pan_block,
)

serials = st.integers(min_value=0, max_value=10**8 - 1)
short_codes = st.integers(min_value=0, max_value=99)
long_codes = st.integers(min_value=0, max_value=9999)


@st.composite
def pans(draw: st.DrawFn) -> Pan:
    digits = draw(st.sampled_from([2, 4]))
    code = draw(short_codes if digits == 2 else long_codes)
    return Pan.from_drn(Drn.build(code, draw(serials), digits))


def test_luhn_known_values() -> None:
    assert luhn_check_digit("7992739871") == 3
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize("text", ["600727000000000009", "000001000000000082"])
def test_compliance_pans_parse(text: str) -> None:
    assert Pan.parse(text).digits == text


@settings(max_examples=300, deadline=None)
@given(pans())
def test_every_built_pan_parses(pan: Pan) -> None:
    assert Pan.parse(pan.digits) == pan
    assert len(pan.digits) == 18
    drn = pan.drn
    assert Drn.parse(drn.digits) == drn
    assert pan.iin == ("600727" if drn.mfr_digits == 2 else "0000")


@settings(max_examples=100, deadline=None)
@given(pans())
def test_every_single_digit_change_of_a_pan_is_rejected(pan: Pan) -> None:
    for position in range(18):
        for digit in "0123456789":
            if digit == pan.digits[position]:
                continue
            changed = pan.digits[:position] + digit + pan.digits[position + 1 :]
            with pytest.raises(StsError) as info:
                Pan.parse(changed)
            assert info.value.param == "pan"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([2, 4]), long_codes, serials)
def test_drn_fields(mfr_digits: int, code: int, serial: int) -> None:
    code %= 10**mfr_digits
    drn = Drn.build(code, serial, mfr_digits)
    assert (drn.mfr_code, drn.serial, drn.mfr_digits) == (code, serial, mfr_digits)
    assert luhn_valid(drn.digits)


def test_drn_refuses_bad_input() -> None:
    good = Drn.build(12, 34567890).digits
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(StsError):
        Drn.parse(bad)
    with pytest.raises(StsError):
        Drn.parse("1234567890")  # 10 digits
    with pytest.raises(StsError):
        Drn.build(100, 1)  # a 2-digit code of 3 digits
    with pytest.raises(StsError):
        Drn.build(1, 10**8)
    with pytest.raises(StsError):
        Drn.build(1, 1, mfr_digits=3)


def test_pan_with_a_bad_drn_check_digit_is_rejected() -> None:
    # The PAN's own check digit is right, the DRN's inside it is not.
    body = "600727" + "12" + "34567890" + "0"
    assert not luhn_valid(body[6:])
    text = body + str(luhn_check_digit(body))
    assert luhn_valid(text)
    with pytest.raises(StsError, match="DRN"):
        Pan.parse(text)


def test_pan_with_an_unknown_iin_is_rejected() -> None:
    body = "123456" + Drn.build(12, 34567890).digits
    with pytest.raises(StsError, match="IIN"):
        Pan.parse(body + str(luhn_check_digit(body)))


@pytest.mark.parametrize("text", ["60072700000000009", "6007270000000000099", "60072700000000000x"])
def test_pan_refuses_wrong_length_and_non_digits(text: str) -> None:
    with pytest.raises(StsError):
        Pan.parse(text)


def test_control_block_example() -> None:
    # REFERENCE.md §7.1: KT 2, SGC 123456, TI 01, KRN 1 -> 2123456011FFFFFF.
    assert control_block(2, 123456, 1, 1) == 0x2123456011FFFFFF


def test_dkga02_example_data() -> None:
    # REFERENCE.md §7.2: PANBlock xor CONTROLBlock for the compliance PAN is 2151356011FFFFFF.
    pan = Pan.parse("600727000000000009")
    assert pan_block(pan, 2) == 0x0072700000000000
    assert pan_block(pan, 2) ^ control_block(2, 123456, 1, 1) == 0x2151356011FFFFFF


def test_common_key_pan_block_has_zero_drn_digits() -> None:
    pan = Pan.from_drn(Drn.build(12, 34567890))
    assert pan_block(pan, 3) == int(("600727" + "0" * 11)[1:], 16)
    assert pan_block(pan, 2) != pan_block(pan, 3)
    long_pan = Pan.from_drn(Drn.build(1234, 34567890, 4))
    assert pan_block(long_pan, 3) == int(("0000" + "0" * 13)[1:], 16)


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ((4, 1, 1, 1), "kt"),
        ((2, 10**6, 1, 1), "sgc"),
        ((2, 1, 100, 1), "ti"),
        ((2, 1, 1, 10), "krn"),
    ],
)
def test_control_block_refuses_out_of_range_fields(args: tuple[int, ...], param: str) -> None:
    with pytest.raises(StsError) as info:
        control_block(*args)
    assert info.value.param == param


#: An engineering sample's PAN: its own check digit (2, Luhn gives 4) and its DRN's (1, Luhn
#: gives 3) are both wrong.
SAMPLE = "600727123456789012"


def test_a_bad_check_digit_is_refused_naming_the_digit_it_should_be() -> None:
    with pytest.raises(CheckDigitError) as info:
        Pan.parse(SAMPLE)
    assert info.value.param == "pan"
    assert "PAN check digit 2, expected 4" in str(info.value)
    assert "DRN check digit 1, expected 3" in str(info.value)
    with pytest.raises(CheckDigitError, match="DRN check digit 1, expected 3"):
        Drn.parse(SAMPLE[6:17])


def test_a_pan_taken_as_given_keeps_its_digits_and_says_what_is_wrong() -> None:
    pan = Pan.parse(SAMPLE, check_digits=False)
    assert pan.digits == SAMPLE
    assert pan.drn.digits == SAMPLE[6:17]
    assert pan.check_digit_problems() == [
        "PAN check digit 2, expected 4",
        "DRN check digit 1, expected 3",
    ]
    assert pan.relaxed_note() == (
        "relaxed (PAN check digit 2, expected 4; DRN check digit 1, expected 3)"
    )
    assert Pan.parse("600727000000000009", check_digits=False).check_digit_problems() == []
    assert Drn.parse(SAMPLE[6:17], check_digit=False).digits == SAMPLE[6:17]


@pytest.mark.parametrize("text", ["60072712345678901", "12345612345678901x", "123456123456789012"])
def test_taking_the_check_digits_as_given_still_refuses_what_is_not_a_pan(text: str) -> None:
    with pytest.raises(StsError) as info:
        Pan.parse(text, check_digits=False)
    assert not isinstance(info.value, CheckDigitError)
