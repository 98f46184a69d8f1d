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
