"""The reference meter application process: one test per rule of IEC 62055-41 §9."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from sts import meter as sts_meter
from sts.codec import insert_class, to_digits
from sts.identity import Drn, Pan
from sts.keys import DecoderKey, EncryptionAlgorithm
from sts.meter import (
    CreditAdded,
    CreditCleared,
    EntryResult,
    KeyInstalled,
    MeterParameters,
    PhaseUnbalanceLimitSet,
    PowerLimitSet,
    ReferenceMeter,
    Result,
    TamperCleared,
)
from sts.tid import TID_LIMIT
from sts.tokens import (
    ClearCredit,
    ClearTamperCondition,
    InitiateMeterTest,
    ReservedToken,
    Set3rdSectionDecoderKey,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
    SetTariffRate,
    SetWaterMeterFactor,
    TokenClass,
    TransferCredit,
    data_block,
    encode,
)
from sts.vending import NewKey, encode_key_change

MakeKey = Callable[..., DecoderKey]
MISTY1 = EncryptionAlgorithm.MISTY1


def _meter(
    key: DecoderKey,
    *,
    kt: int = 2,
    ken: int = 255,
    manufacture_tid: int = 0,
    sgc: int = 123456,
    **parameters: object,
) -> ReferenceMeter:
    return ReferenceMeter(
        key,
        krn=1,
        kt=kt,
        ti=1,
        sgc=sgc,
        ken=ken,
        parameters=MeterParameters(**parameters),  # type: ignore[arg-type]
        manufacture_tid=manufacture_tid,
    )


def _credit(key: DecoderKey, tid: int, amount: int = 100, subclass: int = 0) -> str:
    rnd = 0 if subclass >= 4 else 7
    return encode(TransferCredit(subclass, tid, amount, rnd), key)


def _enter_rejected(meter: ReferenceMeter, digits: str, result: Result) -> EntryResult:
    """Enter a token the meter must refuse with ``result``, changing nothing."""
    before = meter.snapshot()
    outcome = meter.enter(digits)
    assert outcome.result is result, outcome.detail
    assert not outcome.result.accepted
    assert outcome.effects == ()
    assert meter.snapshot() == before
    return outcome


def _kcts(current: DecoderKey, new: DecoderKey, **fields: object) -> tuple[str, ...]:
    values: dict[str, object] = {"krn": 2, "kt": 2, "ti": 1} | fields
    if new.ea is MISTY1:
        values.setdefault("sgc", 123457)
    return encode_key_change(NewKey(new, **values), current)  # type: ignore[arg-type]


# --- Format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits",
    [
        "1" * 19,
        "1" * 21,
        "",
        "2905434713930985135a",
        "2905 4347 1393 0985 135x",
        "73786976294838206464",  # 2**66
        "99999999999999999999",
    ],
)
def test_format_error(key07: DecoderKey, digits: str) -> None:
    _enter_rejected(_meter(key07), digits, Result.FORMAT)


def test_class_3_garbage_is_a_crc_error(key07: DecoderKey) -> None:
    # A typo can land in the reserved class 3: the meter checks it like classes 0 and 2.
    digits = to_digits(insert_class(3, 0x0123456789ABCDEF))
    _enter_rejected(_meter(key07), digits, Result.CRC)


def test_a_valid_class_3_token_is_a_function_error(key07: DecoderKey) -> None:
    digits = encode(ReservedToken(TokenClass.RESERVED, 2, 12345), key07)
    _enter_rejected(_meter(key07), digits, Result.FUNCTION)


def test_grouped_digits_are_accepted(key07: DecoderKey) -> None:
    digits = _credit(key07, 100)
    grouped = " ".join(digits[i : i + 4] for i in range(0, 20, 4))
    assert _meter(key07).enter(grouped).result is Result.ACCEPT


# --- CRC -------------------------------------------------------------------------------------


def test_token_for_another_meter_is_a_crc_error(key07: DecoderKey, make_key: MakeKey) -> None:
    other_meter = make_key(pan=Pan.from_drn(Drn.build(12, 34567890)).digits)
    _enter_rejected(_meter(key07), _credit(other_meter, 100), Result.CRC)


def test_token_under_another_key_is_a_crc_error(key07: DecoderKey, make_key: MakeKey) -> None:
    _enter_rejected(_meter(key07), _credit(make_key(krn=2), 100), Result.CRC)
    _enter_rejected(_meter(key07), _credit(make_key(ti=2), 100), Result.CRC)


def test_mistyped_tokens_are_refused(key07: DecoderKey) -> None:
    meter = _meter(key07)
    digits = _credit(key07, 100)
    before = meter.snapshot()
    results = set()
    for position in range(20):
        for digit in "0123456789":
            if digit != digits[position]:
                results.add(meter.enter(digits[:position] + digit + digits[position + 1 :]).result)
    assert results <= {Result.CRC, Result.FORMAT}
    assert Result.CRC in results
    assert meter.snapshot() == before
    assert meter.enter(digits).result is Result.ACCEPT


def test_class1_with_a_bad_crc(key07: DecoderKey) -> None:
    block = data_block(InitiateMeterTest(0, 1, 0))
    _enter_rejected(_meter(key07), to_digits(insert_class(1, block ^ 1)), Result.CRC)


# --- class 1 ---------------------------------------------------------------------------------


def test_class1_mfr_code(key07: DecoderKey) -> None:
    meter = _meter(key07, mfr_code=12)
    _enter_rejected(meter, encode(InitiateMeterTest(0, 1, 34)), Result.MFR_CODE)
    assert meter.enter(encode(InitiateMeterTest(0, 1, 12))).result is Result.ACCEPT
    assert meter.enter(encode(InitiateMeterTest(0, 1, 0))).result is Result.ACCEPT
    long_code = _meter(key07, mfr_code=1234, mfr_code_digits=4)
    _enter_rejected(long_code, encode(InitiateMeterTest(1, 1, 4321)), Result.MFR_CODE)
    assert long_code.enter(encode(InitiateMeterTest(1, 1, 1234))).result is Result.ACCEPT


def test_mfr_code_0_is_accepted_by_any_manufacturer(key07: DecoderKey) -> None:
    for code in (0, 7, 99):
        meter = _meter(key07, mfr_code=code)
        assert meter.enter("56493153725450313471").result is Result.ACCEPT  # CTSA02/1


def test_unsupported_test_is_a_function_error(key07: DecoderKey) -> None:
    meter = _meter(key07, supported_tests=0b111)
    _enter_rejected(meter, encode(InitiateMeterTest(0, 1 << 5, 0)), Result.FUNCTION)
    _enter_rejected(meter, encode(InitiateMeterTest(0, 0b1001, 0)), Result.FUNCTION)
    _enter_rejected(meter, encode(InitiateMeterTest(0, 0, 0)), Result.FUNCTION)
    outcome = meter.enter(encode(InitiateMeterTest(0, 0b101, 0)))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (sts_meter.TestRequested(0b101, (0, 2)),)


@pytest.mark.parametrize(("subclass", "all_bits"), [(0, 2**36 - 1), (1, 2**28 - 1)])
def test_test_0_runs_the_supported_tests(key07: DecoderKey, subclass: int, all_bits: int) -> None:
    meter = _meter(key07, supported_tests=0b100_0100_0011)
    before = meter.snapshot()
    outcome = meter.enter(encode(InitiateMeterTest(subclass, all_bits, 0)))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (sts_meter.TestRequested(0b100_0100_0011, (0, 1, 6, 10)),)
    assert meter.snapshot() == before  # no TID, no credit


def test_reserved_class1_subclass_is_a_function_error(key07: DecoderKey) -> None:
    digits = encode(ReservedToken(TokenClass.INITIATE, 5, 1))
    _enter_rejected(_meter(key07), digits, Result.FUNCTION)


# --- TID store: Used, Old --------------------------------------------------------------------


def test_used(key07: DecoderKey) -> None:
    meter = _meter(key07)
    digits = _credit(key07, 100)
    assert meter.enter(digits).result is Result.ACCEPT
    _enter_rejected(meter, digits, Result.USED)
    # Another token with the same TID is Used as well.
    _enter_rejected(meter, encode(SetMaximumPowerLimit(100, 5000, 1), key07), Result.USED)


def test_old(key07: DecoderKey) -> None:
    meter = _meter(key07, tid_store_size=3, manufacture_tid=1000)
    for tid in (2000, 3000, 4000):
        assert meter.enter(_credit(key07, tid)).result is Result.ACCEPT
    _enter_rejected(meter, _credit(key07, 1999), Result.OLD)
    assert meter.enter(_credit(key07, 2001)).result is Result.ACCEPT


def test_manufacture_tid_prefills_the_store(key07: DecoderKey) -> None:
    meter = _meter(key07, tid_store_size=5, manufacture_tid=5000)
    assert meter.state.tid_store == [5000] * 5
    _enter_rejected(meter, _credit(key07, 4999), Result.OLD)
    _enter_rejected(meter, _credit(key07, 5000), Result.USED)
    assert meter.enter(_credit(key07, 5001)).result is Result.ACCEPT


def test_tid_replaces_the_smallest_entry(key07: DecoderKey) -> None:
    meter = _meter(key07, tid_store_size=3, manufacture_tid=10)
    for tid in (20, 40, 30):
        assert meter.enter(_credit(key07, tid)).result is Result.ACCEPT
    assert sorted(meter.state.tid_store) == [20, 30, 40]
    assert meter.enter(_credit(key07, 25)).result is Result.ACCEPT  # not below the smallest
    assert sorted(meter.state.tid_store) == [25, 30, 40]
    _enter_rejected(meter, _credit(key07, 22), Result.OLD)
    _enter_rejected(meter, _credit(key07, 30), Result.USED)


def test_store_size_is_never_exceeded(key07: DecoderKey) -> None:
    meter = _meter(key07, tid_store_size=4)
    for tid in range(1, 60, 3):
        assert meter.enter(_credit(key07, tid)).result is Result.ACCEPT
        assert len(meter.state.tid_store) == 4
    assert sorted(meter.state.tid_store) == [49, 52, 55, 58]


# --- key expiry ------------------------------------------------------------------------------


def test_key_expiry_boundary(key07: DecoderKey) -> None:
    meter = _meter(key07, ken=5)
    assert meter.enter(_credit(key07, 5 << 16 | 0xFFFF)).result is Result.ACCEPT
    _enter_rejected(meter, _credit(key07, 6 << 16), Result.KEY_EXPIRED)
    _enter_rejected(meter, encode(SetMaximumPowerLimit(6 << 16, 100), key07), Result.KEY_EXPIRED)


def test_ken_255_never_expires(key07: DecoderKey) -> None:
    meter = _meter(key07, ken=255)
    assert meter.enter(_credit(key07, TID_LIMIT - 1)).result is Result.ACCEPT


def test_meter_without_key_expiry_accepts(key07: DecoderKey) -> None:
    meter = _meter(key07, ken=5, key_expiry=False)
    assert meter.enter(_credit(key07, 6 << 16)).result is Result.ACCEPT


def test_key_change_tokens_are_exempt_from_expiry(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07, ken=0, manufacture_tid=5 << 16)
    new = make_key(krn=2)
    first, second = _kcts(key07, new, ken=9)
    assert meter.enter(first).result is Result.KCT1_RECEIVED
    assert meter.enter(second).result is Result.ACCEPT
    assert meter.state.ken == 9
    assert meter.enter(_credit(new, 9 << 16)).result is Result.ACCEPT
    _enter_rejected(meter, _credit(new, 10 << 16), Result.KEY_EXPIRED)


def test_ken_is_not_installed_without_key_expiry(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07, key_expiry=False)
    new = make_key(krn=2)
    for digits in _kcts(key07, new, ken=1):
        meter.enter(digits)
    assert meter.state.key == new
    assert meter.state.ken == 255
    assert meter.enter(_credit(new, 2 << 16)).result is Result.ACCEPT


# --- DDTK and key types ----------------------------------------------------------------------


def test_ddtk_refuses_credit_but_takes_management_and_kcts(
    make_key: MakeKey,
) -> None:
    default = make_key(kt=1)
    meter = _meter(default, kt=1)
    _enter_rejected(meter, _credit(default, 100), Result.DDTK)
    outcome = meter.enter(encode(SetMaximumPowerLimit(101, 2000), default))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (PowerLimitSet(2000),)
    unique = make_key(kt=2)
    first, second = _kcts(default, unique, kt=2, krn=1)
    assert meter.enter(first).result is Result.KCT1_RECEIVED
    assert meter.enter(second).result is Result.ACCEPT
    assert meter.state.kt == 2
    assert meter.enter(_credit(unique, 102)).result is Result.ACCEPT


def test_never_to_ditk_unless_already_ditk(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07, kt=2)
    new = make_key(kt=0)
    first, second = _kcts(key07, new, kt=0)
    assert meter.enter(first).result is Result.KCT1_RECEIVED
    before = meter.snapshot()
    outcome = meter.enter(second)
    assert outcome.result is Result.KEY_TYPE
    assert outcome.effects == ()
    after = meter.snapshot()
    assert after.key == key07 and after.kt == 2 and after.krn == 1
    before.pending_kcts, after.pending_kcts = {}, {}
    assert after == before
    assert meter.enter(_credit(key07, 100)).result is Result.ACCEPT  # old key still in place

    factory = _meter(make_key(kt=0), kt=0)
    for digits in _kcts(make_key(kt=0), new, kt=0):
        last = factory.enter(digits)
    assert last.result is Result.ACCEPT
    assert factory.state.kt == 0


def test_declared_key_type_changes(key07: DecoderKey, make_key: MakeKey) -> None:
    rules = {2: frozenset({2})}
    meter = _meter(key07, kt=2, kt_changes=rules)
    refused = _kcts(key07, make_key(kt=3), kt=3)
    meter.enter(refused[0])
    assert meter.enter(refused[1]).result is Result.KEY_TYPE
    assert meter.state.key == key07
    allowed = _kcts(key07, make_key(krn=2), kt=2)
    meter.enter(allowed[0])
    assert meter.enter(allowed[1]).result is Result.ACCEPT
    assert meter.state.krn == 2


# --- Overflow, Range, Function ---------------------------------------------------------------


def test_overflow_adds_nothing(key07: DecoderKey) -> None:
    meter = _meter(key07, credit_limit=1000)
    assert meter.enter(_credit(key07, 100, 900)).result is Result.ACCEPT
    overflow = _credit(key07, 101, 200)
    _enter_rejected(meter, overflow, Result.OVERFLOW)
    assert meter.state.credit[0] == 900
    outcome = meter.enter(_credit(key07, 102, 100))  # exactly up to the limit
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (CreditAdded(0, 100),)
    assert meter.state.credit[0] == 1000
    # The refused token's TID was not spent: once there is room it is taken.
    assert meter.consume(0, 500) == 500
    assert meter.enter(overflow).result is Result.ACCEPT
    assert meter.state.credit[0] == 700


def test_clear_credit_of_a_register_the_meter_does_not_keep(key07: DecoderKey) -> None:
    meter = _meter(key07)
    meter.enter(_credit(key07, 100, 50))
    _enter_rejected(meter, encode(ClearCredit(101, 1), key07), Result.RANGE)
    outcome = meter.enter(encode(ClearCredit(102, 0), key07))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (CreditCleared((0,)),)
    assert meter.state.credit[0] == 0


def test_clear_all_credit(key07: DecoderKey) -> None:
    meter = _meter(key07, services=frozenset({0, 1, 4}))
    meter.enter(_credit(key07, 100, 50, 0))
    meter.enter(_credit(key07, 101, 60, 1))
    meter.enter(_credit(key07, 102, 700_000, 4))
    outcome = meter.enter(encode(ClearCredit(103), key07))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (CreditCleared((0, 1, 4)),)
    assert meter.state.credit == {0: 0, 1: 0, 4: 0}


def test_tamper_pad_must_be_zero(key07: DecoderKey) -> None:
    meter = _meter(key07)
    meter.set_tamper()
    _enter_rejected(meter, encode(ClearTamperCondition(100, 1), key07), Result.RANGE)
    assert meter.state.tamper
    outcome = meter.enter(encode(ClearTamperCondition(101, 0), key07))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (TamperCleared(),)
    assert not meter.state.tamper


def test_unsupported_service_is_a_function_error(key07: DecoderKey) -> None:
    meter = _meter(key07, services=frozenset({0}))
    for subclass in (1, 2, 3):
        _enter_rejected(meter, _credit(key07, 100 + subclass, 10, subclass), Result.FUNCTION)
    _enter_rejected(meter, _credit(key07, 104, 10, 5), Result.FUNCTION)
    water = _meter(key07, services=frozenset({1}))
    assert water.enter(_credit(key07, 100, 10, 1)).result is Result.ACCEPT
    assert water.state.credit == {1: 10}


def test_currency_credit(key07: DecoderKey) -> None:
    meter = _meter(key07, services=frozenset({4}))
    outcome = meter.enter(_credit(key07, 100, 10_000_000, 4))
    assert outcome.result is Result.ACCEPT
    assert meter.state.credit[4] == 10_000_624  # carried value, rounded up
    negative = _credit(key07, 101, -100_000, 4)
    before = meter.snapshot()
    assert not meter.enter(negative).result.accepted
    assert meter.snapshot() == before


def test_mppul_needs_declared_support(key07: DecoderKey) -> None:
    digits = encode(SetMaximumPhasePowerUnbalanceLimit(100, 3000), key07)
    _enter_rejected(_meter(key07), digits, Result.FUNCTION)
    meter = _meter(key07, supports_mppul=True)
    outcome = meter.enter(digits)
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (PhaseUnbalanceLimitSet(3000),)
    assert meter.state.mppul == 3000


def test_tariff_rate_and_water_factor_need_declared_support(key07: DecoderKey) -> None:
    rate = encode(SetTariffRate(100, 42), key07)
    factor = encode(SetWaterMeterFactor(101, 7), key07)
    meter = _meter(key07)
    _enter_rejected(meter, rate, Result.FUNCTION)
    _enter_rejected(meter, factor, Result.FUNCTION)
    able = _meter(key07, supports_tariff_rate=True, supports_water_meter_factor=True)
    assert able.enter(rate).result is Result.ACCEPT
    assert able.enter(factor).result is Result.ACCEPT
    assert (able.state.tariff_rate, able.state.water_meter_factor) == (42, 7)


def test_mpl_is_set_rounded_up(key07: DecoderKey) -> None:
    meter = _meter(key07)
    outcome = meter.enter(encode(SetMaximumPowerLimit(100, 16_385), key07))
    assert outcome.result is Result.ACCEPT
    assert meter.state.mpl == 16_394


def test_reserved_management_subclass_is_a_function_error(key07: DecoderKey) -> None:
    digits = encode(ReservedToken(TokenClass.MANAGEMENT, 12, 100 << 16), key07)
    _enter_rejected(_meter(key07), digits, Result.FUNCTION)


def test_128_bit_sections_on_a_64_bit_meter(key07: DecoderKey) -> None:
    digits = encode(Set3rdSectionDecoderKey(1, 2), key07)
    _enter_rejected(_meter(key07), digits, Result.FUNCTION)


# --- key change ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "results"),
    [
        ((0, 1), (Result.KCT1_RECEIVED, Result.ACCEPT)),
        ((1, 0), (Result.KCT2_RECEIVED, Result.ACCEPT)),
    ],
)
def test_kct_halves_in_either_order(
    key07: DecoderKey, make_key: MakeKey, order: tuple[int, int], results: tuple[Result, Result]
) -> None:
    meter = _meter(key07)
    assert meter.enter(_credit(key07, 100, 50)).result is Result.ACCEPT
    new = make_key(krn=2, ti=7)
    kcts = _kcts(key07, new, krn=2, ti=7)
    outcomes = [meter.enter(kcts[i]) for i in order]
    assert tuple(o.result for o in outcomes) == results
    installed = outcomes[-1].effects
    assert len(installed) == 1 and isinstance(installed[0], KeyInstalled)
    assert installed[0].key_fingerprint == new.fingerprint
    assert (installed[0].krn, installed[0].ti, installed[0].kt) == (2, 7, 2)
    s = meter.state
    assert (s.key, s.krn, s.ti, s.kt) == (new, 2, 7, 2)
    assert s.pending_kcts == {}
    assert s.credit[0] == 50
    _enter_rejected(meter, _credit(key07, 200), Result.CRC)
    _enter_rejected(meter, _credit(new, 100), Result.USED)  # the store was kept (RO = 0)
    assert meter.enter(_credit(new, 201)).result is Result.ACCEPT


def test_one_half_then_credit_under_the_old_key(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07)
    new = make_key(krn=2)
    first, second = _kcts(key07, new)
    assert meter.enter(first).result is Result.KCT1_RECEIVED
    assert meter.enter(_credit(key07, 100, 30)).result is Result.ACCEPT
    assert meter.state.key == key07
    assert meter.enter(second).result is Result.ACCEPT
    assert meter.state.key == new
    assert meter.state.credit[0] == 30


def test_half_set_is_dropped_on_power_cycle(key07: DecoderKey, make_key: MakeKey) -> None:
    first, second = _kcts(key07, make_key(krn=2))
    meter = _meter(key07)
    meter.enter(first)
    meter.power_cycle()
    assert meter.enter(second).result is Result.KCT2_RECEIVED
    assert meter.state.key == key07
    keeper = _meter(key07, kct_kept_over_power_cycle=True)
    keeper.enter(first)
    keeper.power_cycle()
    assert keeper.enter(second).result is Result.ACCEPT


def test_128_bit_key_set_in_any_order(key11: DecoderKey, make_key: MakeKey) -> None:
    new = make_key(MISTY1, krn=2, sgc=654321)
    kcts = _kcts(key11, new, krn=2, sgc=654321)
    assert len(kcts) == 4
    subclasses = (3, 4, 8, 9)
    for order in itertools.permutations(range(4)):
        meter = _meter(key11, sgc=123457)
        for position, index in enumerate(order):
            outcome = meter.enter(kcts[index])
            if position < 3:
                expected = Result.KCT1_RECEIVED if subclasses[index] == 3 else Result.KCT2_RECEIVED
                assert outcome.result is expected
                assert meter.state.key == key11
            else:
                assert outcome.result is Result.ACCEPT
        (installed,) = outcome.effects
        assert isinstance(installed, KeyInstalled) and installed.sgc == 654321
        assert (meter.state.key, meter.state.sgc, meter.state.krn) == (new, 654321, 2)
        assert meter.state.pending_kcts == {}
    meter = _meter(key11, sgc=123457)
    assert meter.enter(_credit(new, 100)).result is Result.CRC
    for digits in kcts:
        meter.enter(digits)
    assert meter.enter(_credit(new, 100)).result is Result.ACCEPT


def test_two_kcts_do_not_change_a_128_bit_key(key11: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key11, sgc=123457)
    kcts = _kcts(key11, make_key(MISTY1, krn=2))
    assert meter.enter(kcts[0]).result is Result.KCT1_RECEIVED
    assert meter.enter(kcts[1]).result is Result.KCT2_RECEIVED
    assert meter.enter(kcts[2]).result is Result.KCT2_RECEIVED
    assert meter.state.key == key11
    assert meter.enter(_credit(key11, 100)).result is Result.ACCEPT


def test_rollover_key_change_clears_the_tid_store(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07, tid_store_size=5, manufacture_tid=5000)
    for tid in (6000, 7000):
        meter.enter(_credit(key07, tid, 100))
    new = make_key(krn=2)
    for digits in _kcts(key07, new, ro=True):
        last = meter.enter(digits)
    assert last.result is Result.ACCEPT
    assert last.effects[0].rollover  # type: ignore[union-attr]
    assert len(meter.state.tid_store) == 5
    # Below the old smallest entry (5000), now accepted; the credit is kept.
    outcome = meter.enter(_credit(new, 10, 100))
    assert outcome.result is Result.ACCEPT
    assert meter.state.credit[0] == 300


def test_plain_key_change_keeps_the_tid_store(key07: DecoderKey, make_key: MakeKey) -> None:
    meter = _meter(key07, manufacture_tid=5000)
    new = make_key(krn=2)
    for digits in _kcts(key07, new, ro=False):
        meter.enter(digits)
    assert meter.state.key == new
    _enter_rejected(meter, _credit(new, 10), Result.OLD)


# --- effects and bookkeeping -----------------------------------------------------------------


def test_accepted_credit_reports_its_effect(key07: DecoderKey) -> None:
    meter = _meter(key07)
    outcome = meter.enter(_credit(key07, 100, 16_385))
    assert outcome.result is Result.ACCEPT
    assert outcome.effects == (CreditAdded(0, 16_394),)
    assert outcome.tid == 100
    assert isinstance(outcome.token, TransferCredit)
    assert meter.state.credit[0] == 16_394
    assert 100 in meter.state.tid_store


def test_state_text_never_shows_the_key(key07: DecoderKey) -> None:
    meter = _meter(key07)
    assert key07.hex() not in repr(meter.state).upper()
    assert key07.hex() not in repr(meter.snapshot()).upper()


def test_snapshot_is_a_copy(key07: DecoderKey) -> None:
    meter = _meter(key07)
    snap = meter.snapshot()
    snap.tid_store.append(1)
    snap.credit[0] = 99
    assert len(meter.state.tid_store) == meter.parameters.tid_store_size
    assert meter.state.credit[0] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tid_store_size": 0},
        {"mfr_code_digits": 3},
        {"mfr_code": 100},
        {"services": frozenset({8})},
    ],
)
def test_declared_parameters_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MeterParameters(**kwargs)  # type: ignore[arg-type]


def test_every_result_has_a_label() -> None:
    assert [int(r) for r in Result] == list(range(1, 17))
    assert all(r.label for r in Result)
    assert {r for r in Result if r.accepted} == {
        Result.ACCEPT,
        Result.KCT1_RECEIVED,
        Result.KCT2_RECEIVED,
    }
