"""Named meter defects: documented deviations from the reference behaviour.

Each defect is modelled on a mistake real firmware has made, and says which rule of
REFERENCE.md it breaks. A defect is a small mixin over the token process
(:class:`sts.meter.ReferenceMeter`) or over the device (:class:`simlab.meter.SimMeter`);
SimLab stacks the chosen ones on the meter model. The scenario catalogue must catch every one
(``stslab selftest`` proves it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sts import amount as amounts
from sts.codec import parse_digits
from sts.meter import EntryResult, ReferenceMeter, Result
from sts.tokens import InitiateMeterTest, KeyChangeToken, Set1stSectionDecoderKey, TransferCredit


@dataclass(frozen=True)
class Defect:
    name: str
    rule: str  # the rule it breaks (REFERENCE.md section)
    description: str
    processor: type | None = None
    device: type | None = None


# --- token-process defects ---------------------------------------------------------------


class _AcceptsUsed(ReferenceMeter):
    def check_tid(self, tid: int) -> Result | None:
        store = self.state.tid_store
        return Result.OLD if tid < min(store) and tid not in store else None


class _OldOffByOne(ReferenceMeter):
    def check_tid(self, tid: int) -> Result | None:
        store = self.state.tid_store
        if tid in store:
            return Result.USED
        if tid < min(store) - 1:
            return Result.OLD
        return None


class _IgnoresKeyExpiry(ReferenceMeter):
    def check_expiry(self, tid: int) -> Result | None:
        return None


class _KeyAfterFirstKct(ReferenceMeter):
    def process_key_change(self, token: KeyChangeToken) -> EntryResult:
        if isinstance(token, Set1stSectionDecoderKey) and self.state.key.ea.key_bytes == 8:
            # Installs at once, taking the low half from the key it still has.
            from sts.keys import DecoderKey

            low = int.from_bytes(self.state.key.value, "big") & 0xFFFFFFFF
            value = (token.key_word << 32 | low).to_bytes(8, "big")
            self.state.key = DecoderKey(value, self.state.key.ea, legacy=self.state.key.legacy)
            self.state.krn = token.krn
            self.state.kt = token.kt
        return super().process_key_change(token)


class _RoKeepsTidStore(ReferenceMeter):
    def clear_tid_store(self) -> None:
        pass


class _WrongAmountHighExponent(ReferenceMeter):
    def add_credit(self, token: TransferCredit):  # type: ignore[override]
        if not token.is_currency:
            e, m = amounts.encode_exponent_mantissa(token.amount, amounts.MAX_UNITS_EXPONENT)
            if e >= 2:
                # Forgets the exponent-range offset: credits m * 10**e only.
                token = TransferCredit(token.subclass, token.tid, m * 10**e, token.rnd)
        return super().add_credit(token)


class _MfrCodeUnchecked(ReferenceMeter):
    def mfr_code_ok(self, token: InitiateMeterTest) -> bool:
        return True


class _CreditWraps(ReferenceMeter):
    def add_credit(self, token: TransferCredit):  # type: ignore[override]
        from sts.meter import CreditAdded

        register = token.subclass
        if register not in self.state.credit or token.amount < 0:
            return super().add_credit(token)
        limit = self.register_limit(register)
        self.state.credit[register] = (self.state.credit[register] + token.amount) % (limit + 1)
        return Result.ACCEPT, (CreditAdded(register, token.amount),), ""


class _DdtkAcceptsCredit(ReferenceMeter):
    def check_key_type(self, token: object) -> Result | None:
        return None


class _KtToDitk(ReferenceMeter):
    def kt_change_allowed(self, old: int, new: int) -> bool:
        return True


class _UnsupportedTestAccepted(ReferenceMeter):
    def process_class1(self, decoded):  # type: ignore[no-untyped-def]
        result = super().process_class1(decoded)
        if result.result is Result.FUNCTION and isinstance(decoded.token, InitiateMeterTest):
            return EntryResult(Result.ACCEPT, token=decoded.token)
        return result


class _Accepts19Digits(ReferenceMeter):
    def parse(self, digits: str) -> int:
        text = digits.replace(" ", "")
        if len(text) == 19 and text.isdigit():
            text = "0" + text
        return parse_digits(text)


class _ClearTamperIgnored(ReferenceMeter):
    def execute(self, token):  # type: ignore[no-untyped-def]
        from sts.tokens import ClearTamperCondition

        if isinstance(token, ClearTamperCondition):
            from sts.meter import TamperCleared

            return Result.ACCEPT, (TamperCleared(),), ""  # says cleared, keeps the flag
        return super().execute(token)


# --- device defects ----------------------------------------------------------------------


class _NoDisconnectAtZero:
    def opens_at_zero_credit(self) -> bool:
        return False


class _MplNotEnforced:
    def enforces_power_limit(self) -> bool:
        return False


class _KeypadDropsDigit:
    #: Presses following the previous release by less than this are lost.
    drop_gap_ms = 100.0

    def drops_key(self, key: str, gap_ms: float | None) -> bool:
        return gap_ms is not None and gap_ms < self.drop_gap_ms and key.isdigit()


class _ShowsAcceptForReject:
    def display_text_for(self, result: EntryResult) -> str:
        vocabulary = self.profile.display.vocabulary  # type: ignore[attr-defined]
        return vocabulary[int(Result.ACCEPT)]


class _LosesCreditOnPowerCycle:
    def lose_on_power_cycle(self) -> None:
        core = self.core  # type: ignore[attr-defined]
        for register in core.state.credit:
            core.state.credit[register] = 0
        self._wh_used_in_unit = 0.0


CATALOGUE: tuple[Defect, ...] = (
    Defect("accepts-used", "§9.2 Used", "accepts a token whose TID is already in the store",
           processor=_AcceptsUsed),
    Defect("old-off-by-one", "§9.2 Old", "accepts a TID one below the smallest stored TID",
           processor=_OldOffByOne),
    Defect("ignores-key-expiry", "§5 KEN", "accepts TIDs past the key expiry number",
           processor=_IgnoresKeyExpiry),
    Defect("key-after-first-kct", "§8 key change",
           "installs a new key as soon as the first key change token arrives",
           processor=_KeyAfterFirstKct),
    Defect("ro-keeps-tid-store", "§5/§8 RO", "a rollover key change does not clear the TID store",
           processor=_RoKeepsTidStore),
    Defect("wrong-amount-high-exponent", "§4.1 amount",
           "credits m*10^e without the exponent offset for exponents 2 and 3",
           processor=_WrongAmountHighExponent),
    Defect("mfr-code-unchecked", "§9.1 class 1", "accepts class-1 tokens with any MfrCode",
           processor=_MfrCodeUnchecked),
    Defect("credit-wraps", "§9.5 Overflow",
           "a credit register wraps around instead of refusing with Overflow",
           processor=_CreditWraps),
    Defect("ddtk-accepts-credit", "§9.1 DDTK", "a meter on a default key accepts credit",
           processor=_DdtkAcceptsCredit),
    Defect("kt-to-ditk", "§8 key type", "accepts a key change to DITK from another key type",
           processor=_KtToDitk),
    Defect("unsupported-test-accepted", "§9.4 Function",
           "answers Accept to a class-1 test it does not support",
           processor=_UnsupportedTestAccepted),
    Defect("accepts-19-digits", "§9.1 Format", "takes a 19-digit entry as a token",
           processor=_Accepts19Digits),
    Defect("clear-tamper-ignored", "§1 class 2/5",
           "answers Accept to ClearTamper but keeps the flag",
           processor=_ClearTamperIgnored),
    Defect("no-disconnect-at-zero", "§9.5 load switch",
           "the load switch does not open when credit runs out", device=_NoDisconnectAtZero),
    Defect("mpl-not-enforced", "§9.5 MPL", "the maximum power limit is stored but not enforced",
           device=_MplNotEnforced),
    Defect("keypad-drops-digit", "IEC 62055-51 keypad",
           "the keypad loses a digit pressed less than 100 ms after the previous release",
           device=_KeypadDropsDigit),
    Defect("shows-accept-for-reject", "§9.3 display",
           "the display shows the Accept text for a rejected token", device=_ShowsAcceptForReject),
    Defect("loses-credit-on-power-cycle", "§9.5 non-volatile credit",
           "credit registers are lost when power is cycled", device=_LosesCreditOnPowerCycle),
)  # fmt: skip

BY_NAME = {d.name: d for d in CATALOGUE}


def lookup(names: Iterable[str]) -> tuple[Defect, ...]:
    found = []
    for name in names:
        if name not in BY_NAME:
            raise ValueError(f"unknown defect {name!r} (see stslab sim --list-defects)")
        found.append(BY_NAME[name])
    return tuple(found)


def apply_defects(processor: type[ReferenceMeter], names: Iterable[str]) -> type[ReferenceMeter]:
    """``processor`` with the token-process defects among ``names`` stacked on it."""
    mixins = [d.processor for d in lookup(names) if d.processor is not None]
    if not mixins:
        return processor
    # Each mixin subclasses ReferenceMeter, so (*mixins, processor) linearises to the
    # defects first, then the model's own processor: super() in a mixin reaches the model.
    bases = tuple(m for m in mixins if not issubclass(processor, m))
    return type(f"{processor.__name__}WithDefects", (*bases, processor), {})


def device_class(model: type, names: Iterable[str]) -> type:
    """The meter model class with the device defects among ``names`` mixed in."""
    mixins = tuple(d.device for d in lookup(names) if d.device is not None)
    if not mixins:
        return model
    return type(f"{model.__name__}WithDefects", (*mixins, model), {})
