"""The reference meter application process (IEC 62055-41 §9 as summarised in REFERENCE.md).

:class:`ReferenceMeter` holds what a meter keeps (key register, TID store, credit registers,
limits, tamper flag, a partial key change set) and judges each 20-digit entry with the
standard's result codes, returning the effects a meter then acts on. It is pure: no clock, no
I/O. Whatever the standard leaves to the manufacturer is a :class:`MeterParameters` field,
declared per meter, never guessed here.

The pipeline is split into small methods so a simulated firmware (SimLab's defects, a lab's
own model) can override exactly one rule.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from sts.codec import parse_digits, split_class
from sts.errors import TokenFormatError
from sts.keys import DecoderKey
from sts.tokens import (
    CLEAR_ALL_REGISTERS,
    ClearCredit,
    ClearTamperCondition,
    Decoded,
    InitiateMeterTest,
    KeyChangeToken,
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
    decode_value,
)
from sts.vending import KEN_NEVER_EXPIRES


class Result(IntEnum):
    """Token entry results (REFERENCE.md §9.3)."""

    ACCEPT = 1
    KCT1_RECEIVED = 2
    KCT2_RECEIVED = 3
    OVERFLOW = 4
    KEY_TYPE = 5
    FORMAT = 6
    RANGE = 7
    FUNCTION = 8
    OLD = 9
    USED = 10
    KEY_EXPIRED = 11
    DDTK = 12
    CRC = 13
    MFR_CODE = 14
    LOCKOUT = 15
    NOT_READY = 16

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def accepted(self) -> bool:
        return self in (Result.ACCEPT, Result.KCT1_RECEIVED, Result.KCT2_RECEIVED)


_LABELS = {
    Result.ACCEPT: "Accept",
    Result.KCT1_RECEIVED: "1stKCT received",
    Result.KCT2_RECEIVED: "2ndKCT received",
    Result.OVERFLOW: "Overflow",
    Result.KEY_TYPE: "Key type error",
    Result.FORMAT: "Format error",
    Result.RANGE: "Range error",
    Result.FUNCTION: "Function error",
    Result.OLD: "Old",
    Result.USED: "Used",
    Result.KEY_EXPIRED: "Key expired",
    Result.DDTK: "DDTK",
    Result.CRC: "CRC error",
    Result.MFR_CODE: "MfrCode error",
    Result.LOCKOUT: "Token lockout active",
    Result.NOT_READY: "Status not ready",
}

#: Class-1 control bits with a known meaning (REFERENCE.md §9.4).
TEST_NAMES = {
    0: "load switch",
    1: "information display",
    2: "cumulative energy",
    3: "KRN and KT",
    4: "TI",
    5: "token reader",
    6: "maximum power limit",
    7: "tamper status",
    8: "instantaneous power",
    9: "software version",
    10: "phase power unbalance limit",
}

#: Credit register numbers (ClearCredit value and TransferCredit subclass).
REGISTER_NAMES = {
    0: "electricity",
    1: "water",
    2: "gas",
    3: "time",
    4: "electricity currency",
    5: "water currency",
    6: "gas currency",
    7: "time currency",
}


# --- effects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditAdded:
    register: int
    amount: int  # base units


@dataclass(frozen=True)
class CreditCleared:
    registers: tuple[int, ...]


@dataclass(frozen=True)
class PowerLimitSet:
    watts: int


@dataclass(frozen=True)
class PhaseUnbalanceLimitSet:
    watts: int


@dataclass(frozen=True)
class TariffRateSet:
    rate: int


@dataclass(frozen=True)
class WaterMeterFactorSet:
    factor: int


@dataclass(frozen=True)
class TamperCleared:
    pass


@dataclass(frozen=True)
class KeyInstalled:
    krn: int
    kt: int
    ti: int
    ken: int
    rollover: bool
    sgc: int | None
    key_fingerprint: str


@dataclass(frozen=True)
class TestRequested:
    """A class-1 test/display request: the control bits of the tests to run."""

    control: int
    tests: tuple[int, ...]


Effect = (
    CreditAdded
    | CreditCleared
    | PowerLimitSet
    | PhaseUnbalanceLimitSet
    | TariffRateSet
    | WaterMeterFactorSet
    | TamperCleared
    | KeyInstalled
    | TestRequested
)


@dataclass(frozen=True)
class EntryResult:
    """The meter's answer to one entry: result code, effects, and what it decoded."""

    result: Result
    effects: tuple[Effect, ...] = ()
    token: Token | None = None
    tid: int | None = None
    detail: str = ""

    @property
    def code(self) -> int:
        return int(self.result)


# --- declared parameters and state -------------------------------------------------------


def _default_kt_changes() -> dict[int, frozenset[int]]:
    # The standard's one rule: never to DITK (0) unless already DITK.
    return {0: frozenset({0, 1, 2, 3}), 1: frozenset({1, 2, 3}), 2: frozenset({1, 2, 3}),
            3: frozenset({1, 2, 3})}  # fmt: skip


@dataclass(frozen=True)
class MeterParameters:
    """What the standard leaves to the manufacturer, declared per meter (REFERENCE.md §10)."""

    tid_store_size: int = 50
    mfr_code: int = 0
    mfr_code_digits: int = 2
    #: Bits of class-1 control the meter supports (bit n = test n).
    supported_tests: int = 0b1_1111_1111
    key_expiry: bool = True
    #: key type -> key types a key change may install.
    kt_changes: Mapping[int, frozenset[int]] = field(default_factory=_default_kt_changes)
    #: credit registers (TransferCredit subclasses) the meter keeps.
    services: frozenset[int] = frozenset({0})
    #: Largest value a credit register holds, in base units; more is Overflow.
    credit_limit: int = 99_999_999
    #: Currency credit registers (subclass 4-7) limit, in 10**-5 units.
    currency_credit_limit: int = 99_999_999_999
    supports_mppul: bool = False
    supports_tariff_rate: bool = False
    supports_water_meter_factor: bool = False
    #: A 2-token key change set whose KCTs are waiting is dropped on a power cycle.
    kct_kept_over_power_cycle: bool = False

    def __post_init__(self) -> None:
        if self.tid_store_size < 1:
            raise ValueError("tid_store_size must be at least 1")
        if self.mfr_code_digits not in (2, 4):
            raise ValueError("mfr_code_digits must be 2 or 4")
        if not 0 <= self.mfr_code < 10**self.mfr_code_digits:
            raise ValueError(f"mfr_code must fit {self.mfr_code_digits} digits")
        if not self.services <= frozenset(range(8)):
            raise ValueError("services must be credit registers 0 to 7")


@dataclass
class MeterState:
    """What a meter keeps in non-volatile memory."""

    key: DecoderKey
    krn: int
    kt: int
    ti: int
    sgc: int
    ken: int = KEN_NEVER_EXPIRES
    tid_store: list[int] = field(default_factory=list)
    credit: dict[int, int] = field(default_factory=dict)
    mpl: int | None = None
    mppul: int | None = None
    tariff_rate: int | None = None
    water_meter_factor: int | None = None
    tamper: bool = False
    pending_kcts: dict[int, KeyChangeToken] = field(default_factory=dict)

    def __repr__(self) -> str:  # the key shows by fingerprint only (DecoderKey.__repr__)
        return (
            f"MeterState(key={self.key!r}, krn={self.krn}, kt={self.kt}, ti={self.ti}, "
            f"sgc={self.sgc}, ken={self.ken}, tids={len(self.tid_store)}, credit={self.credit}, "
            f"mpl={self.mpl}, tamper={self.tamper}, pending={sorted(self.pending_kcts)})"
        )


class ReferenceMeter:
    """A compliant meter's token processing.

    ``manufacture_tid`` pre-fills the TID store, as meters leave the factory.
    """

    def __init__(
        self,
        key: DecoderKey,
        *,
        krn: int,
        kt: int,
        ti: int,
        sgc: int,
        ken: int = KEN_NEVER_EXPIRES,
        parameters: MeterParameters | None = None,
        manufacture_tid: int = 0,
    ) -> None:
        self.parameters = parameters or MeterParameters()
        p = self.parameters
        self.state = MeterState(
            key=key,
            krn=krn,
            kt=kt,
            ti=ti,
            sgc=sgc,
            ken=ken,
            tid_store=[manufacture_tid] * p.tid_store_size,
            credit={r: 0 for r in sorted(p.services)},
        )

    # -- the pipeline ---------------------------------------------------------------------

    def enter(self, digits: str) -> EntryResult:
        """Process one token entry (20 digits) and return the result and its effects."""
        try:
            value = self.parse(digits)
        except TokenFormatError as exc:
            return EntryResult(Result.FORMAT, detail=exc.reason)
        token_class, _block = split_class(value)
        if token_class == TokenClass.INITIATE:
            return self.process_class1(decode_value(value, None))
        decoded = decode_value(value, self.state.key)
        if not decoded.crc_ok:
            return EntryResult(Result.CRC, detail="CRC does not hold under the meter's key")
        token = decoded.token
        if isinstance(token, ReservedToken):
            return EntryResult(Result.FUNCTION, token=token, detail="reserved class or subclass")
        if isinstance(
            token,
            Set1stSectionDecoderKey
            | Set2ndSectionDecoderKey
            | Set3rdSectionDecoderKey
            | Set4thSectionDecoderKey,
        ):
            return self.process_key_change(token)
        return self.process_tid_token(decoded)

    def parse(self, digits: str) -> int:
        """The 66-bit value of an entry; :class:`TokenFormatError` when it is not a token."""
        return parse_digits(digits)

    # -- class 1 --------------------------------------------------------------------------

    def mfr_code_ok(self, token: InitiateMeterTest) -> bool:
        return token.mfr_code in (0, self.parameters.mfr_code)

    def process_class1(self, decoded: Decoded) -> EntryResult:
        token = decoded.token
        if not decoded.crc_ok:
            return EntryResult(Result.CRC, detail="CRC does not hold")
        if not isinstance(token, InitiateMeterTest):
            return EntryResult(Result.FUNCTION, token=token, detail="reserved class-1 subclass")
        if not self.mfr_code_ok(token):
            return EntryResult(Result.MFR_CODE, token=token)
        supported = self.parameters.supported_tests
        if token.all_tests:
            control = supported
        else:
            control = token.control
            if control == 0 or control & ~supported:
                return EntryResult(Result.FUNCTION, token=token, detail="test not supported")
        tests = tuple(bit for bit in range(control.bit_length()) if control >> bit & 1)
        return EntryResult(Result.ACCEPT, (TestRequested(control, tests),), token=token)

    # -- key change -----------------------------------------------------------------------

    def key_sections(self) -> tuple[int, ...]:
        """The KCT subclasses a complete set needs for this meter's key length."""
        return (3, 4) if self.state.key.ea.key_bytes == 8 else (3, 4, 8, 9)

    def kt_change_allowed(self, old: int, new: int) -> bool:
        return new in self.parameters.kt_changes.get(old, frozenset())

    def process_key_change(self, token: KeyChangeToken) -> EntryResult:
        s = self.state
        needed = self.key_sections()
        if token.subclass not in needed:
            return EntryResult(Result.FUNCTION, token=token, detail="KCT section not used")
        s.pending_kcts[token.subclass] = token
        if not all(n in s.pending_kcts for n in needed):
            # Waiting for the rest of the set: the code says which section just came in.
            result = Result.KCT1_RECEIVED if token.subclass == 3 else Result.KCT2_RECEIVED
            return EntryResult(result, token=token)
        kcts = s.pending_kcts
        s.pending_kcts = {}
        return self.install_key(kcts, token)

    def install_key(self, kcts: dict[int, KeyChangeToken], last: KeyChangeToken) -> EntryResult:
        s = self.state
        k1 = kcts[3]
        k2 = kcts[4]
        assert isinstance(k1, Set1stSectionDecoderKey)
        assert isinstance(k2, Set2ndSectionDecoderKey)
        if not self.kt_change_allowed(s.kt, k1.kt):
            return EntryResult(
                Result.KEY_TYPE, token=last, detail=f"key type {s.kt} -> {k1.kt} not allowed"
            )
        sgc = None
        if s.key.ea.key_bytes == 8:
            value = (k1.key_word << 32 | k2.key_word).to_bytes(8, "big")
        else:
            k3, k4 = kcts[8], kcts[9]
            value = (
                k1.key_word << 96 | k3.key_word << 64 | k4.key_word << 32 | k2.key_word
            ).to_bytes(16, "big")
            sgc = k4.sgc_part << 12 | k3.sgc_part
        new_key = DecoderKey(value, s.key.ea, legacy=s.key.legacy)
        ken = k1.kenho << 4 | k2.kenlo
        s.key = new_key
        s.krn = k1.krn
        s.kt = k1.kt
        s.ti = k2.ti
        if sgc is not None:
            s.sgc = sgc
        if self.parameters.key_expiry:
            s.ken = ken
        if k1.ro:
            self.clear_tid_store()
        installed = KeyInstalled(
            krn=k1.krn,
            kt=k1.kt,
            ti=k2.ti,
            ken=ken,
            rollover=k1.ro,
            sgc=sgc,
            key_fingerprint=new_key.fingerprint,
        )
        return EntryResult(Result.ACCEPT, (installed,), token=last)

    def clear_tid_store(self) -> None:
        """RO key change: the store is cleared (every entry zero)."""
        self.state.tid_store = [0] * self.parameters.tid_store_size

    # -- TID-bearing tokens ---------------------------------------------------------------

    def check_tid(self, tid: int) -> Result | None:
        store = self.state.tid_store
        if tid in store:
            return Result.USED
        if tid < min(store):
            return Result.OLD
        return None

    def check_expiry(self, tid: int) -> Result | None:
        ken = self.state.ken
        if self.parameters.key_expiry and ken != KEN_NEVER_EXPIRES and tid >> 16 > ken:
            return Result.KEY_EXPIRED
        return None

    def check_key_type(self, token: Token) -> Result | None:
        if self.state.kt == 1 and isinstance(token, TransferCredit):
            return Result.DDTK
        return None

    def store_tid(self, tid: int) -> None:
        """The accepted TID replaces the smallest entry."""
        store = self.state.tid_store
        store[store.index(min(store))] = tid

    def process_tid_token(self, decoded: Decoded) -> EntryResult:
        token = decoded.token
        tid = token.tid  # type: ignore[union-attr]
        for check in (self.check_tid(tid), self.check_expiry(tid), self.check_key_type(token)):
            if check is not None:
                return EntryResult(check, token=token, tid=tid)
        result, effects, detail = self.execute(token)
        if result is Result.ACCEPT:
            self.store_tid(tid)
        return EntryResult(result, effects, token=token, tid=tid, detail=detail)

    def execute(self, token: Token) -> tuple[Result, tuple[Effect, ...], str]:
        s = self.state
        p = self.parameters
        if isinstance(token, TransferCredit):
            return self.add_credit(token)
        if isinstance(token, SetMaximumPowerLimit):
            s.mpl = token.watts
            return Result.ACCEPT, (PowerLimitSet(token.watts),), ""
        if isinstance(token, ClearCredit):
            if token.register == CLEAR_ALL_REGISTERS:
                registers = tuple(sorted(s.credit))
            elif token.register in s.credit:
                registers = (token.register,)
            else:
                return Result.RANGE, (), f"no credit register {token.register}"
            for r in registers:
                s.credit[r] = 0
            return Result.ACCEPT, (CreditCleared(registers),), ""
        if isinstance(token, ClearTamperCondition):
            if token.pad != 0:
                return Result.RANGE, (), "pad must be 0"
            s.tamper = False
            return Result.ACCEPT, (TamperCleared(),), ""
        if isinstance(token, SetMaximumPhasePowerUnbalanceLimit):
            if not p.supports_mppul:
                return Result.FUNCTION, (), "phase power unbalance limit not supported"
            s.mppul = token.watts
            return Result.ACCEPT, (PhaseUnbalanceLimitSet(token.watts),), ""
        if isinstance(token, SetTariffRate):
            if not p.supports_tariff_rate:
                return Result.FUNCTION, (), "tariff rate not supported"
            s.tariff_rate = token.rate
            return Result.ACCEPT, (TariffRateSet(token.rate),), ""
        if isinstance(token, SetWaterMeterFactor):
            if not p.supports_water_meter_factor:
                return Result.FUNCTION, (), "water meter factor not supported"
            s.water_meter_factor = token.factor
            return Result.ACCEPT, (WaterMeterFactorSet(token.factor),), ""
        return Result.FUNCTION, (), f"{type(token).__name__} not supported"

    def register_limit(self, register: int) -> int:
        p = self.parameters
        return p.currency_credit_limit if register >= 4 else p.credit_limit

    def add_credit(self, token: TransferCredit) -> tuple[Result, tuple[Effect, ...], str]:
        s = self.state
        register = token.subclass
        if register not in s.credit:
            return Result.FUNCTION, (), f"service {REGISTER_NAMES[register]} not supported"
        if token.amount < 0:
            return Result.RANGE, (), "negative transfer amount"
        if s.credit[register] + token.amount > self.register_limit(register):
            return Result.OVERFLOW, (), "credit register would overflow"
        s.credit[register] += token.amount
        return Result.ACCEPT, (CreditAdded(register, token.amount),), ""

    # -- what the rest of the meter does to the state -------------------------------------

    def consume(self, register: int, amount: int) -> int:
        """Take up to ``amount`` base units from a register; returns what was taken."""
        available = self.state.credit.get(register, 0)
        taken = max(0, min(available, amount))
        self.state.credit[register] = available - taken
        return taken

    def set_tamper(self) -> None:
        self.state.tamper = True

    def power_cycle(self) -> None:
        """What survives losing power: everything but a partial key change set (as declared)."""
        if not self.parameters.kct_kept_over_power_cycle:
            self.state.pending_kcts = {}

    def snapshot(self) -> MeterState:
        """A deep copy of the state (for observers and tests)."""
        return copy.deepcopy(self.state)  # pragma: no mutate (an observer's copy, not a rule)
