"""The simulated meter device: keypad, lockout, display, load switch, tamper, power, models.

Each test drives a :class:`~simlab.meter.SimMeter` on a hand-stepped clock (see
``meter_rig``), so every time-out, trip delay and message time is checked at the exact
simulated moment around it. What the LCD shows is checked as text and annunciators, what the
load switch does through the plant it switches.
"""

from __future__ import annotations

import pytest

from simlab.bench import SimBench
from simlab.meter import SimMeter, load_model
from sts.keys import EncryptionAlgorithm
from sts.meter import Result
from sts.tokens import (
    ClearTamperCondition,
    SetMaximumPhasePowerUnbalanceLimit,
    SetMaximumPowerLimit,
)
from tests.simlab.meter_models import NoTamperClearMeter, NoTamperClearProcess
from tests.simlab.meter_rig import MeterRig, builtin_profile, layout_of

ACCEPT_TEXT = "AccEPt"  # the default profile's vocabulary, as its LCD shows it
MESSAGE_S = 3.0  # default profile: display.message_seconds
STEP_S = 2.0  # default profile: display.test_step_seconds


@pytest.fixture
def rig() -> MeterRig:
    return MeterRig()


@pytest.fixture
def ea11() -> MeterRig:
    return MeterRig(builtin_profile("ea11"))


def with_credit(rig: MeterRig, units: int = 100) -> MeterRig:
    """The meter with ``units`` x 0.1 kWh credit and its result message gone."""
    assert rig.enter(rig.credit(units)) is Result.ACCEPT
    rig.advance(rig.profile.display.message_seconds)
    return rig


# ---- keypad entry ---------------------------------------------------------------------------


def test_typed_digits_fill_the_entry_and_the_lcd_shows_the_last_ones(rig: MeterRig) -> None:
    rig.type("12345")
    assert rig.state().entry == "12345"
    assert rig.text() == "12345"
    rig.type("678901234")
    assert rig.state().entry == "12345678901234"
    assert rig.text() == "78901234"  # eight cells: the most recent digits


def test_backspace_removes_the_last_digit_and_does_nothing_on_an_empty_entry(
    rig: MeterRig,
) -> None:
    rig.type("123", "BACK")
    assert rig.state().entry == "12"
    rig.type("BACK", "BACK", "BACK")
    assert rig.state().entry == ""
    assert rig.text() == "0.0"  # back to the credit display
    rig.type("4")
    assert rig.state().entry == "4"


def test_enter_processes_the_typed_token(rig: MeterRig) -> None:
    rig.type(rig.credit(25), "ENTER")
    state = rig.state()
    assert state.last_result is Result.ACCEPT
    assert state.credit == {0: 25}
    assert state.entry == ""
    assert state.entries == 1
    assert rig.text() == ACCEPT_TEXT


def test_enter_on_an_empty_entry_processes_nothing(rig: MeterRig) -> None:
    rig.type("ENTER")
    state = rig.state()
    assert state.entries == 0
    assert state.last_result is None


def test_a_press_shorter_than_the_debounce_time_is_not_registered(rig: MeterRig) -> None:
    assert rig.profile.keypad.min_hold_ms == 50
    rig.press("7", hold_s=0.045)
    assert rig.state().entry == ""
    rig.press("7", hold_s=0.055)
    assert rig.state().entry == "7"


def test_a_key_the_layout_does_not_have_is_refused(rig: MeterRig) -> None:
    with pytest.raises(ValueError, match="MENU"):
        rig.meter.key_down("MENU")


def test_a_part_typed_entry_is_discarded_after_the_entry_timeout(rig: MeterRig) -> None:
    timeout = rig.profile.keypad.entry_timeout_s
    rig.type("123")  # the last key went up GAP_S ago
    rig.advance(timeout - 1.0)
    rig.type("4")  # a key press restarts the time-out
    rig.advance(timeout - 1.0)
    assert rig.state().entry == "1234"
    rig.advance(1.0)
    assert rig.state().entry == ""
    assert rig.text() == "0.0"


# ---- keypad lockout -------------------------------------------------------------------------


def reject_three_times(rig: MeterRig) -> None:
    for _ in range(3):
        rig.type("123", "ENTER")  # a Format error each time


def test_three_rejected_entries_lock_the_keypad_for_10_s(rig: MeterRig) -> None:
    policy = rig.profile.keypad.lockout
    assert (policy.after_rejects, policy.first_seconds) == (3, 10)
    rig.type("123", "ENTER")
    rig.type("123", "ENTER")
    assert rig.state().lockout_until is None
    rig.type("123", "ENTER")
    locked_at = rig.clock.now() - 0.12  # the ENTER key went up one gap ago
    state = rig.state()
    assert state.lockout_until == pytest.approx(locked_at + 10.0)
    assert "keypad_lock" in state.display.annunciators
    rig.advance(locked_at + 10.0 - rig.clock.now() - 0.01)
    assert "keypad_lock" in rig.annunciators()
    rig.advance(0.02)
    assert rig.state().lockout_until is None
    assert "keypad_lock" not in rig.annunciators()


def test_a_token_typed_during_lockout_is_answered_lockout_and_not_processed(
    rig: MeterRig,
) -> None:
    reject_three_times(rig)
    token = rig.credit(10)
    rig.type(token, "ENTER")
    assert rig.text() == rig.vocabulary(Result.LOCKOUT)
    assert rig.state().credit == {0: 0}
    rig.advance(10.0)
    rig.type(token, "ENTER")  # the token was not used up by the refused entry
    assert rig.state().last_result is Result.ACCEPT
    assert rig.state().credit == {0: 10}


def test_lockout_doubles_up_to_its_maximum_and_an_accept_resets_it(rig: MeterRig) -> None:
    durations = []
    for _ in range(9):
        reject_three_times(rig)
        until = rig.state().lockout_until
        assert until is not None
        durations.append(round(until - (rig.clock.now() - 0.12), 6))
        rig.advance(until - rig.clock.now() + 0.01)
    assert durations == [10, 20, 40, 80, 160, 320, 640, 1280, 1280]
    rig.type(rig.credit(1), "ENTER")
    assert rig.state().last_result is Result.ACCEPT
    reject_three_times(rig)
    until = rig.state().lockout_until
    assert until == pytest.approx(rig.clock.now() - 0.12 + 10.0)


def test_rejects_through_other_carriers_do_not_count_towards_lockout(rig: MeterRig) -> None:
    for _ in range(5):
        assert rig.enter("123", carrier="port") is Result.FORMAT
    assert rig.state().lockout_until is None
    rig.type("123", "ENTER")
    assert rig.state().consecutive_rejects == 1


# ---- display state machine ------------------------------------------------------------------


def test_the_lcd_shows_credit_by_default(rig: MeterRig) -> None:
    display = rig.state().display
    assert display.text == "0.0"
    assert {"kwh", "relay_open", "credit_low"} <= display.annunciators
    with_credit(rig, 123)
    display = rig.state().display
    assert display.text == "12.3"
    assert "kwh" in display.annunciators
    assert not {"relay_open", "credit_low"} & display.annunciators


def test_a_result_message_shows_for_message_seconds_then_credit_returns(rig: MeterRig) -> None:
    assert rig.enter(rig.credit(100)) is Result.ACCEPT
    assert rig.text() == ACCEPT_TEXT
    rig.advance(MESSAGE_S - 0.01)
    assert rig.text() == ACCEPT_TEXT
    rig.advance(0.02)
    assert rig.text() == "10.0"
    assert rig.enter(rig.credit(5, tid=1)) is Result.OLD
    assert rig.text() == rig.vocabulary(Result.OLD) == "OLd"
    rig.advance(MESSAGE_S)
    assert rig.text() == "10.0"


def test_a_key_press_ends_the_result_message(rig: MeterRig) -> None:
    rig.enter(rig.credit(100))
    rig.type("BACK")
    assert rig.text() == "10.0"
    rig.type("9")
    assert rig.text() == "9"


def test_class1_test_0_shows_every_supported_test_display_in_turn(rig: MeterRig) -> None:
    with_credit(rig, 100)
    layout = layout_of(rig.profile)
    assert rig.profile.tokens.supported_tests == (0, 1, 2, 3, 4, 6, 9)
    assert rig.enter(rig.meter_test()) is Result.ACCEPT
    assert rig.text() == ACCEPT_TEXT
    seen = []
    relay = []
    rig.advance(MESSAGE_S + 0.5)
    for _ in range(8):
        state = rig.state()
        seen.append(state.display)
        relay.append(state.relay_closed)
        rig.advance(STEP_S)
    texts = [d.text for d in seen]
    assert texts == ["LS tESt", "8." * 8, "0.0", "r1 t2", "ti 01", "P ----", "u 1.42", "10.0"]
    everything = seen[1].segments(layout)
    assert everything == frozenset(layout.segment_ids)  # all segments, all annunciators
    assert "kwh" in seen[2].annunciators  # the cumulative energy register
    # The load switch test opens the switch for test_open_s (5 s) from its display.
    assert relay == [False, False, False, True, True, True, True, True]


@pytest.mark.parametrize(
    ("bit", "text"), [(3, "r1 t2"), (4, "ti 01"), (9, "u 1.42"), (6, "P ----")]
)
def test_a_single_class1_display_test(rig: MeterRig, bit: int, text: str) -> None:
    with_credit(rig)
    assert rig.enter(rig.meter_test(bit)) is Result.ACCEPT
    rig.advance(MESSAGE_S + 0.5)
    assert rig.text() == text
    rig.advance(STEP_S)
    assert rig.text() == "10.0"


def test_the_energy_display_test_shows_the_cumulative_register(rig: MeterRig) -> None:
    with_credit(rig, 100)
    rig.load(500.0)
    rig.advance(3600.0)  # 0.5 kWh
    assert rig.enter(rig.meter_test(2)) is Result.ACCEPT
    rig.advance(MESSAGE_S + 0.5)
    assert rig.text() == "0.5"
    assert "kwh" in rig.annunciators()


def test_an_unsupported_class1_test_is_a_function_error_and_shows_nothing_else(
    rig: MeterRig,
) -> None:
    with_credit(rig)
    assert rig.enter(rig.meter_test(5)) is Result.FUNCTION
    assert rig.text() == rig.vocabulary(Result.FUNCTION) == "rEJ 08"
    rig.advance(MESSAGE_S + 0.5)
    assert rig.text() == "10.0"


# ---- load switch ----------------------------------------------------------------------------


def test_the_load_switch_is_open_without_credit_and_closes_when_credit_arrives(
    rig: MeterRig,
) -> None:
    state = rig.state()
    assert not state.relay_closed
    assert state.open_reasons == {"credit"}
    assert not rig.plant.state().relay_closed
    rig.enter(rig.credit(1))
    assert rig.state().relay_closed
    assert rig.plant.state().relay_closed
    assert "relay_open" not in rig.annunciators()


def test_the_load_switch_opens_when_the_credit_is_used_up(rig: MeterRig) -> None:
    rig.enter(rig.credit(1))  # 0.1 kWh: 360 s at 1000 W
    rig.load(1000.0)
    state = rig.advance(359.0)
    assert state.relay_closed
    assert state.credit_wh == pytest.approx(100.0 - 1000.0 * 359 / 3600)
    state = rig.advance(2.0)
    assert not state.relay_closed
    assert state.open_reasons == {"credit"}
    assert state.credit == {0: 0}
    assert 100.0 <= state.energy_wh <= 101.0
    assert "relay_open" in state.display.annunciators
    assert rig.plant.state().load_power_w == 0.0


def test_credit_is_decremented_by_the_metered_energy(rig: MeterRig) -> None:
    rig.enter(rig.credit(10))  # 1.0 kWh
    rig.load(500.0)
    state = rig.advance(360.0)  # 50 Wh
    assert state.credit_wh == pytest.approx(950.0)
    assert state.credit == {0: 10}  # the 0.1 kWh register moves a whole unit at a time
    assert rig.text() == "0.9"
    state = rig.advance(360.0)  # 100 Wh
    assert state.credit == {0: 9}
    assert state.credit_wh == pytest.approx(900.0)
    readout = {line.address: line for line in rig.meter.readout()}
    assert (readout["C.50.0"].value, readout["C.50.0"].unit) == ("000000.900", "kWh")
    assert float(readout["1.8.0"].value) == pytest.approx(0.1)


def test_the_maximum_power_limit_trips_after_its_delay_and_recloses_later(rig: MeterRig) -> None:
    ls = rig.profile.load_switch
    assert (ls.mpl_trip_delay_s, ls.mpl_reconnect_s) == (5, 60)
    with_credit(rig, 1000)
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 500))) is Result.ACCEPT
    assert rig.state().mpl == 500
    rig.load(400.0)
    assert rig.advance(30.0).relay_closed  # under the limit: never trips
    rig.load(1000.0)
    assert rig.advance(4.9).relay_closed
    state = rig.advance(0.2)
    assert not state.relay_closed
    assert state.open_reasons == {"mpl"}
    assert not rig.advance(59.9).relay_closed
    assert rig.advance(0.2).relay_closed  # recloses after mpl_reconnect_s ...
    assert rig.advance(4.9).relay_closed
    assert not rig.advance(0.2).relay_closed  # ... and trips again: still over the limit
    rig.load(400.0)
    assert rig.advance(60.1).relay_closed
    assert rig.advance(30.0).relay_closed


def test_the_class1_load_switch_test_opens_the_switch_for_test_open_s(rig: MeterRig) -> None:
    assert rig.profile.load_switch.test_open_s == 5
    with_credit(rig)
    rig.enter(rig.meter_test(0))
    assert rig.advance(MESSAGE_S - 0.1).relay_closed  # the result shows first
    state = rig.advance(0.2)
    assert state.display.text == "LS tESt"
    assert not state.relay_closed
    assert state.open_reasons == {"test"}
    assert not rig.advance(4.9).relay_closed
    assert rig.advance(0.2).relay_closed


def test_the_readout_shows_each_quantity_at_the_address_the_profile_declares() -> None:
    base = builtin_profile("default")
    registers = base.port.registers.model_copy(
        update={"credit": "C.51.0", "last_result": "C.53.9", "relay": "C.96.3"}
    )
    port = base.port.model_copy(update={"registers": registers})
    rig = MeterRig(base.model_copy(update={"port": port}))
    rig.enter(rig.credit(25))
    readout = {line.address: line.value for line in rig.meter.readout()}
    assert readout.get("C.51.0") == "000002.500"
    assert readout.get("C.53.9") == "01"
    assert readout.get("C.96.3") == "CLOSED"


def test_the_default_readout_has_every_declared_register(rig: MeterRig) -> None:
    readout = {line.address for line in rig.meter.readout()}
    declared = rig.profile.port.registers.model_dump()
    mppul = declared.pop("mppul")  # the default meter takes no MPPUL token
    assert set(declared.values()) <= readout
    assert mppul not in readout


def test_a_meter_taking_the_mppul_token_reads_the_limit_out(ea11: MeterRig) -> None:
    def mppul() -> str:
        readout = {line.address: line.value for line in ea11.meter.readout()}
        return readout[ea11.profile.port.registers.mppul]

    assert mppul() == "0"
    token = SetMaximumPhasePowerUnbalanceLimit(ea11.next_tid(), 2500)
    assert ea11.enter(ea11.mint(token)) is Result.ACCEPT
    assert mppul() == "2500"


# ---- tamper ---------------------------------------------------------------------------------


def test_the_tamper_flag_lights_its_annunciator_until_cleared(rig: MeterRig) -> None:
    assert "tamper" not in rig.annunciators()
    rig.meter.set_tamper()
    assert "tamper" in rig.annunciators()
    readout = {line.address: line.value for line in rig.meter.readout()}
    assert readout["C.56.0"] == "1"
    assert rig.enter(rig.mint(ClearTamperCondition(rig.next_tid()))) is Result.ACCEPT
    assert not rig.state().tamper
    assert "tamper" not in rig.annunciators()


# ---- power --------------------------------------------------------------------------------


def test_losing_the_supply_blanks_the_meter_and_keeps_its_memory(rig: MeterRig) -> None:
    used = rig.credit(50)
    rig.enter(used)
    rig.type("123")
    before = rig.state()
    rig.supply(False)
    state = rig.advance(1.0)
    assert not state.powered
    assert not state.relay_closed
    assert state.display.text == "" and not state.display.annunciators
    rig.type("4")  # an unpowered keypad does nothing
    rig.supply(True)
    state = rig.advance(1.0)
    assert state.powered
    assert state.entry == ""  # the entry buffer is volatile
    assert state.credit == before.credit == {0: 50}
    assert state.tid_store == before.tid_store
    assert (state.key_fingerprint, state.krn, state.kt, state.ti) == (
        before.key_fingerprint,
        before.krn,
        before.kt,
        before.ti,
    )
    assert state.relay_closed
    assert rig.plant.state().relay_closed  # the circuit is closed again, not the meter's word
    assert rig.enter(used) is Result.USED


def test_a_power_cycle_drops_a_partial_key_change_set(rig: MeterRig) -> None:
    kct1, kct2 = rig.key_change(rig.new_key(krn=2))
    old = rig.state().key_fingerprint
    assert rig.enter(kct1) is Result.KCT1_RECEIVED
    assert rig.state().pending_kcts == (3,)
    rig.meter.power_cycle()
    assert rig.state().pending_kcts == ()
    assert rig.enter(kct2) is Result.KCT2_RECEIVED  # waits for a first section again
    state = rig.state()
    assert state.key_fingerprint == old
    assert state.krn == 1


def test_a_complete_key_change_survives_a_power_cycle(rig: MeterRig) -> None:
    new = rig.new_key(krn=2)
    results = [rig.enter(t) for t in rig.key_change(new)]
    assert results == [Result.KCT1_RECEIVED, Result.ACCEPT]
    rig.supply(False)
    rig.advance(1.0)
    rig.supply(True)
    state = rig.advance(1.0)
    assert state.key_fingerprint == new.key.fingerprint
    assert state.krn == 2
    rig.key = new.key
    assert rig.enter(rig.credit(1)) is Result.ACCEPT


# ---- the EA11 meter model -------------------------------------------------------------------


def test_ea11_profile_has_a_128_bit_misty1_key_and_takes_its_tokens(ea11: MeterRig) -> None:
    key = ea11.profile.decoder_key()
    assert key.ea is EncryptionAlgorithm.MISTY1
    assert len(key.value) == 16
    assert ea11.enter(ea11.credit(42)) is Result.ACCEPT
    assert ea11.state().credit[0] == 42
    assert ea11.text() == "Good"
    assert layout_of(ea11.profile).digit_count == 6


def test_ea11_key_change_takes_four_tokens(ea11: MeterRig) -> None:
    new = ea11.new_key(krn=3, sgc=123458)
    kcts = ea11.key_change(new)
    assert len(kcts) == 4
    texts = []
    results = []
    for token in kcts:
        results.append(ea11.enter(token))
        texts.append(ea11.text())
    assert results == [
        Result.KCT1_RECEIVED,
        Result.KCT2_RECEIVED,
        Result.KCT2_RECEIVED,
        Result.ACCEPT,
    ]
    assert texts == [ea11.vocabulary(r) for r in results]
    assert texts[-1] == "Good"
    state = ea11.state()
    assert (state.krn, state.sgc, state.key_fingerprint) == (3, 123458, new.key.fingerprint)
    old_key_token = ea11.credit(1)
    assert ea11.enter(old_key_token) is Result.CRC
    ea11.key = new.key
    assert ea11.enter(ea11.credit(1)) is Result.ACCEPT


def test_ea11_checks_a_4_digit_mfr_code(ea11: MeterRig) -> None:
    assert ea11.profile.tokens.mfr_code == 100
    assert ea11.enter(ea11.meter_test(3, mfr_code=100)) is Result.ACCEPT
    assert ea11.enter(ea11.meter_test(3, mfr_code=1234)) is Result.MFR_CODE
    assert ea11.text() == "Err 14"


def test_ea11_keeps_a_currency_register(ea11: MeterRig, rig: MeterRig) -> None:
    amount = 12_345  # 0.12345 currency units
    token = ea11.credit(amount, register=4)
    assert ea11.enter(token) is Result.ACCEPT
    assert ea11.state().credit == {0: 0, 4: amount}
    readout = {line.address: line.value for line in ea11.meter.readout()}
    assert readout["C.50.4"] == "0.12345"
    # The default meter keeps electricity only.
    assert rig.enter(rig.credit(amount, register=4)) is Result.FUNCTION


def test_ea11_reconnects_on_a_key_press_after_credit_returns(ea11: MeterRig) -> None:
    assert ea11.profile.load_switch.reconnect_on_credit == "key"
    assert ea11.enter(ea11.credit(1)) is Result.ACCEPT
    state = ea11.advance(1.0)
    assert not state.relay_closed  # waits for the customer
    assert state.open_reasons == {"credit"}
    ea11.type("ENTER")
    assert ea11.state().relay_closed
    ea11.load(1000.0)
    assert not ea11.advance(361.0).relay_closed
    assert ea11.enter(ea11.credit(10)) is Result.ACCEPT
    assert not ea11.advance(60.0).relay_closed
    ea11.type("ENTER")
    assert ea11.state().relay_closed


def test_ea11_lockout_policy_is_its_own(ea11: MeterRig) -> None:
    for _ in range(4):
        ea11.type("123", "ENTER")
    assert ea11.state().lockout_until is None
    ea11.type("123", "ENTER")
    assert ea11.state().lockout_until == pytest.approx(ea11.clock.now() - 0.12 + 30.0)


def test_the_default_meter_reconnects_by_itself_after_a_top_up(rig: MeterRig) -> None:
    rig.enter(rig.credit(1))
    rig.load(1000.0)
    assert not rig.advance(361.0).relay_closed
    rig.enter(rig.credit(1))
    assert rig.state().relay_closed


# ---- pluggable meter models -----------------------------------------------------------------

MODEL = "tests.simlab.meter_models:NoTamperClearMeter"


def test_a_model_is_loaded_from_module_and_class() -> None:
    assert load_model(MODEL) is NoTamperClearMeter


def test_a_model_brings_its_own_token_process(rig: MeterRig) -> None:
    model = MeterRig(model=load_model(MODEL))
    assert isinstance(model.meter, NoTamperClearMeter)
    assert isinstance(model.meter.core, NoTamperClearProcess)
    assert model.enter(model.mint(ClearTamperCondition(model.next_tid()))) is Result.FUNCTION
    assert model.enter(model.credit(5)) is Result.ACCEPT
    assert rig.enter(rig.mint(ClearTamperCondition(rig.next_tid()))) is Result.ACCEPT


def test_defects_stack_on_a_model() -> None:
    model = MeterRig(model=NoTamperClearMeter, defects=("accepts-used", "no-disconnect-at-zero"))
    assert isinstance(model.meter, NoTamperClearMeter)
    assert isinstance(model.meter.core, NoTamperClearProcess)
    assert model.state().relay_closed  # no-disconnect-at-zero: closed without credit
    token = model.credit(5)
    assert model.enter(token) is Result.ACCEPT
    assert model.enter(token) is Result.ACCEPT  # accepts-used
    assert model.state().credit == {0: 10}
    # ... and the model's own firmware is still underneath
    assert model.enter(model.mint(ClearTamperCondition(model.next_tid()))) is Result.FUNCTION


def test_the_bench_builds_the_model_it_is_given() -> None:
    built = NoTamperClearMeter.built
    with SimBench(builtin_profile("default"), speed=100.0, model=MODEL) as bench:
        assert isinstance(bench.meter, NoTamperClearMeter)
    assert NoTamperClearMeter.built == built + 1


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("NoTamperClearMeter", "not of the form module:Class"),
        ("tests.simlab.meter_models:", "not of the form module:Class"),
        (":NoTamperClearMeter", "not of the form module:Class"),
        ("tests.simlab.no_such_module:Meter", "cannot import"),
        ("tests.simlab.meter_models:Missing", "not a simlab.meter.SimMeter subclass"),
        ("tests.simlab.meter_models:NotAMeter", "not a simlab.meter.SimMeter subclass"),
        ("tests.simlab.meter_models:NoTamperClearProcess", "not a simlab.meter.SimMeter"),
    ],
)
def test_a_bad_model_spec_is_refused(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        load_model(spec)
    assert repr(spec) in str(caught.value)


def test_sim_meter_itself_is_a_valid_model() -> None:
    assert load_model("simlab.meter:SimMeter") is SimMeter


def test_the_load_is_supplied_again_after_a_power_cycle_with_the_switch_closed(
    rig: MeterRig,
) -> None:
    rig.enter(rig.credit(10))
    assert rig.plant.state().relay_closed
    rig.plant.set_source_output(False)
    rig.advance(5.0)
    assert not rig.plant.state().relay_closed
    rig.plant.set_source_output(True)
    state = rig.advance(1.0)
    assert state.relay_closed
    assert rig.plant.state().relay_closed  # the switch the meter says is closed is closed


def test_a_switch_that_recloses_over_the_limit_has_its_next_trip_as_the_next_event(
    rig: MeterRig,
) -> None:
    """On virtual time the meter is brought up to date only at its own next event: when the
    switch recloses with the load still over the limit, that next event is the trip, the
    declared delay later (not whatever event comes next)."""
    with_credit(rig, 1000)
    assert rig.enter(rig.mint(SetMaximumPowerLimit(rig.next_tid(), 500))) is Result.ACCEPT
    rig.load(1000.0)
    rig.advance(5.1)
    assert not rig.state().relay_closed  # tripped at 5 s
    rig.clock.advance(60.0)  # the reconnection (it tripped at 5.1 s), nothing else due
    due, _ = rig.meter.advance(rig.clock.now())
    assert rig.meter.relay_closed
    assert due == pytest.approx(rig.clock.now() + 5.0)
