"""Amount fields of transfer and limit tokens (IEC 62055-41).

A 16-bit field carries an exponent and a 14-bit mantissa; the value in base units is
``t = m * 10**e + sum(2**14 * 10**(n-1) for n in 1..e)``. Encoding picks the smallest
exponent whose mantissa fits and rounds **up**, in the customer's favour. All arithmetic is
on integer base units (0.1 kWh, 0.1 m3, watts, 10**-5 currency units): never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from sts.errors import StsError

MANTISSA_BITS = 14
_M_LIMIT = 1 << MANTISSA_BITS
MAX_UNITS_EXPONENT = 3
MAX_CURRENCY_EXPONENT = 31


def _offset(e: int) -> int:
    # sum_{n=1..e} 2**14 * 10**(n-1) == 2**14 * (10**e - 1) / 9
    return _M_LIMIT * (10**e - 1) // 9


def value_of(exponent: int, mantissa: int) -> int:
    """Base units carried by ``exponent`` and ``mantissa``."""
    return mantissa * 10**exponent + _offset(exponent)


def max_value(max_exponent: int) -> int:
    return value_of(max_exponent, _M_LIMIT - 1)


MAX_UNITS = max_value(MAX_UNITS_EXPONENT)  # 18 201 624 base units
MAX_CURRENCY = max_value(MAX_CURRENCY_EXPONENT)


def encode_exponent_mantissa(
    value: int, max_exponent: int, param: str = "amount"
) -> tuple[int, int]:
    """The (exponent, mantissa) pair for ``value`` base units, rounded up.

    Values in the gaps between exponent ranges round up to the next representable value.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise StsError(param, "must be a whole number of base units")
    if value < 0:
        raise StsError(param, "must not be negative")
    for e in range(max_exponent + 1):
        offset = _offset(e)
        step = 10**e
        m = max(0, -(-(value - offset) // step))
        if m < _M_LIMIT:
            return e, m
    raise StsError(
        param, f"{value} base units is above the largest encodable {max_value(max_exponent)}"
    )


def round_up(value: int, max_exponent: int = MAX_UNITS_EXPONENT, param: str = "amount") -> int:
    """The value a token actually carries when asked for ``value`` base units."""
    return value_of(*encode_exponent_mantissa(value, max_exponent, param))


def encode_units(value: int, param: str = "amount") -> int:
    """16-bit field (e in bits 15-14, m in 13-0) for units, MPL and MPPUL."""
    e, m = encode_exponent_mantissa(value, MAX_UNITS_EXPONENT, param)
    return e << 14 | m


def decode_units(field: int) -> int:
    """Base units carried by a units/MPL/MPPUL field."""
    return value_of(field >> 14, field & (_M_LIMIT - 1))


@dataclass(frozen=True)
class CurrencyField:
    """Currency amount as carried: the 16-bit amount field and the 4-bit S&E nibble."""

    amount_field: int
    sign_exponent: int


def encode_currency(value: int, param: str = "amount") -> CurrencyField:
    """Currency field for ``value`` (10**-5 currency units, may be negative), rounded up
    in magnitude.

    Exponent bits: e0 -> field bit 14, e1 -> field bit 15, e2/e3/e4 -> S&E bits 0/1/2,
    sign -> S&E bit 3.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise StsError(param, "must be a whole number of base units")
    sign = 1 if value < 0 else 0
    e, m = encode_exponent_mantissa(abs(value), MAX_CURRENCY_EXPONENT, param)
    field = (e >> 1 & 1) << 15 | (e & 1) << 14 | m
    sne = sign << 3 | (e >> 2)
    return CurrencyField(field, sne)


def decode_currency(amount_field: int, sign_exponent: int) -> int:
    """Signed base units (10**-5) carried by a currency field and S&E nibble."""
    e = (amount_field >> 14 & 1) | (amount_field >> 15 & 1) << 1 | (sign_exponent & 0b111) << 2
    value = value_of(e, amount_field & (_M_LIMIT - 1))
    return -value if sign_exponent & 0b1000 else value


# Service units: the base unit of each transfer subclass as a Decimal scale.
#: subclass -> (base units per unit, unit name)
SERVICE_UNITS: dict[int, tuple[int, str]] = {
    0: (10, "kWh"),
    1: (10, "m3"),
    2: (10, "m3"),
    3: (10, "min"),
    4: (100_000, "currency"),
    5: (100_000, "currency"),
    6: (100_000, "currency"),
    7: (100_000, "currency"),
}


def to_base_units(amount: str | Decimal | int, subclass: int, param: str = "amount") -> int:
    """A decimal amount in the service's unit as integer base units, rounded up.

    ``"25.6"`` kWh -> 256; ``"100.00001"`` currency -> 10 000 001. Rounding up here (a finer
    amount than the base unit) favours the customer, like the field encoding.
    """
    try:
        dec = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        raise StsError(param, f"{amount!r} is not a decimal number") from None
    if not dec.is_finite():
        raise StsError(param, f"{amount!r} is not a finite number")
    scale, _unit = SERVICE_UNITS[subclass]
    return int((dec * scale).to_integral_value(rounding=ROUND_CEILING))


def from_base_units(value: int, subclass: int) -> Decimal:
    """Base units of a service as a Decimal in the service's unit."""
    scale, _unit = SERVICE_UNITS[subclass]
    places = len(str(scale)) - 1
    return (Decimal(value) / scale).quantize(Decimal(1).scaleb(-places))


def round_up_currency(value: int) -> int:
    """The signed currency value a token carries when asked for ``value`` base units."""
    carried = round_up(abs(value), MAX_CURRENCY_EXPONENT)
    return -carried if value < 0 else carried


def largest_at_most(value: int, max_exponent: int = MAX_UNITS_EXPONENT) -> int:
    """The largest value a field carries exactly that is not above ``value`` (0 for 0)."""
    best = 0
    for e in range(max_exponent + 1):
        offset = _offset(e)
        if value < offset:
            break
        m = min((value - offset) // 10**e, _M_LIMIT - 1)
        best = max(best, value_of(e, m))
    return best


def split_exact(value: int, subclass: int) -> list[int]:
    """``value`` base units as amounts transfer tokens carry exactly, largest first: how a
    register is credited to an exact figure (a declared limit) that one token cannot carry."""
    if value < 0:
        raise StsError("amount", "must not be negative")
    max_exponent = MAX_CURRENCY_EXPONENT if subclass >= 4 else MAX_UNITS_EXPONENT
    parts = []
    while value:
        part = largest_at_most(value, max_exponent)
        parts.append(part)
        value -= part
    return parts
