"""The plant: load behaviour in CC/CR/CP, relay, exact energy integration, notifications."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.clock import SimClock
from simlab.plant import LoadMode, LoadRating, Plant, PlantState


class ManualClock:
    """Simulated time that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def powered_plant(clock: ManualClock, **kwargs: object) -> Plant:
    plant = Plant(clock, **kwargs)  # type: ignore[arg-type]
    plant.set_source_voltage(230.0)
    plant.set_source_frequency(50.0)
    plant.set_source_output(True)
    plant.set_relay(True)
    return plant


@pytest.mark.parametrize(
    ("mode", "setpoint", "amps"),
    [
        (LoadMode.CC, 5.0, 5.0),
        (LoadMode.CR, 52.9, 230.0 / 52.9),
        (LoadMode.CP, 1000.0, 1000.0 / 230.0),
    ],
)
def test_load_modes_draw_the_expected_current(mode: LoadMode, setpoint: float, amps: float) -> None:
    plant = powered_plant(ManualClock())
    plant.set_load(mode, setpoint)
    plant.set_load_on(True)
    state = plant.state()
    assert state.load_voltage_v == 230.0
    assert state.load_current_a == pytest.approx(amps)
    assert state.load_power_w == pytest.approx(230.0 * amps)
    assert state.supply_current_a == pytest.approx(amps)
    assert plant.meter_power_w() == pytest.approx(230.0 * amps)


def test_load_off_draws_nothing() -> None:
    plant = powered_plant(ManualClock())
    plant.set_load(LoadMode.CC, 5.0)
    assert plant.state().load_current_a == 0.0
    assert plant.state().load_voltage_v == 230.0


def test_constant_power_draws_nothing_without_voltage() -> None:
    plant = powered_plant(ManualClock())
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    plant.set_source_output(False)
    state = plant.state()
    assert (state.load_voltage_v, state.load_current_a, state.load_power_w) == (0.0, 0.0, 0.0)


def test_constant_power_at_low_voltage_is_clipped_by_the_load_rating() -> None:
    plant = powered_plant(ManualClock(), load_rating=LoadRating(max_current_a=18.0))
    plant.set_source_voltage(10.0)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    # 1000 W at 10 V would be 100 A; the load cannot sink more than its 18 A.
    assert plant.state().load_current_a == pytest.approx(18.0)


def test_constant_current_saturates_near_zero_volts() -> None:
    plant = powered_plant(ManualClock(), load_rating=LoadRating(min_resistance_ohm=0.5))
    plant.set_source_voltage(1.0)
    plant.set_load(LoadMode.CC, 10.0)
    plant.set_load_on(True)
    assert plant.state().load_current_a == pytest.approx(2.0)


def test_power_above_the_rating_is_clipped() -> None:
    plant = powered_plant(ManualClock(), load_rating=LoadRating(max_power_w=1800.0))
    plant.set_load(LoadMode.CR, 1.0)
    plant.set_load_on(True)
    assert plant.state().load_power_w == pytest.approx(1800.0)


def test_open_relay_cuts_the_load_but_not_the_meter_supply() -> None:
    plant = powered_plant(ManualClock())
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    plant.set_relay(False)
    state = plant.state()
    assert state.supply_voltage_v == 230.0
    assert state.load_voltage_v == 0.0
    assert state.load_current_a == 0.0
    assert plant.meter_power_w() == 0.0
    assert plant.meter_supplied()
    plant.set_source_output(False)
    assert not plant.meter_supplied()


def test_energy_is_integrated_exactly_across_state_changes() -> None:
    clock = ManualClock()
    plant = powered_plant(clock)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    clock.advance(1800.0)  # 1000 W for 30 min
    assert plant.energy_wh() == pytest.approx(500.0)
    plant.set_relay(False)
    clock.advance(1000.0)  # nothing flows
    assert plant.energy_wh() == pytest.approx(500.0)
    plant.set_load(LoadMode.CC, 2.0)
    plant.set_relay(True)
    clock.advance(3600.0)  # 460 W for 1 h
    assert plant.energy_wh() == pytest.approx(960.0)
    assert plant.charge_ah() == pytest.approx(1000.0 / 230.0 * 0.5 + 2.0)
    # Past values are exact too, inside any segment.
    assert plant.energy_wh(at=900.0) == pytest.approx(250.0)
    assert plant.energy_wh(at=2000.0) == pytest.approx(500.0)
    assert plant.energy_wh(at=2800.0 + 1800.0) == pytest.approx(730.0)


def test_energy_is_exact_on_a_fast_real_clock() -> None:
    clock = SimClock(speed=1000.0)
    plant = powered_plant(clock)  # type: ignore[arg-type]
    plant.set_load(LoadMode.CP, 1800.0)
    plant.set_load_on(True)
    t0 = clock.now()
    e0 = plant.energy_wh(at=t0)
    t1 = clock.now()
    # 1800 W is 0.5 Wh per simulated second, whatever the scheduling jitter.
    assert plant.energy_wh(at=t1) - e0 == pytest.approx(0.5 * (t1 - t0), rel=1e-9, abs=1e-9)


def test_time_to_energy_predicts_the_moment_exactly() -> None:
    clock = ManualClock()
    plant = powered_plant(clock)
    assert plant.time_to_energy(1.0) is None  # no power flows yet
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    clock.advance(123.0)
    seconds = plant.time_to_energy(10.0)
    assert seconds == pytest.approx(36.0)
    before = plant.energy_wh()
    clock.advance(seconds)
    assert plant.energy_wh() - before == pytest.approx(10.0)
    assert plant.time_to_energy(0.0) == 0.0
    assert plant.time_to_energy(-1.0) == 0.0


def test_history_bounds_are_enforced() -> None:
    clock = ManualClock()
    clock.advance(10.0)
    plant = powered_plant(clock)
    with pytest.raises(ValueError, match="before"):
        plant.energy_wh(at=5.0)
    with pytest.raises(ValueError, match="future"):
        plant.energy_wh(at=11.0)


def test_history_is_trimmed_but_recent_past_stays_exact() -> None:
    clock = ManualClock()
    plant = powered_plant(clock, history_limit=10)
    plant.set_load_on(True)
    for step in range(50):
        plant.set_load(LoadMode.CC, 1.0 + step % 2)
        clock.advance(10.0)
    assert plant.energy_wh() == pytest.approx(230.0 * 10 * (25 * 1 + 25 * 2) / 3600)
    with pytest.raises(ValueError):
        plant.energy_wh(at=0.0)
    assert plant.energy_wh(at=clock.t - 5.0) == pytest.approx(
        plant.energy_wh() - 230 * 2 * 5 / 3600
    )


def test_listeners_see_every_change_once_and_in_order() -> None:
    plant = powered_plant(ManualClock())
    seen: list[PlantState] = []
    unsubscribe = plant.subscribe(seen.append)
    plant.set_relay(False)
    plant.set_relay(False)  # no change, no notification
    plant.set_load(LoadMode.CC, 3.0)
    unsubscribe()
    plant.set_relay(True)
    assert [s.relay_closed for s in seen] == [False, False]
    assert [s.load_setpoint for s in seen] == [0.0, 3.0]
    assert seen[0].seq < seen[1].seq


def test_a_listener_may_change_the_plant_from_its_callback() -> None:
    """The meter's pattern: open the relay from inside a notification."""
    clock = ManualClock()
    plant = powered_plant(clock)

    def meter(state: PlantState) -> None:
        if state.load_power_w > 500.0:
            plant.set_relay(False)

    plant.subscribe(meter)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    assert not plant.state().relay_closed
    assert plant.meter_power_w() == 0.0


def test_a_failing_listener_does_not_break_the_change() -> None:
    plant = powered_plant(ManualClock())

    def broken(state: PlantState) -> None:
        raise RuntimeError("listener bug")

    plant.subscribe(broken)
    plant.set_relay(False)
    assert not plant.state().relay_closed


def test_source_overcurrent_trips_the_output_until_switched_on_again() -> None:
    plant = powered_plant(ManualClock())
    plant.set_source_current_limit(2.0)
    plant.set_load(LoadMode.CC, 5.0)
    plant.set_load_on(True)
    state = plant.state()
    assert state.source_tripped and not state.source_on
    assert state.load_current_a == 0.0
    plant.set_source_output(True)  # the overload is still there: trips again
    assert plant.state().source_tripped
    plant.set_source_current_limit(10.0)
    plant.set_source_output(True)
    state = plant.state()
    assert state.source_on and not state.source_tripped
    assert state.load_current_a == pytest.approx(5.0)


def test_noise_is_seeded_small_and_never_reaches_energy() -> None:
    def sample(seed: int) -> list[float]:
        clock = ManualClock()
        plant = powered_plant(clock, noise=1e-3, seed=seed)
        plant.set_load(LoadMode.CP, 1000.0)
        plant.set_load_on(True)
        clock.advance(3600.0)
        assert plant.energy_wh() == pytest.approx(1000.0, rel=1e-12)
        return [plant.measured().load_voltage_v for _ in range(5)]

    first = sample(7)
    assert first == sample(7)
    assert first != sample(8)
    assert all(v != 230.0 and v == pytest.approx(230.0, rel=1e-2) for v in first)
    quiet = powered_plant(ManualClock())
    assert quiet.measured() == quiet.state()


def test_invalid_settings_are_refused() -> None:
    plant = Plant(ManualClock())
    with pytest.raises(ValueError):
        plant.set_source_voltage(-1.0)
    with pytest.raises(ValueError):
        plant.set_source_frequency(0.0)
    with pytest.raises(ValueError):
        plant.set_load(LoadMode.CR, 0.0)
    with pytest.raises(ValueError):
        plant.set_load(LoadMode.CC, math.nan)


_operations = st.lists(
    st.tuples(
        st.sampled_from(["relay", "output", "voltage", "load", "mode"]),
        st.floats(min_value=0.0, max_value=1.0),
        st.floats(min_value=0.0, max_value=5000.0),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_operations)
def test_energy_is_the_integral_of_power_over_any_sequence(ops: list) -> None:
    clock = ManualClock()
    plant = powered_plant(clock)
    plant.set_load_on(True)
    expected = 0.0
    for kind, x, dt in ops:
        if kind == "relay":
            plant.set_relay(x > 0.5)
        elif kind == "output":
            plant.set_source_output(x > 0.3)
        elif kind == "voltage":
            plant.set_source_voltage(300.0 * x)
        elif kind == "load":
            plant.set_load_on(x > 0.2)
        else:
            mode = [LoadMode.CC, LoadMode.CR, LoadMode.CP][int(x * 2.999)]
            plant.set_load(mode, 1.0 + 20.0 * x if mode is not LoadMode.CP else 2000.0 * x)
        power = plant.state().load_power_w
        clock.advance(dt)
        expected += power * dt / 3600.0
    assert plant.energy_wh() == pytest.approx(expected, rel=1e-9, abs=1e-9)
