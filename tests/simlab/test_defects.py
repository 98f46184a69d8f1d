"""Every catalogued meter defect does what its description says, and the clean meter does not.

One check per defect: a short scenario that returns True when the meter shows the defective
behaviour. The same scenario runs on the meter with that defect (it must show it) and on the
reference meter (it must not), so a check that cannot tell them apart fails.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dut.profile import MeterProfile
from simlab.defects import BY_NAME, CATALOGUE, Defect, apply_defects, lookup
from sts.amount import encode_exponent_mantissa, round_up
from sts.meter import ReferenceMeter, Result
from sts.tokens import ClearTamperCondition, SetMaximumPowerLimit
from tests.simlab.meter_rig import MeterRig, builtin_profile

Rig = Callable[..., MeterRig]


def with_tokens(**changes: object) -> MeterProfile:
    """The default profile with ``tokens`` fields changed."""
    profile = builtin_profile("default")
    return profile.model_copy(update={"tokens": profile.tokens.model_copy(update=changes)})


def with_key(**changes: object) -> MeterProfile:
    """The default profile with ``key`` fields changed (the factory key is derived anew)."""
    profile = builtin_profile("default")
    return profile.model_copy(update={"key": profile.key.model_copy(update=changes)})


# ---- one scenario per defect: True = the meter misbehaves ------------------------------------


def accepts_used(make: Rig) -> bool:
    rig = make()
    token = rig.credit(10)
    assert rig.enter(token) is Result.ACCEPT
    return rig.enter(token) is Result.ACCEPT


def old_off_by_one(make: Rig) -> bool:
    rig = make()
    smallest = min(rig.state().tid_store)
    assert rig.enter(rig.credit(1, tid=smallest - 2)) is Result.OLD
    return rig.enter(rig.credit(1, tid=smallest - 1)) is Result.ACCEPT


def ignores_key_expiry(make: Rig) -> bool:
    rig = make(with_key(ken=90))  # TIDs from 90 * 2**16 minutes on are past the key's expiry
    assert rig.enter(rig.credit(1, tid=90 << 16 | 0xFFFF)) is Result.ACCEPT
    return rig.enter(rig.credit(1, tid=91 << 16)) is Result.ACCEPT


def key_after_first_kct(make: Rig) -> bool:
    rig = make()
    old = rig.state().key_fingerprint
    kct1, _kct2 = rig.key_change(rig.new_key(krn=2))
    assert rig.enter(kct1) is Result.KCT1_RECEIVED
    return rig.state().key_fingerprint != old or rig.state().krn != 1


def ro_keeps_tid_store(make: Rig) -> bool:
    rig = make()
    used_tid = rig.next_tid()
    assert rig.enter(rig.credit(1, tid=used_tid)) is Result.ACCEPT
    new = rig.new_key(krn=2, ro=True)
    assert [rig.enter(t) for t in rig.key_change(new)] == [Result.KCT1_RECEIVED, Result.ACCEPT]
    rig.key = new.key
    # After a rollover the store is empty: an old TID is fresh under the new key.
    return rig.enter(rig.credit(1, tid=used_tid)) is not Result.ACCEPT


def wrong_amount_high_exponent(make: Rig) -> bool:
    rig = make()
    amount = round_up(200_000)  # 20 000 kWh: exponent 2
    assert encode_exponent_mantissa(amount, 3)[0] == 2
    assert rig.enter(rig.credit(amount)) is Result.ACCEPT
    return rig.state().credit[0] != amount


def mfr_code_unchecked(make: Rig) -> bool:
    rig = make()
    assert rig.profile.tokens.mfr_code == 0
    return rig.enter(rig.meter_test(3, mfr_code=42)) is Result.ACCEPT


def credit_wraps(make: Rig) -> bool:
    rig = make(with_tokens(credit_limit=1000))
    assert rig.enter(rig.credit(800)) is Result.ACCEPT
    result = rig.enter(rig.credit(800))
    return result is not Result.OVERFLOW or rig.state().credit[0] != 800


def ddtk_accepts_credit(make: Rig) -> bool:
    rig = make(with_key(kt=1))  # the meter is on a default (DDTK) key
    assert rig.enter(rig.meter_test(3)) is Result.ACCEPT
    return rig.enter(rig.credit(10)) is Result.ACCEPT


def kt_to_ditk(make: Rig) -> bool:
    rig = make()
    assert rig.state().kt == 2
    results = [rig.enter(t) for t in rig.key_change(rig.new_key(krn=2, kt=0))]
    assert results[0] is Result.KCT1_RECEIVED
    return results[1] is Result.ACCEPT or rig.state().kt == 0


def unsupported_test_accepted(make: Rig) -> bool:
    rig = make()
    assert 5 not in rig.profile.tokens.supported_tests
    return rig.enter(rig.meter_test(5)) is Result.ACCEPT


def accepts_19_digits(make: Rig) -> bool:
    rig = make()
    token = rig.credit(1)
    while not token.startswith("0"):  # a token whose 19 last digits are the whole value
        token = rig.credit(1)
    return rig.enter(token[1:]) is not Result.FORMAT


def clear_tamper_ignored(make: Rig) -> bool:
    rig = make()
    rig.meter.set_tamper()
    assert rig.enter(rig.mint(ClearTamperCondition(rig.next_tid()))) is Result.ACCEPT
    return rig.state().tamper or "tamper" in rig.annunciators()


def no_disconnect_at_zero(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(1)) is Result.ACCEPT
    rig.load(1000.0)
    state = rig.advance(361.0)  # 0.1 kWh at 1 kW lasts 360 s
    assert state.credit == {0: 0}
    return state.relay_closed or rig.plant.state().load_power_w > 0


def mpl_not_enforced(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(1000)) is Result.ACCEPT
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 500))) is Result.ACCEPT
    rig.load(1000.0)
    return rig.advance(10.0).relay_closed  # twice the trip delay


def keypad_drops_digit(make: Rig) -> bool:
    rig = make()
    rig.type("123456", gap_s=0.05)
    return rig.state().entry != "123456"


def shows_accept_for_reject(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(1, tid=1)) is Result.OLD
    return rig.text() == rig.vocabulary(Result.ACCEPT)


def loses_credit_on_power_cycle(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(100)) is Result.ACCEPT
    rig.supply(False)
    rig.advance(1.0)
    rig.supply(True)
    return rig.advance(1.0).credit != {0: 100}


# ---- boundary mistakes: the rule is kept, not where the declaration puts its limit ----------


def with_lockout(**changes: object) -> MeterProfile:
    """The default profile with its keypad lockout policy changed."""
    profile = builtin_profile("default")
    keypad = profile.keypad
    lockout = keypad.lockout.model_copy(update=changes)
    return profile.model_copy(update={"keypad": keypad.model_copy(update={"lockout": lockout})})


def _power_cycle(rig: MeterRig) -> None:
    rig.supply(False)
    rig.advance(1.0)
    rig.supply(True)
    rig.advance(1.0)


def tid_store_smaller(make: Rig) -> bool:
    rig = make(with_tokens(tid_store_size=3))
    first = rig.credit(1)
    for token in (first, rig.credit(1), rig.credit(1)):
        assert rig.enter(token) is Result.ACCEPT
    return rig.enter(first) is not Result.USED  # the store should still hold it


def tid_store_larger(make: Rig) -> bool:
    rig = make(with_tokens(tid_store_size=3))
    first = rig.credit(1)
    for token in (first, rig.credit(1), rig.credit(1), rig.credit(1)):
        assert rig.enter(token) is Result.ACCEPT
    return rig.enter(first) is not Result.OLD  # three newer TIDs pushed it out


def old_includes_store_min(make: Rig) -> bool:
    rig = make(with_tokens(tid_store_size=3))
    for _ in range(3):
        assert rig.enter(rig.credit(1)) is Result.ACCEPT
    return rig.enter(rig.credit(1, tid=min(rig.state().tid_store))) is not Result.USED


def credit_limit_early(make: Rig) -> bool:
    rig = make(with_tokens(credit_limit=1000))
    return rig.enter(rig.credit(1000)) is not Result.ACCEPT  # exactly the limit


def credit_limit_late(make: Rig) -> bool:
    rig = make(with_tokens(credit_limit=1000))
    assert rig.enter(rig.credit(1000)) is Result.ACCEPT
    return rig.enter(rig.credit(1)) is not Result.OVERFLOW


def drops_last_service(make: Rig) -> bool:
    rig = make(with_tokens(services=(0, 4)))
    return rig.enter(rig.credit(100, register=4)) is not Result.ACCEPT


def accepts_undeclared_service(make: Rig) -> bool:
    rig = make()
    assert rig.profile.tokens.services == (0,)
    return rig.enter(rig.credit(10, register=1)) is not Result.FUNCTION


def drops_last_test(make: Rig) -> bool:
    rig = make()
    assert max(rig.profile.tokens.supported_tests) == 9
    return rig.enter(rig.meter_test(9)) is not Result.ACCEPT


def kt_change_refused(make: Rig) -> bool:
    rig = make()
    assert 3 in rig.profile.tokens.kt_changes[2]
    results = [rig.enter(t) for t in rig.key_change(rig.new_key(krn=2, kt=3))]
    return results[-1] is not Result.ACCEPT


def expiry_when_undeclared(make: Rig) -> bool:
    profile = with_tokens(key_expiry=False)
    rig = make(profile.model_copy(update={"key": profile.key.model_copy(update={"ken": 90})}))
    return rig.enter(rig.credit(1, tid=91 << 16)) is not Result.ACCEPT


def kct_kept_when_undeclared(make: Rig) -> bool:
    rig = make()
    assert not rig.profile.tokens.kct_kept_over_power_cycle
    kct1, kct2 = rig.key_change(rig.new_key(krn=2))
    assert rig.enter(kct1) is Result.KCT1_RECEIVED
    _power_cycle(rig)
    return rig.enter(kct2) is not Result.KCT2_RECEIVED  # the first section is gone


def loses_mpl_on_power_cycle(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 2000))) is Result.ACCEPT
    _power_cycle(rig)
    return rig.state().mpl != 2000


def loses_tamper_on_power_cycle(make: Rig) -> bool:
    rig = make()
    rig.meter.set_tamper()
    _power_cycle(rig)
    return not rig.state().tamper


def loses_tid_store_on_power_cycle(make: Rig) -> bool:
    rig = make()
    token = rig.credit(1)
    assert rig.enter(token) is Result.ACCEPT
    _power_cycle(rig)
    return rig.enter(token) is not Result.USED


def message_too_short(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(1)) is Result.ACCEPT
    rig.advance(rig.profile.display.message_seconds - 0.5)
    return rig.text() != rig.vocabulary(Result.ACCEPT)


def message_too_long(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(1)) is Result.ACCEPT
    rig.advance(rig.profile.display.message_seconds + 0.5)
    return rig.text() == rig.vocabulary(Result.ACCEPT)


def short_test_display(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.meter_test(3)) is Result.ACCEPT
    d = rig.profile.display
    rig.advance(d.message_seconds)
    rig.advance(d.test_step_seconds - 0.5)
    return rig.text() != "r1 t2"


def entry_timeout_short(make: Rig) -> bool:
    rig = make()
    rig.type("1234")
    return rig.advance(rig.profile.keypad.entry_timeout_s - 1).entry != "1234"


def entry_timeout_long(make: Rig) -> bool:
    rig = make()
    rig.type("1234")
    return rig.advance(rig.profile.keypad.entry_timeout_s + 1).entry != ""


def short_press_registered(make: Rig) -> bool:
    rig = make()
    rig.press("1", hold_s=rig.profile.keypad.min_hold_ms / 2 / 1000)
    return rig.advance(0).entry == "1"


def _rejects(rig: MeterRig, count: int) -> float | None:
    """``count`` rejected keypad entries; seconds of lockout left after them (None: none)."""
    for _ in range(count):
        rig.type("1", "ENTER")
    until = rig.state().lockout_until
    return None if until is None else until - rig.clock.now()


def lockout_early(make: Rig) -> bool:
    rig = make()
    return _rejects(rig, rig.profile.keypad.lockout.after_rejects - 1) is not None


def lockout_late(make: Rig) -> bool:
    rig = make()
    return _rejects(rig, rig.profile.keypad.lockout.after_rejects) is None


def lockout_no_growth(make: Rig) -> bool:
    rig = make()
    policy = rig.profile.keypad.lockout
    first = _rejects(rig, policy.after_rejects)
    assert first is not None
    rig.advance(first + 1)
    second = _rejects(rig, policy.after_rejects)
    return second is None or second < policy.first_seconds * policy.factor - 1


def lockout_past_max(make: Rig) -> bool:
    rig = make(with_lockout(first_seconds=10, factor=2, max_seconds=20))
    left = 0.0
    for _ in range(3):  # 10 s, 20 s, then still 20 s
        rig.advance(left + 1)
        lasted = _rejects(rig, rig.profile.keypad.lockout.after_rejects)
        assert lasted is not None
        left = lasted
    return left > 20


def lockout_first_short(make: Rig) -> bool:
    rig = make()
    left = _rejects(rig, rig.profile.keypad.lockout.after_rejects)
    return left is None or left < rig.profile.keypad.lockout.first_seconds - 1


def _over_the_limit(rig: MeterRig) -> None:
    assert rig.enter(rig.credit(1000)) is Result.ACCEPT
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 500))) is Result.ACCEPT
    rig.load(1000.0)


def mpl_trips_early(make: Rig) -> bool:
    rig = make()
    _over_the_limit(rig)
    return not rig.advance(rig.profile.load_switch.mpl_trip_delay_s - 1).relay_closed


def mpl_trips_late(make: Rig) -> bool:
    rig = make()
    _over_the_limit(rig)
    return rig.advance(rig.profile.load_switch.mpl_trip_delay_s + 1).relay_closed


def mpl_reconnects_early(make: Rig) -> bool:
    rig = make()
    _over_the_limit(rig)
    ls = rig.profile.load_switch
    assert not rig.advance(ls.mpl_trip_delay_s + 0.5).relay_closed
    return rig.advance(ls.mpl_reconnect_s - 2).relay_closed


def short_test_open(make: Rig) -> bool:
    rig = make()
    assert rig.enter(rig.credit(10)) is Result.ACCEPT
    assert rig.enter(rig.meter_test(0)) is Result.ACCEPT
    rig.advance(rig.profile.display.message_seconds)
    assert not rig.advance(0.5).relay_closed  # the test has opened the switch
    return rig.advance(rig.profile.load_switch.test_open_s - 1).relay_closed


CHECKS: dict[str, Callable[[Rig], bool]] = {
    "accepts-used": accepts_used,
    "old-off-by-one": old_off_by_one,
    "ignores-key-expiry": ignores_key_expiry,
    "key-after-first-kct": key_after_first_kct,
    "ro-keeps-tid-store": ro_keeps_tid_store,
    "wrong-amount-high-exponent": wrong_amount_high_exponent,
    "mfr-code-unchecked": mfr_code_unchecked,
    "credit-wraps": credit_wraps,
    "ddtk-accepts-credit": ddtk_accepts_credit,
    "kt-to-ditk": kt_to_ditk,
    "unsupported-test-accepted": unsupported_test_accepted,
    "accepts-19-digits": accepts_19_digits,
    "clear-tamper-ignored": clear_tamper_ignored,
    "no-disconnect-at-zero": no_disconnect_at_zero,
    "mpl-not-enforced": mpl_not_enforced,
    "keypad-drops-digit": keypad_drops_digit,
    "shows-accept-for-reject": shows_accept_for_reject,
    "loses-credit-on-power-cycle": loses_credit_on_power_cycle,
    "tid-store-smaller": tid_store_smaller,
    "tid-store-larger": tid_store_larger,
    "old-includes-store-min": old_includes_store_min,
    "credit-limit-early": credit_limit_early,
    "credit-limit-late": credit_limit_late,
    "drops-last-service": drops_last_service,
    "accepts-undeclared-service": accepts_undeclared_service,
    "drops-last-test": drops_last_test,
    "kt-change-refused": kt_change_refused,
    "expiry-when-undeclared": expiry_when_undeclared,
    "kct-kept-when-undeclared": kct_kept_when_undeclared,
    "loses-mpl-on-power-cycle": loses_mpl_on_power_cycle,
    "loses-tamper-on-power-cycle": loses_tamper_on_power_cycle,
    "loses-tid-store-on-power-cycle": loses_tid_store_on_power_cycle,
    "message-too-short": message_too_short,
    "message-too-long": message_too_long,
    "test-display-too-short": short_test_display,
    "entry-timeout-short": entry_timeout_short,
    "entry-timeout-long": entry_timeout_long,
    "lockout-early": lockout_early,
    "lockout-late": lockout_late,
    "short-press-registered": short_press_registered,
    "lockout-no-growth": lockout_no_growth,
    "lockout-past-max": lockout_past_max,
    "lockout-first-short": lockout_first_short,
    "mpl-trips-early": mpl_trips_early,
    "mpl-trips-late": mpl_trips_late,
    "mpl-reconnects-early": mpl_reconnects_early,
    "test-open-short": short_test_open,
}


def rig_factory(defects: tuple[str, ...]) -> Rig:
    def make(profile: MeterProfile | None = None) -> MeterRig:
        return MeterRig(profile, defects=defects)

    return make


def test_every_catalogued_defect_has_a_check() -> None:
    assert sorted(CHECKS) == sorted(d.name for d in CATALOGUE)
    assert len(BY_NAME) == len(CATALOGUE)  # names are unique


@pytest.mark.parametrize("name", [d.name for d in CATALOGUE])
def test_defect_changes_behaviour_as_documented(name: str) -> None:
    check = CHECKS[name]
    assert check(rig_factory((name,))), f"{name}: the defective meter behaves correctly"
    assert not check(rig_factory(())), f"{name}: the reference meter shows the defect"


@pytest.mark.parametrize("defect", CATALOGUE, ids=lambda d: d.name)
def test_a_defect_is_either_in_the_token_process_or_in_the_device(defect: Defect) -> None:
    assert (defect.processor is None) != (defect.device is None)
    assert defect.rule and defect.description


def test_defects_compose_on_one_meter() -> None:
    make = rig_factory(("accepts-used", "shows-accept-for-reject", "mfr-code-unchecked"))
    assert accepts_used(make)
    assert mfr_code_unchecked(make)
    rig = make()
    assert rig.enter("1234") is Result.FORMAT
    assert rig.text() == rig.vocabulary(Result.ACCEPT)


def test_an_unknown_defect_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'no-such-defect'"):
        lookup(["accepts-used", "no-such-defect"])
    with pytest.raises(ValueError, match="no-such-defect"):
        MeterRig(defects=("no-such-defect",))


def test_no_defects_leaves_the_token_process_untouched() -> None:
    assert apply_defects(ReferenceMeter, ()) is ReferenceMeter
    assert MeterRig().meter.defects == ()


@pytest.mark.parametrize("name", [d.name for d in CATALOGUE])
def test_a_defect_leaves_the_rules_it_does_not_break_alone(name: str) -> None:
    rig = MeterRig(defects=(name,))
    assert rig.enter(rig.credit(10)) is Result.ACCEPT
    assert rig.state().credit == {0: 10}
    assert rig.enter(rig.meter_test(3)) is Result.ACCEPT
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 2000))) is Result.ACCEPT
    assert rig.state().mpl == 2000
    assert rig.enter(rig.credit(1, tid=1)) is Result.OLD or name == "shows-accept-for-reject"


def test_the_catalogue_holds_boundary_mistakes_each_naming_its_rule() -> None:
    assert len(CATALOGUE) >= 33
    for defect in CATALOGUE:
        assert "§" in defect.rule or "IEC" in defect.rule, defect.name


def test_a_defect_says_where_it_cannot_be_seen() -> None:
    default, ea11 = builtin_profile("default"), builtin_profile("ea11")
    assert BY_NAME["drops-last-service"].unobservable(default) is not None  # one register
    assert BY_NAME["drops-last-service"].unobservable(ea11) is None
    assert BY_NAME["expiry-when-undeclared"].unobservable(default) is not None
    assert BY_NAME["expiry-when-undeclared"].unobservable(ea11) is None
    assert BY_NAME["accepts-used"].unobservable(default) is None
