"""SimLab on virtual time: the clock visits every event in order, declared durations last
exactly as declared, and every role answers through its driver as on a wire bench."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.base import (
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    driver_class,
)
from instruments.keypad import CommandRefused
from simlab.clock import VirtualClock
from simlab.virtual import FRAME_INTERVAL_S, VirtualBench
from stslab.bench import opened, parse_bench
from stslab.factory import TokenFactory, key_state_from_profile
from stslab.ledger import Ledger
from stslab.scenario import TokenSpec


class _Events:
    """A world whose events fall at given times; it notes when it was visited."""

    def __init__(self, times: list[float]) -> None:
        self.pending = sorted(times)
        self.visits: list[float] = []

    def step(self, t: float) -> float | None:
        self.visits.append(t)
        while self.pending and self.pending[0] <= t:
            self.pending.pop(0)
        return self.pending[0] if self.pending else None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.001, 100, allow_nan=False), max_size=20),
    st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=10),
)
def test_virtual_clock_visits_every_event_in_order_and_never_goes_back(
    events: list[float], sleeps: list[float]
) -> None:
    clock = VirtualClock()
    world = _Events(events)
    clock.bind(world.step)
    for s in sleeps:
        before = clock.now()
        clock.sleep(s)
        assert clock.now() == pytest.approx(before + s)
    assert world.visits == sorted(world.visits)
    end = clock.now()
    for t in events:
        if t <= end:
            assert t in world.visits  # the world was at each of its events exactly then


@pytest.fixture
def bench():
    with VirtualBench(seed=3) as b:
        yield b


@pytest.fixture
def drivers(bench: VirtualBench, tmp_path):  # type: ignore[no-untyped-def]
    path = bench.write_bench_file(tmp_path / "bench.yaml")
    port = bench.profile.port
    extra = {"port": {"password": port.password, "token_register": port.token_register}}
    with opened(parse_bench(path.read_text(), str(path)), extra=extra) as d:
        yield d


def _mint(bench: VirtualBench, amount: str, tid: int | None = None) -> str:
    profile = bench.profile
    ledger = Ledger(
        serial=profile.meter.serial,
        pan=profile.meter.pan,
        key=key_state_from_profile(profile),
        store_floor=profile.tokens.manufacture_tid,
        path=None,
    )
    spec = {"class": 0, "subclass": 0, "amount": amount}
    return TokenFactory(profile, ledger, seed=1).mint(TokenSpec.model_validate(spec), {}).digits


def test_bench_file_names_registered_drivers_and_the_bench(bench: VirtualBench) -> None:
    doc = bench.bench_document()
    assert doc["name"] == "SimLab on virtual time" and doc["simulated"] is True
    for role, entry in doc["instruments"].items():
        assert driver_class(entry["driver"]).role == role
        assert entry["address"].startswith("virtual://")


def test_a_token_typed_on_the_keypad_takes_its_declared_key_times(
    bench: VirtualBench, drivers: dict
) -> None:
    digits = _mint(bench, "5.0")
    t0 = bench.clock.now()
    events = drivers["keypad"].type([*digits, bench.profile.keypad.enter_key])
    assert len(events) == 21
    # 21 presses of 80 ms with 20 gaps of 120 ms, exactly.
    assert bench.clock.now() - t0 == pytest.approx(21 * 0.08 + 20 * 0.12)
    assert events[1].down_ms == pytest.approx(200.0)
    assert bench.true_state().credit[0] >= 50


def test_a_result_message_lasts_exactly_its_declared_time(
    bench: VirtualBench, drivers: dict
) -> None:
    drivers["port"].write_token(_mint(bench, "1.0"))
    accept = bench.profile.display.vocabulary[1]
    shown = bench.shown(0.0)
    start = next(t for t, s in shown if s.text == accept)
    bench.clock.sleep(30)
    after = bench.shown(start)
    ended = next(t for t, s in after if t > start and s.text != accept)
    assert ended - start == pytest.approx(bench.profile.display.message_seconds)


def test_credit_runs_out_exactly_when_the_energy_is_drawn(
    bench: VirtualBench, drivers: dict
) -> None:
    drivers["port"].write_token(_mint(bench, "1.0"))
    credit_wh = bench.true_state().credit_wh
    drivers["load"].set_mode("CP", 1000.0)
    drivers["load"].load(True)
    t_on = bench.clock.now()
    bench.clock.sleep(3600 * credit_wh / 1000 - 1)
    assert bench.true_state().relay_closed
    bench.clock.sleep(2)
    state = bench.true_state()
    assert not state.relay_closed and "credit" in state.open_reasons
    # The power analyser's energy: what the meter let through, to the watt-hour.
    assert bench.plant.energy_wh() == pytest.approx(credit_wh, abs=0.01)
    assert bench.clock.now() - t_on == pytest.approx(3600 * credit_wh / 1000 + 1)


def test_the_port_reads_out_what_the_meter_holds_and_takes_its_line_time(
    bench: VirtualBench, drivers: dict
) -> None:
    t0 = bench.clock.now()
    values = drivers["port"].readout()
    assert bench.clock.now() - t0 > 0.4  # 300 baud sign-on and the data block
    credit = Decimal(values[bench.profile.port.registers.credit].value)
    assert credit == Decimal(str(bench.true_state().credit_wh / 1000)).quantize(Decimal("0.001"))


def test_a_card_written_and_presented_enters_its_token(bench: VirtualBench, drivers: dict) -> None:
    card = bench.profile.card
    digits = _mint(bench, "2.0")
    before = bench.true_state().entries
    drivers["card"].write_tracks({card.token_track: card.prefix + digits + card.suffix})
    drivers["presenter"].present()
    assert bench.true_state().entries == before + 1
    with pytest.raises(Exception, match="no written card"):
        drivers["presenter"].present()


def test_the_camera_reads_the_display_through_the_segment_decoder(
    bench: VirtualBench, drivers: dict
) -> None:
    reading = drivers["display"].read()
    assert reading.text == bench.true_state().display.text
    assert reading.frame_png.startswith(b"\x89PNG")
    assert reading.confidence > 0.5


def test_the_watch_sees_the_answer_and_not_the_digits_flicking_past(
    bench: VirtualBench, drivers: dict
) -> None:
    watch = drivers["display"].watch()
    watch.wait_first()
    drivers["keypad"].type([*_mint(bench, "1.0"), bench.profile.keypad.enter_key])
    bench.clock.sleep(1.0)
    texts = [r.text for _t, r in watch.stop()]
    accept = bench.profile.display.vocabulary[1]
    assert texts[-1].replace(" ", "") == accept.replace(" ", "")
    assert len(texts) == 2  # the credit before, the answer after: no typed digits
    # Each reading counts from when the camera had it for its agreeing frames.
    assert all(t >= watch.started + 3 * FRAME_INTERVAL_S for t, _r in watch.readings)


def test_scpi_roles_use_the_harness_drivers_in_process(bench: VirtualBench, drivers: dict) -> None:
    assert "YOKOGAWA" in drivers["analyzer"].identify().manufacturer.upper()
    drivers["port"].write_token(_mint(bench, "5.0"))  # credit, so the relay closes
    drivers["load"].set_mode("CP", 500.0)
    drivers["load"].load(True)
    bench.clock.sleep(1.0)
    sample = drivers["analyzer"].sample()
    assert sample.power_w == pytest.approx(500.0, rel=0.02)
    drivers["source"].output(False)
    assert not bench.true_state().powered
    with pytest.raises(InstrumentTimeout):
        drivers["port"].readout()  # a meter without supply does not answer


def test_an_unknown_key_is_refused_and_a_stopped_bench_is_gone(
    bench: VirtualBench, drivers: dict
) -> None:
    with pytest.raises(CommandRefused):
        drivers["keypad"].type(["X"])
    bench.stop()
    with pytest.raises(InstrumentGone):
        drivers["keypad"].type(["1"])


@pytest.mark.parametrize(
    ("role", "call"),
    [
        ("keypad", lambda d: d["keypad"].type(["1", "2"])),
        ("port", lambda d: d["port"].readout()),
        ("card", lambda d: d["card"].write_tracks({2: "1234"})),
        ("display", lambda d: d["display"].read()),
        ("analyzer", lambda d: d["analyzer"].sample()),
        ("source", lambda d: d["source"].identify()),
    ],
)
def test_transport_faults_reach_the_driver_as_on_a_wire_bench(
    bench: VirtualBench, drivers: dict, role: str, call: object
) -> None:
    fault = bench.fault(role)
    fault.silent = True
    t0 = bench.clock.now()
    with pytest.raises(InstrumentError) as silent:
        call(drivers)  # type: ignore[operator]
    assert f"[{role}]" in str(silent.value)
    assert bench.clock.now() > t0  # the driver waited for the reply (in virtual time)
    fault.clear()
    fault.vanished = True
    with pytest.raises(InstrumentError) as gone:
        call(drivers)  # type: ignore[operator]
    assert f"[{role}]" in str(gone.value)
    fault.clear()
    fault.garble_rate = 1.0
    with pytest.raises(InstrumentError) as garbled:
        call(drivers)  # type: ignore[operator]
    assert f"[{role}]" in str(garbled.value)
    fault.clear()
    call(drivers)  # type: ignore[operator]  # healed: the device answers again


def test_a_keypad_line_spoilt_mid_entry_leaves_the_keys_pressed_so_far(
    bench: VirtualBench, drivers: dict
) -> None:
    key_up = bench.meter.key_up
    pressed: list[str] = []

    def spoil_after_three(key: str) -> None:
        key_up(key)
        pressed.append(key)
        if len(pressed) == 3:
            bench.fault("keypad").garble_rate = 1.0

    bench.meter.key_up = spoil_after_three  # type: ignore[method-assign]
    with pytest.raises(ProtocolViolation, match="event of key 3"):
        drivers["keypad"].type(["1", "2", "3", "4", "5"])
    assert bench.true_state().entry == "123"


def test_a_delayed_reply_costs_its_delay_and_arrives(bench: VirtualBench, drivers: dict) -> None:
    t0 = bench.clock.now()
    drivers["port"].readout()
    clean = bench.clock.now() - t0
    bench.fault("port").delay_s = 1.5
    t0 = bench.clock.now()
    drivers["port"].readout()
    assert bench.clock.now() - t0 == pytest.approx(clean + 2 * 1.5)  # sign-on and data
