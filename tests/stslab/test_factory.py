"""The token factory: scenario words ("the next TID", "the TID of step first", "a key the
meter does not have") become the right 20 digits, checked by decoding them with the keys the
meter would use."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dut.profile import MeterProfile
from sts.identity import Pan
from sts.meter import ReferenceMeter, Result
from sts.tokens import (
    InitiateMeterTest,
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Set3rdSectionDecoderKey,
    Set4thSectionDecoderKey,
    TransferCredit,
    decode,
)
from sts.vending import KEN_NEVER_EXPIRES
from stslab.factory import MintError, TokenFactory, key_state_from_profile, other_meter_pan
from stslab.ledger import Ledger
from stslab.scenario import NewKeySpec, TokenSpec

DEFAULT = MeterProfile.builtin("default")
EA11 = MeterProfile.builtin("ea11")


def factory_for(profile: MeterProfile = DEFAULT, **key_changes: int) -> TokenFactory:
    key = replace(key_state_from_profile(profile), **key_changes)
    ledger = Ledger(serial=profile.meter.serial, pan=profile.meter.pan, key=key,
                    store_floor=profile.tokens.manufacture_tid)  # fmt: skip
    return TokenFactory(profile, ledger, seed=7)


def spec(**fields: object) -> TokenSpec:
    return TokenSpec.model_validate({"class": 0, "subclass": 0, "amount": "1.0", **fields})


def minted_tid(factory: TokenFactory, digits: str) -> int:
    decoded = decode(digits, factory.current_key)
    assert decoded.crc_ok
    return decoded.token.tid


FLOOR = DEFAULT.tokens.manufacture_tid


# --- TIDs -----------------------------------------------------------------------------------


def test_next_is_the_next_free_tid_and_is_recorded_as_issued() -> None:
    f = factory_for()
    first = f.mint(spec(), {})
    second = f.mint(spec(), {})
    assert first.tid == FLOOR + 1 and second.tid == FLOOR + 2
    assert minted_tid(f, first.digits) == first.tid
    assert minted_tid(f, second.digits) == second.tid
    assert f.ledger.last_tid == FLOOR + 2
    assert f.ledger.tokens_issued == 2


def test_the_minted_token_carries_what_the_spec_says() -> None:
    f = factory_for()
    minted = f.mint(spec(amount="12.3", rnd=9), {})
    token = decode(minted.digits, f.current_key).token
    assert isinstance(token, TransferCredit)
    assert (token.subclass, token.amount, token.rnd) == (0, 123, 9)
    assert minted.fields["amount"] == "12.3" and minted.fields["unit"] == "kWh"
    assert minted.key_fingerprint == f.current_key.fingerprint


def test_same_as_reuses_an_earlier_steps_tid_without_issuing() -> None:
    f = factory_for()
    first = f.mint(spec(), {})
    again = f.mint(spec(amount="5.0", tid={"same_as": "first"}), {"first": first.tid})
    assert again.tid == first.tid
    assert minted_tid(f, again.digits) == first.tid
    assert again.digits != first.digits
    assert f.ledger.last_tid == first.tid
    assert f.ledger.tokens_issued == 1


def test_same_as_a_step_without_a_tid_cannot_be_minted() -> None:
    with pytest.raises(MintError, match="'s1' minted no TID"):
        factory_for().mint(spec(tid={"same_as": "s1"}), {})


def test_below_store_min_is_below_the_smallest_stored_tid() -> None:
    f = factory_for()
    size = DEFAULT.tokens.tid_store_size
    for _ in range(size):
        tid = f.mint(spec(), {}).tid
        f.ledger.accepted_tid(tid, size)
    assert f.ledger.store_min(size) == FLOOR + 1
    minted = f.mint(spec(tid={"below_store_min": 1}), {})
    assert minted.tid == FLOOR
    assert minted_tid(f, minted.digits) == FLOOR
    assert f.ledger.last_tid == FLOOR + size  # not issued: the sequence does not move
    assert f.mint(spec(tid={"below_store_min": 3}), {}).tid == FLOOR - 2


def test_below_store_min_of_an_empty_store_cannot_be_minted() -> None:
    f = factory_for()
    f.ledger.store_floor = 0
    with pytest.raises(MintError, match="no TID below the store minimum"):
        f.mint(spec(tid={"below_store_min": 1}), {})


def test_at_ken_is_the_last_tid_the_key_allows() -> None:
    ken = (FLOOR >> 16) + 2
    f = factory_for(ken=ken)
    minted = f.mint(spec(tid={"at_ken": True}), {})
    assert minted.tid == (ken << 16) | 0xFFFF
    assert minted_tid(f, minted.digits) == minted.tid
    assert f.ledger.last_tid == minted.tid
    with pytest.raises(MintError, match="passed KEN"):
        f.mint(spec(tid={"at_ken": True}), {})


def test_past_ken_is_the_first_tid_the_key_refuses() -> None:
    ken = (FLOOR >> 16) + 2
    f = factory_for(ken=ken)
    minted = f.mint(spec(tid={"past_ken": True}), {})
    assert minted.tid == (ken + 1) << 16
    assert minted_tid(f, minted.digits) == minted.tid
    assert f.ledger.last_tid == minted.tid
    # Already past it: the next one in sequence.
    assert f.mint(spec(tid={"past_ken": True}), {}).tid == minted.tid + 1


@pytest.mark.parametrize("rule", ["at_ken", "past_ken"])
def test_a_key_that_never_expires_has_no_ken_boundary(rule: str) -> None:
    f = factory_for(ken=KEN_NEVER_EXPIRES)
    with pytest.raises(MintError, match="never expires"):
        f.mint(spec(tid={rule: True}), {})


def test_next_past_the_ken_cannot_be_minted() -> None:
    f = factory_for(ken=(FLOOR >> 16) - 1)
    with pytest.raises(MintError, match="KEN"):
        f.mint(spec(), {})
    assert f.ledger.last_tid is None


def test_advance_minutes_counts_from_the_last_tid() -> None:
    f = factory_for()
    assert f.mint(spec(tid={"advance_minutes": 60}), {}).tid == FLOOR + 60
    minted = f.mint(spec(tid={"advance_minutes": 1440}), {})
    assert minted.tid == FLOOR + 60 + 1440
    assert minted_tid(f, minted.digits) == minted.tid
    assert f.ledger.last_tid == minted.tid
    assert f.mint(spec(), {}).tid == minted.tid + 1


def test_absolute_is_that_tid_and_is_not_issued() -> None:
    f = factory_for()
    minted = f.mint(spec(tid={"absolute": 1234}), {})
    assert minted.tid == 1234
    assert minted_tid(f, minted.digits) == 1234
    assert f.ledger.last_tid is None


# --- keys -----------------------------------------------------------------------------------


def test_other_meter_is_the_key_of_another_valid_pan() -> None:
    f = factory_for()
    other = other_meter_pan(DEFAULT.meter.pan)
    assert other != DEFAULT.meter.pan
    assert Pan.parse(other).digits == other  # a valid PAN (its check digit holds)
    minted = f.mint(spec(key="other_meter"), {})
    assert not decode(minted.digits, f.current_key).crc_ok
    theirs = f.key_for(f.ledger.key, other)
    assert decode(minted.digits, theirs).crc_ok
    assert minted.key_fingerprint == theirs.fingerprint != f.current_key.fingerprint


def test_other_key_is_the_dut_pan_with_another_krn() -> None:
    f = factory_for()
    minted = f.mint(spec(key="other_key"), {})
    assert not decode(minted.digits, f.current_key).crc_ok
    other = f.key_for(replace(f.ledger.key, krn=f.ledger.key.krn + 1))
    assert decode(minted.digits, other).crc_ok
    assert minted.key_fingerprint == other.fingerprint


def test_previous_needs_a_key_change_first() -> None:
    with pytest.raises(MintError, match="no previous key"):
        factory_for().mint(spec(key="previous"), {})


def test_previous_is_the_key_before_the_last_change() -> None:
    f = factory_for()
    old_key = f.current_key
    _digits, state, _new = f.key_change(NewKeySpec())
    f.ledger.key_installed(state, rollover=False)
    assert f.current_key.fingerprint != old_key.fingerprint
    minted = f.mint(spec(key="previous"), {})
    assert decode(minted.digits, old_key).crc_ok
    assert not decode(minted.digits, f.current_key).crc_ok
    current = f.mint(spec(), {})
    assert decode(current.digits, f.current_key).crc_ok


# --- class 1 --------------------------------------------------------------------------------


def class1(**fields: object) -> TokenSpec:
    return TokenSpec.model_validate({"class": 1, "subclass": 0, **fields})


def test_class1_tests_are_control_bits() -> None:
    f = factory_for()
    minted = f.mint(class1(tests=[1, 3, 9]), {})
    token = decode(minted.digits).token
    assert isinstance(token, InitiateMeterTest)
    assert token.control == (1 << 1) | (1 << 3) | (1 << 9)
    assert minted.tid is None and minted.key_fingerprint is None
    assert f.ledger.last_tid is None and f.ledger.tokens_issued == 0


@pytest.mark.parametrize(("subclass", "bits"), [(0, 36), (1, 28)])
def test_class1_all_tests_sets_every_control_bit(subclass: int, bits: int) -> None:
    f = factory_for(EA11)
    token = decode(f.mint(class1(subclass=subclass, tests="all"), {}).digits).token
    assert token.control == (1 << bits) - 1


def test_class1_control_is_hex() -> None:
    token = decode(factory_for().mint(class1(control="1F"), {}).digits).token
    assert token.control == 0x1F


@pytest.mark.parametrize("profile", [DEFAULT, EA11], ids=["default", "ea11"])
def test_mfr_code_own_and_other(profile: MeterProfile) -> None:
    f = factory_for(profile)
    own = profile.tokens.mfr_code
    subclass = 0 if profile.tokens.mfr_code_digits == 2 else 1
    token = decode(f.mint(class1(subclass=subclass, tests=[1], mfr_code="own"), {}).digits).token
    assert token.mfr_code == own
    other = decode(f.mint(class1(subclass=subclass, tests=[1], mfr_code="other"), {}).digits)
    assert other.token.mfr_code not in (own, 0)
    numbered = decode(f.mint(class1(subclass=subclass, tests=[1], mfr_code=55), {}).digits)
    assert numbered.token.mfr_code == 55


# --- key changes ----------------------------------------------------------------------------


def test_a_64_bit_key_change_is_two_tokens_under_the_current_key() -> None:
    f = factory_for()
    digits, state, new = f.key_change(NewKeySpec(ken=200))
    assert len(digits) == 2
    one, two = (decode(d, f.current_key) for d in digits)
    assert one.crc_ok and two.crc_ok
    assert isinstance(one.token, Set1stSectionDecoderKey)
    assert isinstance(two.token, Set2ndSectionDecoderKey)
    assert one.token.krn == 2 == state.krn  # "next" after KRN 1
    assert (one.token.kenho << 4 | two.token.kenlo) == 200 == state.ken
    assert two.token.ti == state.ti == DEFAULT.key.ti
    assert state.fingerprint == new.key.fingerprint == f.key_for(state).fingerprint
    assert f.ledger.key.krn == 1  # minting a key change installs nothing


def test_a_128_bit_key_change_is_four_tokens() -> None:
    f = factory_for(EA11)
    digits, state, new = f.key_change(NewKeySpec(krn=5, ti=7))
    assert len(digits) == 4
    decoded = [decode(d, f.current_key) for d in digits]
    assert all(d.crc_ok for d in decoded)
    kinds = [type(d.token) for d in decoded]
    assert kinds == [Set1stSectionDecoderKey, Set2ndSectionDecoderKey, Set3rdSectionDecoderKey,
                     Set4thSectionDecoderKey]  # fmt: skip
    assert (state.krn, state.ti) == (5, 7)
    assert new.sgc == EA11.key.sgc


def test_a_relative_ken_counts_from_the_next_tid() -> None:
    f = factory_for()
    f.ledger.issue(FLOOR + 100)
    _digits, state, _new = f.key_change(NewKeySpec(ken={"relative": 2}))
    assert state.ken == ((FLOOR + 101) >> 16) + 2


def test_a_ken_outside_its_byte_cannot_be_minted() -> None:
    f = factory_for()
    with pytest.raises(MintError, match="outside 0-255"):
        f.key_change(NewKeySpec(ken={"relative": 300}))


def test_the_same_seed_mints_the_same_digits() -> None:
    a, b = factory_for(), factory_for()
    assert [a.mint(spec(), {}).digits for _ in range(3)] == [b.mint(spec(), {}).digits
                                                              for _ in range(3)]  # fmt: skip


@pytest.mark.parametrize("profile", [DEFAULT, EA11], ids=["64-bit", "128-bit"])
def test_a_key_from_sections_of_two_sets_is_the_one_the_meter_installs(
    profile: MeterProfile,
) -> None:
    """Every section of one set but the first, then another set's first section: the meter
    installs a key of both sets' words, and the factory derives that same key."""
    f = factory_for(profile)
    one, one_state, _ = f.key_change(NewKeySpec(krn=3, ti=5, ken=200, sgc=123457))
    two, two_state, _ = f.key_change(NewKeySpec(krn=4, ti=7, ken=76, sgc=600727))
    k = f.ledger.key
    meter = ReferenceMeter(f.current_key, krn=k.krn, kt=k.kt, ti=k.ti, sgc=k.sgc, ken=k.ken,
                           parameters=profile.tokens.parameters())  # fmt: skip
    for digits in one[1:]:
        assert meter.enter(digits).result is Result.KCT2_RECEIVED
    assert meter.enter(two[0]).result is Result.ACCEPT
    subclasses = (3, 4, 8, 9)[: len(one)]
    sections = {n: two_state if n == 3 else one_state for n in subclasses}
    state = f.installed_state(sections)
    s = meter.state
    assert f.key_for(state) == s.key and state.fingerprint == s.key.fingerprint
    assert (state.krn, state.kt, state.ti) == (s.krn, s.kt, s.ti) == (4, k.kt, 5)
    assert state.ken == 0x4 << 4 | 200 & 0xF
    if len(one) == 4:
        assert state.sgc == s.sgc == 123457
    assert f.installed_state({n: one_state for n in subclasses}) == one_state
