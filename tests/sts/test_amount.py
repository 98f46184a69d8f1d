"""Amount fields: exponent/mantissa encoding, always rounded up, for units and currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts import amount as amounts
from sts.errors import StsError

units = st.integers(min_value=0, max_value=amounts.MAX_UNITS)
currency_magnitudes = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=amounts.MAX_CURRENCY),
)


def _previous_representable(exponent: int, mantissa: int) -> int | None:
    """The largest representable value below (exponent, mantissa), None below zero."""
    if mantissa > 0:
        return amounts.value_of(exponent, mantissa - 1)
    if exponent > 0:
        return amounts.value_of(exponent - 1, (1 << 14) - 1)
    return None


def test_exponent_ranges() -> None:
    # REFERENCE.md §4.1: the first and last value and the step of each exponent.
    assert [amounts.value_of(e, 0) for e in range(4)] == [0, 16_384, 180_224, 1_818_624]
    assert [amounts.value_of(e, 16_383) for e in range(4)] == [
        16_383,
        180_214,
        1_818_524,
        18_201_624,
    ]
    assert amounts.MAX_UNITS == 18_201_624


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (0, 0x0000),
        (1, 0x0001),
        (256, 0x0100),
        (16_383, 0x3FFF),
        (16_384, 0x4000),
        (16_385, 0x4001),  # 16 384 + 1 rounds up to 16 394 (one step of 10)
        (180_214, 0x7FFF),
        (180_215, 0x8000),  # in the gap: up to 180 224
        (180_223, 0x8000),
        (180_224, 0x8000),
        (18_201_624, 0xFFFF),
    ],
)
def test_known_fields(value: int, field: int) -> None:
    assert amounts.encode_units(value) == field


def test_every_field_decodes_and_re_encodes_to_itself() -> None:
    # Each of the 65 536 fields is a distinct value, and its own encoding.
    seen = set()
    for field in range(1 << 16):
        value = amounts.decode_units(field)
        assert amounts.encode_units(value) == field
        seen.add(value)
    assert len(seen) == 1 << 16


def test_each_step_rounds_up_to_its_upper_end() -> None:
    # Every value between two neighbouring representable values goes to the upper one: the
    # ends of every step are checked here, the insides by the property below.
    previous = amounts.decode_units(0)
    assert amounts.round_up(0) == 0
    for field in range(1, 1 << 16):
        value = amounts.decode_units(field)
        assert value > previous
        assert amounts.round_up(previous + 1) == value
        assert amounts.round_up(value) == value
        previous = value


@settings(max_examples=500, deadline=None)
@given(units)
def test_units_round_up_to_the_nearest_representable_value(value: int) -> None:
    e, m = amounts.encode_exponent_mantissa(value, amounts.MAX_UNITS_EXPONENT)
    carried = amounts.value_of(e, m)
    assert carried >= value
    assert carried == amounts.round_up(value)
    assert amounts.decode_units(amounts.encode_units(value)) == carried
    # Minimal: the representable value just below is below the request.
    previous = _previous_representable(e, m)
    assert previous is None or previous < value
    # Smallest exponent whose mantissa fits.
    assert 0 <= m < 1 << 14
    assert e == 0 or amounts.value_of(e - 1, (1 << 14) - 1) < value


@settings(max_examples=300, deadline=None)
@given(units, units)
def test_rounding_is_monotonic(a: int, b: int) -> None:
    a, b = min(a, b), max(a, b)
    assert amounts.round_up(a) <= amounts.round_up(b)


def test_values_above_the_largest_are_refused() -> None:
    with pytest.raises(StsError) as info:
        amounts.encode_units(amounts.MAX_UNITS + 1, "value")
    assert info.value.param == "value"
    with pytest.raises(StsError):
        amounts.encode_units(-1)
    with pytest.raises(StsError):
        amounts.encode_units(1.5)  # type: ignore[arg-type]
    with pytest.raises(StsError):
        amounts.encode_units(True)  # type: ignore[arg-type]


# --- currency ------------------------------------------------------------------------------


def test_currency_example() -> None:
    # REFERENCE.md §4.2: 100.00000 -> t 10 000 000 -> e 3, m 8182, field 0xDFF6, S&E 0.
    assert amounts.to_base_units("100.00000", 4) == 10_000_000
    field = amounts.encode_currency(10_000_000)
    assert (field.amount_field, field.sign_exponent) == (0xDFF6, 0)
    # 8182 * 10**3 + 1 818 624: the carried value is the next representable one, 100.00624.
    assert amounts.decode_currency(0xDFF6, 0) == 10_000_624
    assert amounts.round_up_currency(10_000_000) == 10_000_624


def test_currency_exponent_bits() -> None:
    # e = e0 + 2 e1 + 4 e2 + 8 e3 + 16 e4: e0 field bit 14, e1 field bit 15, e2..e4 S&E 0..2.
    for e in range(32):
        field = amounts.encode_currency(amounts.value_of(e, 5))
        assert field.amount_field & 0x3FFF == 5
        assert field.amount_field >> 14 & 1 == e & 1
        assert field.amount_field >> 15 & 1 == e >> 1 & 1
        assert field.sign_exponent == e >> 2
    negative = amounts.encode_currency(-amounts.value_of(31, 5))
    assert negative.sign_exponent == 0b1111


@settings(max_examples=500, deadline=None)
@given(currency_magnitudes, st.booleans())
def test_currency_rounds_magnitude_up_and_keeps_the_sign(magnitude: int, negative: bool) -> None:
    value = -magnitude if negative else magnitude
    field = amounts.encode_currency(value)
    assert 0 <= field.amount_field < 1 << 16
    assert 0 <= field.sign_exponent < 1 << 4
    carried = amounts.decode_currency(field.amount_field, field.sign_exponent)
    assert carried == amounts.round_up_currency(value)
    assert abs(carried) == amounts.round_up(magnitude, amounts.MAX_CURRENCY_EXPONENT)
    assert abs(carried) >= magnitude
    if magnitude:
        assert (carried < 0) == negative
    e, m = amounts.encode_exponent_mantissa(magnitude, amounts.MAX_CURRENCY_EXPONENT)
    previous = _previous_representable(e, m)
    assert previous is None or previous < magnitude


@settings(max_examples=300, deadline=None)
@given(currency_magnitudes, currency_magnitudes)
def test_currency_rounding_is_monotonic(a: int, b: int) -> None:
    a, b = min(a, b), max(a, b)
    assert amounts.round_up_currency(a) <= amounts.round_up_currency(b)
    assert amounts.round_up_currency(-b) <= amounts.round_up_currency(-a)


def test_currency_above_the_largest_is_refused() -> None:
    with pytest.raises(StsError):
        amounts.encode_currency(amounts.MAX_CURRENCY + 1)
    with pytest.raises(StsError):
        amounts.encode_currency(-amounts.MAX_CURRENCY - 1)


# --- decimal amounts in the service's unit -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "subclass", "base_units"),
    [
        ("25.6", 0, 256),
        ("0.1", 0, 1),
        ("0.01", 0, 1),  # finer than the base unit: rounded up, never down
        ("0", 1, 0),
        ("1", 2, 10),
        ("100.00001", 4, 10_000_001),
        ("100.000001", 5, 10_000_001),
        ("-1.5", 6, -150_000),
        (Decimal("3.2"), 3, 32),
        (7, 0, 70),
    ],
)
def test_to_base_units(text: str | Decimal | int, subclass: int, base_units: int) -> None:
    assert amounts.to_base_units(text, subclass) == base_units


@pytest.mark.parametrize("text", ["abc", "", "nan", "inf", "1,5"])
def test_to_base_units_refuses_non_numbers(text: str) -> None:
    with pytest.raises(StsError) as info:
        amounts.to_base_units(text, 0, "amount")
    assert info.value.param == "amount"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=0, max_value=7))
def test_base_units_survive_the_decimal_form(value: int, subclass: int) -> None:
    assert amounts.to_base_units(amounts.from_base_units(value, subclass), subclass) == value


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from([0, 1, 3, 4, 7]))
def test_any_amount_splits_into_amounts_tokens_carry_exactly(value: int, subclass: int) -> None:
    parts = amounts.split_exact(value, subclass)
    assert sum(parts) == value
    assert parts == sorted(parts, reverse=True)
    carried = amounts.round_up_currency if subclass >= 4 else amounts.round_up
    assert all(carried(p) == p for p in parts)  # no part is rounded up on its way


def test_the_declared_credit_limit_takes_a_few_tokens() -> None:
    parts = amounts.split_exact(99_999_999 - 1, 0)
    assert sum(parts) == 99_999_998 and len(parts) <= 8
    assert parts[0] == amounts.MAX_UNITS
    with pytest.raises(StsError):
        amounts.split_exact(-1, 0)
