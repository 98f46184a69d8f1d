"""STS tokens (IEC 62055-41): the token kinds, and their encoding to and from 20 digits.

Each token kind is a small frozen data class holding its fields as the standard names them.
:func:`encode` turns one into 20 digits under a decoder key (class 1 needs none);
:func:`decode` does the reverse and says whether the CRC holds. Amounts are integer base
units (0.1 kWh, 0.1 m3, watts, 10**-5 currency units); see :mod:`sts.amount`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from sts import amount as amounts
from sts.codec import insert_class, parse_digits, split_class, to_digits
from sts.crc import crc_field
from sts.errors import StsError
from sts.keys import DecoderKey
from sts.tid import TID_LIMIT


class TokenClass(IntEnum):
    TRANSFER = 0
    INITIATE = 1
    MANAGEMENT = 2
    RESERVED = 3


class TransferSubclass(IntEnum):
    ELECTRICITY = 0
    WATER = 1
    GAS = 2
    TIME = 3
    ELECTRICITY_CURRENCY = 4
    WATER_CURRENCY = 5
    GAS_CURRENCY = 6
    TIME_CURRENCY = 7


class ManagementSubclass(IntEnum):
    SET_MAXIMUM_POWER_LIMIT = 0
    CLEAR_CREDIT = 1
    SET_TARIFF_RATE = 2
    SET_1ST_SECTION_DECODER_KEY = 3
    SET_2ND_SECTION_DECODER_KEY = 4
    CLEAR_TAMPER_CONDITION = 5
    SET_MAXIMUM_PHASE_POWER_UNBALANCE_LIMIT = 6
    SET_WATER_METER_FACTOR = 7
    SET_3RD_SECTION_DECODER_KEY = 8
    SET_4TH_SECTION_DECODER_KEY = 9


CLEAR_ALL_REGISTERS = 0xFFFF


def _uint(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise StsError(name, f"{value!r} does not fit {bits} bits")


def _tid(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < TID_LIMIT:
        raise StsError("tid", f"{value!r} is not a 24-bit TID (0 to {TID_LIMIT - 1})")


# --- token kinds -------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferCredit:
    """Class 0: credit for a service. ``amount`` in base units; currency may be negative.

    Currency subclasses (4-7) carry sign and exponent bits where the others carry RND, so
    ``rnd`` must be 0 for them.
    """

    token_class: ClassVar[TokenClass] = TokenClass.TRANSFER
    subclass: int
    tid: int
    amount: int
    rnd: int = 0

    def __post_init__(self) -> None:
        _uint("subclass", self.subclass, 4)
        if self.subclass > 7:
            raise StsError("subclass", f"class 0 subclass {self.subclass} is reserved")
        _tid(self.tid)
        _uint("rnd", self.rnd, 4)
        if self.is_currency:
            if self.rnd:
                raise StsError("rnd", "currency transfer tokens carry S&E, not RND")
            if (
                not isinstance(self.amount, int)
                or isinstance(self.amount, bool)
                or abs(self.amount) > amounts.MAX_CURRENCY
            ):
                raise StsError("amount", "currency amount out of range")
        else:
            if (
                not isinstance(self.amount, int)
                or isinstance(self.amount, bool)
                or not 0 <= self.amount <= amounts.MAX_UNITS
            ):
                raise StsError(
                    "amount", f"{self.amount!r} is outside 0 to {amounts.MAX_UNITS} base units"
                )

    @property
    def is_currency(self) -> bool:
        return self.subclass >= 4

    @property
    def has_tid(self) -> bool:
        return True


@dataclass(frozen=True)
class InitiateMeterTest:
    """Class 1: InitiateMeterTest/Display; not encrypted, authenticated by CRC and MfrCode.

    Subclass 0: 36 control bits and an 8-bit MfrCode field (2-digit codes); subclass 1: 28
    control bits and a 16-bit MfrCode field (4-digit codes). Whether the code is one the
    meter accepts is the meter's check, not the encoding's.
    """

    token_class: ClassVar[TokenClass] = TokenClass.INITIATE
    subclass: int
    control: int
    mfr_code: int = 0

    def __post_init__(self) -> None:
        if self.subclass not in (0, 1):
            raise StsError("subclass", f"class 1 subclass {self.subclass!r} is not 0 or 1")
        control_bits, mfr_bits = (36, 8) if self.subclass == 0 else (28, 16)
        _uint("control", self.control, control_bits)
        _uint("mfr_code", self.mfr_code, mfr_bits)

    @property
    def has_tid(self) -> bool:
        return False

    @property
    def all_tests(self) -> bool:
        """Test 0: every control bit set asks for all supported tests."""
        bits = 36 if self.subclass == 0 else 28
        return self.control == (1 << bits) - 1


class _Management:
    """TID-bearing class 2 tokens: RND, TID and a 16-bit value."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int]
    tid: int
    rnd: int

    def __post_init__(self) -> None:
        _tid(self.tid)
        _uint("rnd", self.rnd, 4)

    @property
    def has_tid(self) -> bool:
        return True

    @property
    def value_field(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class SetMaximumPowerLimit(_Management):
    """Class 2/0: the maximum power limit in watts (amount encoding, rounded up)."""

    subclass: ClassVar[int] = 0
    tid: int
    watts: int = 0
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.watts, int) or not 0 <= self.watts <= amounts.MAX_UNITS:
            raise StsError("value", f"{self.watts!r} W is outside 0 to {amounts.MAX_UNITS} W")

    @property
    def value_field(self) -> int:
        return amounts.encode_units(self.watts, "value")


@dataclass(frozen=True)
class ClearCredit(_Management):
    """Class 2/1: empty one credit register (0-7) or all (0xFFFF)."""

    subclass: ClassVar[int] = 1
    tid: int
    register: int = CLEAR_ALL_REGISTERS
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _uint("value", self.register, 16)

    @property
    def value_field(self) -> int:
        return self.register


@dataclass(frozen=True)
class SetTariffRate(_Management):
    """Class 2/2: tariff rate, a raw 16-bit value (reserved for future definition)."""

    subclass: ClassVar[int] = 2
    tid: int
    rate: int = 0
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _uint("value", self.rate, 16)

    @property
    def value_field(self) -> int:
        return self.rate


@dataclass(frozen=True)
class ClearTamperCondition(_Management):
    """Class 2/5: clear the tamper flag; the 16-bit pad must be 0."""

    subclass: ClassVar[int] = 5
    tid: int
    pad: int = 0
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _uint("value", self.pad, 16)

    @property
    def value_field(self) -> int:
        return self.pad


@dataclass(frozen=True)
class SetMaximumPhasePowerUnbalanceLimit(_Management):
    """Class 2/6: the maximum phase power unbalance limit in watts (amount encoding)."""

    subclass: ClassVar[int] = 6
    tid: int
    watts: int = 0
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.watts, int) or not 0 <= self.watts <= amounts.MAX_UNITS:
            raise StsError("value", f"{self.watts!r} W is outside 0 to {amounts.MAX_UNITS} W")

    @property
    def value_field(self) -> int:
        return amounts.encode_units(self.watts, "value")


@dataclass(frozen=True)
class SetWaterMeterFactor(_Management):
    """Class 2/7: water meter factor, a raw 16-bit value (reserved for water meters)."""

    subclass: ClassVar[int] = 7
    tid: int
    factor: int = 0
    rnd: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _uint("value", self.factor, 16)

    @property
    def value_field(self) -> int:
        return self.factor


@dataclass(frozen=True)
class Set1stSectionDecoderKey:
    """Class 2/3, KCT1: KEN high nibble, new KRN, RO, new KT and key bits (NKHO)."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 3
    kenho: int
    krn: int
    ro: bool
    kt: int
    key_word: int
    reserved: int = 0

    def __post_init__(self) -> None:
        _uint("kenho", self.kenho, 4)
        _uint("krn", self.krn, 4)
        _uint("kt", self.kt, 2)
        _uint("reserved", self.reserved, 1)
        _uint("key_word", self.key_word, 32)

    @property
    def has_tid(self) -> bool:
        return False


@dataclass(frozen=True)
class Set2ndSectionDecoderKey:
    """Class 2/4, KCT2: KEN low nibble, new TI (binary byte) and key bits (NKLO)."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 4
    kenlo: int
    ti: int
    key_word: int

    def __post_init__(self) -> None:
        _uint("kenlo", self.kenlo, 4)
        _uint("ti", self.ti, 8)
        _uint("key_word", self.key_word, 32)

    @property
    def has_tid(self) -> bool:
        return False


@dataclass(frozen=True)
class Set3rdSectionDecoderKey:
    """Class 2/8, KCT3 (128-bit keys): SGC bits 11-0 and key bits 95-64."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 8
    sgc_part: int
    key_word: int

    def __post_init__(self) -> None:
        _uint("sgc_part", self.sgc_part, 12)
        _uint("key_word", self.key_word, 32)

    @property
    def has_tid(self) -> bool:
        return False


@dataclass(frozen=True)
class Set4thSectionDecoderKey:
    """Class 2/9, KCT4 (128-bit keys): SGC bits 23-12 and key bits 63-32."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 9
    sgc_part: int
    key_word: int

    def __post_init__(self) -> None:
        _uint("sgc_part", self.sgc_part, 12)
        _uint("key_word", self.key_word, 32)

    @property
    def has_tid(self) -> bool:
        return False


@dataclass(frozen=True)
class ReservedToken:
    """A class/subclass the standard reserves (or leaves proprietary): kept raw."""

    token_class: TokenClass
    subclass: int
    payload: int

    def __post_init__(self) -> None:
        _uint("subclass", self.subclass, 4)
        _uint("payload", self.payload, 44)

    @property
    def has_tid(self) -> bool:
        return False


KeyChangeToken = (
    Set1stSectionDecoderKey
    | Set2ndSectionDecoderKey
    | Set3rdSectionDecoderKey
    | Set4thSectionDecoderKey
)
ManagementToken = (
    SetMaximumPowerLimit
    | ClearCredit
    | SetTariffRate
    | ClearTamperCondition
    | SetMaximumPhasePowerUnbalanceLimit
    | SetWaterMeterFactor
)
Token = TransferCredit | InitiateMeterTest | ManagementToken | KeyChangeToken | ReservedToken

KEY_CHANGE_TYPES = (
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Set3rdSectionDecoderKey,
    Set4thSectionDecoderKey,
)
MANAGEMENT_TYPES: dict[int, type] = {
    t.subclass: t
    for t in (
        SetMaximumPowerLimit,
        ClearCredit,
        SetTariffRate,
        ClearTamperCondition,
        SetMaximumPhasePowerUnbalanceLimit,
        SetWaterMeterFactor,
        *KEY_CHANGE_TYPES,
    )
}


# --- payload layout ----------------------------------------------------------------------


def _payload(token: Token) -> tuple[int, int, bool]:
    """(subclass, 44-bit payload, currency CRC?) of a token."""
    if type(token) is TransferCredit:
        if token.subclass >= 4:
            cur = amounts.encode_currency(token.amount)
            payload = cur.sign_exponent << 40 | token.tid << 16 | cur.amount_field
            return token.subclass, payload, True
        field = amounts.encode_units(token.amount)
        return token.subclass, token.rnd << 40 | token.tid << 16 | field, False
    if isinstance(token, _Management):
        return token.subclass, token.rnd << 40 | token.tid << 16 | token.value_field, False
    if type(token) is InitiateMeterTest:
        if token.subclass == 0:
            return 0, token.control << 8 | token.mfr_code, False
        return 1, token.control << 16 | token.mfr_code, False
    if type(token) is Set1stSectionDecoderKey:
        payload = (
            token.kenho << 40
            | token.krn << 36
            | int(token.ro) << 35
            | token.reserved << 34
            | token.kt << 32
            | token.key_word
        )
        return 3, payload, False
    if type(token) is Set2ndSectionDecoderKey:
        return 4, token.kenlo << 40 | token.ti << 32 | token.key_word, False
    if type(token) in (Set3rdSectionDecoderKey, Set4thSectionDecoderKey):
        return token.subclass, token.sgc_part << 32 | token.key_word, False
    if type(token) is ReservedToken:
        return token.subclass, token.payload, False
    raise TypeError(f"not a token: {type(token).__name__}")


def _parse_payload(token_class: int, subclass: int, payload: int) -> Token:
    """The token a class, subclass and 44-bit payload stand for (no validity judgement)."""
    rnd = payload >> 40
    tid = payload >> 16 & 0xFFFFFF
    value = payload & 0xFFFF
    if token_class == 0:
        if subclass >= 8:
            return ReservedToken(TokenClass.TRANSFER, subclass, payload)
        if subclass >= 4:
            return TransferCredit(subclass, tid, amounts.decode_currency(value, rnd))
        return TransferCredit(subclass, tid, amounts.decode_units(value), rnd)
    if token_class == 1:
        if subclass == 0:
            return InitiateMeterTest(0, payload >> 8, payload & 0xFF)
        if subclass == 1:
            return InitiateMeterTest(1, payload >> 16, payload & 0xFFFF)
        return ReservedToken(TokenClass.INITIATE, subclass, payload)
    if token_class == 2:
        if subclass == 0:
            return SetMaximumPowerLimit(tid, amounts.decode_units(value), rnd)
        if subclass == 1:
            return ClearCredit(tid, value, rnd)
        if subclass == 2:
            return SetTariffRate(tid, value, rnd)
        if subclass == 5:
            return ClearTamperCondition(tid, value, rnd)
        if subclass == 6:
            return SetMaximumPhasePowerUnbalanceLimit(tid, amounts.decode_units(value), rnd)
        if subclass == 7:
            return SetWaterMeterFactor(tid, value, rnd)
        if subclass == 3:
            return Set1stSectionDecoderKey(
                kenho=rnd,
                krn=payload >> 36 & 0xF,
                ro=bool(payload >> 35 & 1),
                kt=payload >> 32 & 0b11,
                key_word=payload & 0xFFFFFFFF,
                reserved=payload >> 34 & 1,
            )
        if subclass == 4:
            return Set2ndSectionDecoderKey(rnd, payload >> 32 & 0xFF, payload & 0xFFFFFFFF)
        if subclass == 8:
            return Set3rdSectionDecoderKey(payload >> 32 & 0xFFF, payload & 0xFFFFFFFF)
        if subclass == 9:
            return Set4thSectionDecoderKey(payload >> 32 & 0xFFF, payload & 0xFFFFFFFF)
        return ReservedToken(TokenClass.MANAGEMENT, subclass, payload)
    return ReservedToken(TokenClass.RESERVED, subclass, payload)


# --- encoding ----------------------------------------------------------------------------


def data_block(token: Token) -> int:
    """The clear 64-bit data block: subclass | payload | CRC."""
    subclass, payload, currency = _payload(token)
    head = subclass << 44 | payload
    crc = crc_field(int(token.token_class) << 48 | head, currency)
    return head << 16 | crc


def encode_value(token: Token, key: DecoderKey | None) -> int:
    """The 66-bit token value (before printing as digits)."""
    block = data_block(token)
    token_class = int(token.token_class)
    if token_class != 1:  # class 1 is sent in clear; classes 0, 2 and reserved 3 encrypted
        if key is None:
            raise StsError("key", f"a class {token_class} token needs a decoder key")
        block = key.cipher.encrypt(block)
    return insert_class(token_class, block)


def encode(token: Token, key: DecoderKey | None = None) -> str:
    """The token as 20 digits, encrypted under ``key`` (class 1 tokens need no key)."""
    return to_digits(encode_value(token, key))


@dataclass(frozen=True)
class Decoded:
    """What 20 digits hold under a key: the token, whether its CRC holds, and the block."""

    token: Token
    token_class: TokenClass
    subclass: int
    crc_ok: bool
    data_block: int
    crc_field: int

    @property
    def has_tid(self) -> bool:
        return bool(getattr(self.token, "has_tid", False))


def decode_value(value: int, key: DecoderKey | None) -> Decoded:
    """Decode a 66-bit token value; class 0 and 2 are decrypted with ``key``."""
    token_class, block = split_class(value)
    if token_class != 1:
        if key is None:
            raise StsError("key", f"a class {token_class} token needs a decoder key")
        block = key.cipher.decrypt(block)
    subclass = block >> 60
    payload = block >> 16 & ((1 << 44) - 1)
    crc = block & 0xFFFF
    currency = token_class == 0 and 4 <= subclass <= 7
    crc_ok = crc_field(token_class << 48 | block >> 16, currency) == crc
    token = _parse_payload(token_class, subclass, payload)
    return Decoded(token, TokenClass(token_class), subclass, crc_ok, block, crc)


def decode(digits: str, key: DecoderKey | None = None) -> Decoded:
    """Decode 20 digits. Raises :class:`~sts.errors.TokenFormatError` for bad digits."""
    return decode_value(parse_digits(digits), key)


def describe(token: Token) -> dict[str, object]:
    """The token's kind and fields as plain data (for JSON output and records).

    Amounts are given in base units and, for transfer tokens, in the service's unit.
    Key change tokens carry key bits: those are shown only as their presence, never as
    values.
    """
    out: dict[str, object] = {
        "kind": type(token).__name__,
        "class": int(token.token_class),
        "subclass": int(token.subclass),
    }
    if isinstance(token, TransferCredit):
        _scale, unit = amounts.SERVICE_UNITS[token.subclass]
        out.update(
            tid=token.tid,
            amount_base_units=token.amount,
            amount=str(amounts.from_base_units(token.amount, token.subclass)),
            unit=unit,
        )
        if not token.is_currency:
            out["rnd"] = token.rnd
    elif isinstance(token, InitiateMeterTest):
        out.update(control=f"{token.control:X}", mfr_code=token.mfr_code)
    elif isinstance(token, SetMaximumPowerLimit | SetMaximumPhasePowerUnbalanceLimit):
        out.update(tid=token.tid, rnd=token.rnd, watts=token.watts)
    elif isinstance(token, ClearCredit):
        out.update(tid=token.tid, rnd=token.rnd, register=token.register)
    elif isinstance(token, SetTariffRate):
        out.update(tid=token.tid, rnd=token.rnd, value=token.rate)
    elif isinstance(token, ClearTamperCondition):
        out.update(tid=token.tid, rnd=token.rnd, value=token.pad)
    elif isinstance(token, SetWaterMeterFactor):
        out.update(tid=token.tid, rnd=token.rnd, value=token.factor)
    elif isinstance(token, Set1stSectionDecoderKey):
        out.update(kenho=token.kenho, krn=token.krn, ro=token.ro, kt=token.kt)
    elif isinstance(token, Set2ndSectionDecoderKey):
        out.update(kenlo=token.kenlo, ti=token.ti)
    elif isinstance(token, Set3rdSectionDecoderKey | Set4thSectionDecoderKey):
        out.update(sgc_part=token.sgc_part)
    elif isinstance(token, ReservedToken):
        out.update(payload=f"{token.payload:011X}")
    return out
