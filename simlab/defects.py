"""Named meter defects: documented deviations from the reference behaviour.

Each defect is modelled on a mistake real firmware has made, and says which rule of
REFERENCE.md it breaks. A defect is a small mixin over the token process
(:class:`sts.meter.ReferenceMeter`) or over the device (:class:`simlab.meter.SimMeter`);
SimLab stacks the chosen ones on the meter model. The scenario catalogue must catch every one
(``stslab selftest`` proves it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dut.profile import MeterProfile
from sts import amount as amounts
from sts.codec import parse_digits
from sts.meter import EntryResult, KeyInstalled, ReferenceMeter, Result
from sts.tokens import InitiateMeterTest, KeyChangeToken, Set1stSectionDecoderKey, TransferCredit
from sts.vending import KEN_NEVER_EXPIRES


def _observable(_profile: MeterProfile) -> str | None:
    return None


@dataclass(frozen=True)
class Defect:
    name: str
    rule: str  # the rule it breaks (REFERENCE.md section)
    description: str
    processor: type | None = None
    device: type | None = None
    #: Why the mistake changes nothing a test can see on a meter of this profile (None: it
    #: is observable), e.g. a mistake in a rule the meter does not declare.
    unobservable: Callable[[MeterProfile], str | None] = _observable


def _one_service(profile: MeterProfile) -> str | None:
    if len(profile.tokens.services) > 1:
        return None
    return "the meter declares one service register, the one this mistake leaves alone"


def _declares_expiry(profile: MeterProfile) -> str | None:
    if not profile.tokens.key_expiry:
        return None
    return "the meter declares key expiry: keeping the KEN is then right"


def _declares_kct_kept(profile: MeterProfile) -> str | None:
    if not profile.tokens.kct_kept_over_power_cycle:
        return None
    return "the meter declares that a waiting key change section is kept: keeping it is right"


def _no_key_expiry(profile: MeterProfile) -> str | None:
    if profile.tokens.key_expiry:
        return None
    return "the meter declares no key expiry: ignoring the KEN is then right"


def _four_section_key(profile: MeterProfile) -> str | None:
    if profile.key.ea != "11":
        return None
    return "the meter's 128-bit key takes four sections; this mistake is in a two-section set"


def _no_keypad_lockout(profile: MeterProfile) -> str | None:
    if "keypad" not in profile.carriers:
        return "the meter declares no keypad"
    return None if profile.keypad.lockout.enabled else "the meter declares no keypad lockout"


def _no_keypad(profile: MeterProfile) -> str | None:
    return None if "keypad" in profile.carriers else "the meter declares no keypad"


def _no_load_switch_test(profile: MeterProfile) -> str | None:
    if 0 in profile.tokens.supported_tests:
        return None
    return "the meter declares no class-1 load switch test"


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


class _TidStoreSmaller(ReferenceMeter):
    def store_tid(self, tid: int) -> None:
        super().store_tid(tid)
        store = self.state.tid_store
        while len(store) > max(1, self.parameters.tid_store_size - 1):
            store.remove(min(store))


class _TidStoreLarger(ReferenceMeter):
    def store_tid(self, tid: int) -> None:
        store = self.state.tid_store
        if len(store) <= self.parameters.tid_store_size:
            store.append(tid)
        else:
            super().store_tid(tid)


class _OldIncludesStoreMin(ReferenceMeter):
    def check_tid(self, tid: int) -> Result | None:
        store = self.state.tid_store
        if tid <= min(store):
            return Result.OLD
        return Result.USED if tid in store else None


class _CreditLimitEarly(ReferenceMeter):
    def register_limit(self, register: int) -> int:
        return super().register_limit(register) - 1  # Overflow already at the limit


class _CreditLimitLate(ReferenceMeter):
    def register_limit(self, register: int) -> int:
        return super().register_limit(register) + 1


class _DropsLastService(ReferenceMeter):
    def add_credit(self, token: TransferCredit):  # type: ignore[override]
        services = self.parameters.services
        if len(services) > 1 and token.subclass == max(services):
            return Result.FUNCTION, (), "register not kept"
        return super().add_credit(token)


class _AcceptsUndeclaredService(ReferenceMeter):
    def add_credit(self, token: TransferCredit):  # type: ignore[override]
        self.state.credit.setdefault(token.subclass, 0)
        return super().add_credit(token)


class _DropsLastTest(ReferenceMeter):
    def process_class1(self, decoded):  # type: ignore[no-untyped-def]
        token = decoded.token
        supported = self.parameters.supported_tests
        if isinstance(token, InitiateMeterTest) and not token.all_tests and supported:
            last = 1 << (supported.bit_length() - 1)
            if token.control & last and decoded.crc_ok and self.mfr_code_ok(token):
                return EntryResult(Result.FUNCTION, token=token, detail="test not supported")
        return super().process_class1(decoded)


class _KtChangeRefused(ReferenceMeter):
    def kt_change_allowed(self, old: int, new: int) -> bool:
        allowed = self.parameters.kt_changes.get(old, frozenset())
        return new in allowed and new != max(allowed)


class _ExpiryWhenUndeclared(ReferenceMeter):
    def install_key(self, kcts, last):  # type: ignore[no-untyped-def]
        result = super().install_key(kcts, last)
        for effect in result.effects:
            if isinstance(effect, KeyInstalled):
                self.state.ken = effect.ken  # keeps the KEN it does not declare
        return result

    def check_expiry(self, tid: int) -> Result | None:
        ken = self.state.ken
        return Result.KEY_EXPIRED if ken != KEN_NEVER_EXPIRES and tid >> 16 > ken else None


class _KctKeptWhenUndeclared(ReferenceMeter):
    def power_cycle(self) -> None:
        pass  # the waiting key change section survives, though the meter declares it does not


# --- device defects ----------------------------------------------------------------------


class _Keeps:
    """A device defect that acts on another value than the declared one for one parameter."""

    path = ""

    def wrong(self, declared: float) -> float:
        return declared

    def keeps(self, path: str) -> float:
        declared = super().keeps(path)  # type: ignore[misc]
        return self.wrong(declared) if path == self.path else declared


class _MessageTooShort(_Keeps):
    path = "display.message_seconds"

    def wrong(self, declared: float) -> float:
        return max(0.5, declared - 1.0)


class _MessageTooLong(_Keeps):
    path = "display.message_seconds"

    def wrong(self, declared: float) -> float:
        return declared + 1.0


class _TestDisplayTooShort(_Keeps):
    path = "display.test_step_seconds"

    def wrong(self, declared: float) -> float:
        return max(0.5, declared - 1.0)


class _EntryTimeoutShort(_Keeps):
    path = "keypad.entry_timeout_s"

    def wrong(self, declared: float) -> float:
        return max(1.0, declared - 2.0)


class _EntryTimeoutLong(_Keeps):
    path = "keypad.entry_timeout_s"

    def wrong(self, declared: float) -> float:
        return declared + 2.0


class _ShortPressRegistered(_Keeps):
    path = "keypad.min_hold_ms"

    def wrong(self, declared: float) -> float:
        return declared / 3


class _LockoutEarly(_Keeps):
    path = "keypad.lockout.after_rejects"

    def wrong(self, declared: float) -> float:
        return max(1.0, declared - 1)


class _LockoutLate(_Keeps):
    path = "keypad.lockout.after_rejects"

    def wrong(self, declared: float) -> float:
        return declared + 1


class _LockoutNoGrowth(_Keeps):
    path = "keypad.lockout.factor"

    def wrong(self, declared: float) -> float:
        return 1.0


class _LockoutPastMax(_Keeps):
    path = "keypad.lockout.max_seconds"

    def wrong(self, declared: float) -> float:
        return declared * 1000  # the growth is never capped


class _LockoutFirstShort(_Keeps):
    path = "keypad.lockout.first_seconds"

    def wrong(self, declared: float) -> float:
        return max(1.0, declared - 2.0)


class _MplTripsEarly(_Keeps):
    path = "load_switch.mpl_trip_delay_s"

    def wrong(self, declared: float) -> float:
        return max(0.0, declared - 2.0)


class _MplTripsLate(_Keeps):
    path = "load_switch.mpl_trip_delay_s"

    def wrong(self, declared: float) -> float:
        return declared + 2.0


class _MplReconnectsEarly(_Keeps):
    path = "load_switch.mpl_reconnect_s"

    def wrong(self, declared: float) -> float:
        return max(1.0, declared - 5.0)


class _TestOpenShort(_Keeps):
    path = "load_switch.test_open_s"

    def wrong(self, declared: float) -> float:
        return max(0.5, declared - 1.0)


class _LosesMplOnPowerCycle:
    def lose_on_power_cycle(self) -> None:
        self.core.state.mpl = None  # type: ignore[attr-defined]


class _LosesTamperOnPowerCycle:
    def lose_on_power_cycle(self) -> None:
        self.core.state.tamper = False  # type: ignore[attr-defined]


class _LosesTidStoreOnPowerCycle:
    def lose_on_power_cycle(self) -> None:
        core = self.core  # type: ignore[attr-defined]
        core.state.tid_store = [0] * core.parameters.tid_store_size


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
           processor=_IgnoresKeyExpiry,
           unobservable=_no_key_expiry),
    Defect("key-after-first-kct", "§8 key change",
           "installs a new key as soon as the first key change token arrives",
           processor=_KeyAfterFirstKct,
           unobservable=_four_section_key),
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
    # Boundary mistakes: the rule is kept, but not where the declaration puts its limit.
    Defect("tid-store-smaller", "§9.2 TID store size (§10 declared)",
           "the TID store holds one TID fewer than declared", processor=_TidStoreSmaller),
    Defect("tid-store-larger", "§9.2 TID store size (§10 declared)",
           "the TID store holds one TID more than declared", processor=_TidStoreLarger),
    Defect("old-includes-store-min", "§9.2 Used/Old",
           "the smallest stored TID is answered Old instead of Used",
           processor=_OldIncludesStoreMin),
    Defect("credit-limit-early", "§9.5 Overflow (§10 declared credit limit)",
           "Overflow one base unit before the declared limit", processor=_CreditLimitEarly),
    Defect("credit-limit-late", "§9.5 Overflow (§10 declared credit limit)",
           "accepts one base unit past the declared limit", processor=_CreditLimitLate),
    Defect("drops-last-service", "§1 TransferCredit (§10 declared services)",
           "refuses credit for the highest declared service register",
           processor=_DropsLastService, unobservable=_one_service),
    Defect("accepts-undeclared-service", "§9.3 Function (§10 declared services)",
           "credits a register the meter does not declare", processor=_AcceptsUndeclaredService),
    Defect("drops-last-test", "§9.4 class 1 (§10 declared tests)",
           "refuses the highest-numbered declared class-1 test", processor=_DropsLastTest),
    Defect("kt-change-refused", "§8 key type (§10 declared KT changes)",
           "refuses a key change to the highest key type the declaration allows",
           processor=_KtChangeRefused),
    Defect("expiry-when-undeclared", "§5 KEN (§10 declared key expiry)",
           "enforces the key expiry number although it declares no key expiry",
           processor=_ExpiryWhenUndeclared, unobservable=_declares_expiry),
    Defect("kct-kept-when-undeclared", "§8 key change (§10 declared KCT power cycle)",
           "keeps a waiting key change section over a power cycle, declaring it does not",
           processor=_KctKeptWhenUndeclared, unobservable=_declares_kct_kept),
    Defect("loses-mpl-on-power-cycle", "§9.5 non-volatile MPL",
           "the maximum power limit is lost when power is cycled", device=_LosesMplOnPowerCycle),
    Defect("loses-tamper-on-power-cycle", "§9.5 non-volatile tamper flag",
           "the tamper flag is lost when power is cycled", device=_LosesTamperOnPowerCycle),
    Defect("loses-tid-store-on-power-cycle", "§9.2 non-volatile TID store",
           "the TID store is lost when power is cycled", device=_LosesTidStoreOnPowerCycle),
    Defect("message-too-short", "§9.3 display (§10 declared message time)",
           "result messages stay 1 s shorter than declared", device=_MessageTooShort),
    Defect("message-too-long", "§9.3 display (§10 declared message time)",
           "result messages stay 1 s longer than declared", device=_MessageTooLong),
    Defect("test-display-too-short", "§9.4 display (§10 declared test display time)",
           "class-1 test displays stay 1 s shorter than declared", device=_TestDisplayTooShort),
    Defect("entry-timeout-short", "IEC 62055-51 keypad (§10 declared entry time-out)",
           "a part-typed entry is dropped 2 s before the declared time-out",
           device=_EntryTimeoutShort, unobservable=_no_keypad),
    Defect("entry-timeout-long", "IEC 62055-51 keypad (§10 declared entry time-out)",
           "a part-typed entry is kept 2 s past the declared time-out",
           device=_EntryTimeoutLong, unobservable=_no_keypad),
    Defect("short-press-registered", "IEC 62055-51 keypad (§10 declared shortest press)",
           "key presses a third of the declared shortest hold are registered",
           device=_ShortPressRegistered, unobservable=_no_keypad),
    Defect("lockout-early", "§9.3 lockout (§10 declared rejections)",
           "the keypad locks one rejected entry early",
           device=_LockoutEarly, unobservable=_no_keypad_lockout),
    Defect("lockout-late", "§9.3 lockout (§10 declared rejections)",
           "the keypad locks one rejected entry late",
           device=_LockoutLate, unobservable=_no_keypad_lockout),
    Defect("lockout-no-growth", "§9.3 lockout (§10 declared growth factor)",
           "every lockout lasts the first lockout's time",
           device=_LockoutNoGrowth, unobservable=_no_keypad_lockout),
    Defect("lockout-past-max", "§9.3 lockout (§10 declared longest lockout)",
           "lockouts keep growing past the declared maximum",
           device=_LockoutPastMax, unobservable=_no_keypad_lockout),
    Defect("lockout-first-short", "§9.3 lockout (§10 declared first lockout)",
           "the first lockout ends 2 s early (and the growth starts from there)",
           device=_LockoutFirstShort, unobservable=_no_keypad_lockout),
    Defect("mpl-trips-early", "§9.5 MPL (§10 declared trip delay)",
           "the load switch trips 2 s before the declared delay", device=_MplTripsEarly),
    Defect("mpl-trips-late", "§9.5 MPL (§10 declared trip delay)",
           "the load switch trips 2 s after the declared delay", device=_MplTripsLate),
    Defect("mpl-reconnects-early", "§9.5 MPL (§10 declared reconnection time)",
           "after a trip the switch recloses 5 s early", device=_MplReconnectsEarly),
    Defect("test-open-short", "§9.4 load switch test (§10 declared open time)",
           "the load switch test opens the switch 1 s shorter than declared",
           device=_TestOpenShort, unobservable=_no_load_switch_test),
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
