"""The KPR/1 driver against SimLab's keypad robot over a real pty."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from dut.profile import MeterProfile
from instruments.base import (
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    driver_class,
)
from instruments.keypad import CommandRefused, Kpr1Keypad
from instruments.roles import KeypadActuator
from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.keypad_robot import KeypadRobot
from simlab.meter import create_meter
from simlab.plant import Plant
from sts.tokens import TransferCredit, encode

TOKEN = "12345678901234567890"
FAST = 50.0  # simulated clock speed: an 80 ms hold takes 1.6 real ms


class FakeKeypad:
    """A meter keypad that records what the actuators do and which keys are down."""

    keys = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "ENTER", "BACK")

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self._lock = threading.Lock()

    def key_down(self, key: str) -> None:
        with self._lock:
            self.down.add(key)
            self.log.append(("down", key))

    def key_up(self, key: str) -> None:
        with self._lock:
            self.down.discard(key)
            self.log.append(("up", key))

    def typed(self) -> list[str]:
        with self._lock:
            return [key for action, key in self.log if action == "down"]


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class Bench:
    def __init__(self, tmp: Path, speed: float) -> None:
        self.keypad = FakeKeypad()
        self.faults = TransportFaults(seed=7)
        self.link = str(tmp / "kpr1")
        self.robot = KeypadRobot(self.keypad, SimClock(speed), link=self.link, faults=self.faults)
        self.drivers: list[Kpr1Keypad] = []

    def driver(self, timeout_s: float = 1.0) -> Kpr1Keypad:
        driver = Kpr1Keypad(self.link, timeout_s=timeout_s)
        self.drivers.append(driver)
        return driver

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        self.robot.close()


@pytest.fixture
def bench(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Bench]:
    speed = getattr(request, "param", FAST)
    b = Bench(tmp_path, speed)
    yield b
    b.close()


def test_registered_and_speaks_the_role(bench: Bench) -> None:
    assert driver_class("kpr1") is Kpr1Keypad
    driver = bench.driver()
    assert isinstance(driver, KeypadActuator)
    identity = driver.identify()
    assert (identity.manufacturer, identity.model) == ("SIMLAB", "KPR1")
    assert identity.serial == "KPR1-000001" and identity.firmware == "1.0.0"
    assert driver.keys() == FakeKeypad.keys


def test_typing_a_token_reports_one_event_per_press(bench: Bench) -> None:
    driver = bench.driver()
    keys = [*TOKEN, "ENTER"]
    events = driver.type(keys)
    assert [e.key for e in events] == keys
    assert bench.keypad.typed() == keys
    for event, following in itertools.pairwise(events):
        assert event.down_ms < event.up_ms <= following.down_ms
    assert not bench.robot.pressed
    rendered = driver.transcript.render()
    assert "TYPE 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 ENTER" in rendered
    directions = {(e.direction, e.data) for e in driver.transcript.entries}
    assert ("event", "EVT DOWN ENTER t=" + str(int(events[-1].down_ms))) in directions
    assert ("rx", "OK DONE 21") in directions


def test_token_typed_through_the_driver_credits_a_simulated_meter(tmp_path: Path) -> None:
    profile = MeterProfile.builtin()
    clock = SimClock(FAST)
    plant = Plant(clock)
    plant.set_source_voltage(230.0)
    plant.set_source_output(True)
    meter = create_meter(profile, plant)
    meter.start()
    token = encode(TransferCredit(subclass=0, tid=5871715, amount=25, rnd=5), profile.decoder_key())
    robot = KeypadRobot(meter, clock, link=str(tmp_path / "kpr1"))
    try:
        with Kpr1Keypad(robot.address) as driver:
            driver.type([*token, "ENTER"])
        assert eventually(lambda: meter.snapshot().credit.get(0) == 25)
    finally:
        robot.close()
        meter.stop()


def test_configure_sets_and_verifies_hold_and_gap(bench: Bench) -> None:
    driver = bench.driver()
    driver.configure(300, 200)
    events = driver.type(["1", "2"])
    assert events[0].up_ms - events[0].down_ms >= 300
    assert events[1].down_ms - events[0].up_ms >= 200
    assert "CFG?" in [e.data for e in driver.transcript.entries]
    (event,) = driver.press("5", hold_ms=1000)
    assert event.up_ms - event.down_ms >= 1000


def test_configure_out_of_range_is_refused_with_the_robots_code(bench: Bench) -> None:
    driver = bench.driver()
    with pytest.raises(CommandRefused) as refused:
        driver.configure(5, 100)
    assert refused.value.code == "13"
    assert "out of range" in refused.value.text


def test_unknown_key_is_refused_and_nothing_is_pressed(bench: Bench) -> None:
    driver = bench.driver()
    with pytest.raises(CommandRefused) as refused:
        driver.type(["1", "MENU", "2"])
    assert refused.value.code == "14"
    assert "MENU" in str(refused.value)
    assert bench.keypad.typed() == []
    assert driver.keys()  # the driver is still in step


@pytest.mark.parametrize("bench", [1.0], indirect=True)
def test_busy_robot_is_refused_with_code_15(bench: Bench) -> None:
    driver = bench.driver()
    other = serial.serial_for_url(bench.link, baudrate=115200, timeout=2.0)
    try:
        other.write(b"PRESS 1 10000\n")
        assert eventually(lambda: bench.robot.pressed == {"1"})
        with pytest.raises(CommandRefused) as refused:
            driver.identify()
        assert refused.value.code == "15"
        other.write(b"ABORT\n")
        while other.readline().strip() != b"OK":  # the other client takes its replies
            pass
    finally:
        other.close()
    assert not bench.robot.pressed
    assert driver.identify().model == "KPR1"


@pytest.mark.parametrize("bench", [1.0], indirect=True)
def test_abort_from_another_thread_stops_a_running_type(bench: Bench) -> None:
    driver = bench.driver()
    driver.configure(2000, 20)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(driver.type(["1", "2", "3"]))
        except InstrumentError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert eventually(lambda: bench.robot.pressed == {"1"})
    driver.abort()
    worker.join(5)
    assert not worker.is_alive()
    assert not bench.robot.pressed
    (error,) = outcome
    assert isinstance(error, CommandRefused) and error.code == "17"
    assert bench.keypad.typed() == ["1"]
    driver.configure(80, 120)  # in step afterwards
    assert [e.key for e in driver.press("4")] == ["4"]


def test_abort_when_idle_is_harmless(bench: Bench) -> None:
    driver = bench.driver()
    driver.abort()
    driver.abort()
    assert driver.keys()


@pytest.mark.parametrize("bench", [1.0], indirect=True)
def test_close_aborts_a_running_command_and_releases_every_key(bench: Bench) -> None:
    driver = bench.driver()
    driver.configure(5000, 20)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(driver.type(["7", "8"]))
        except InstrumentError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert eventually(lambda: bench.robot.pressed == {"7"})
    driver.close()
    worker.join(5)
    assert not worker.is_alive()
    assert not bench.robot.pressed
    assert isinstance(outcome[0], InstrumentError)
    assert "ABORT" in [e.data for e in driver.transcript.entries]
    driver.close()  # twice is fine
    with pytest.raises(InstrumentGone):
        driver.keys()


FAULTS = [
    ("silent", True, InstrumentTimeout),
    ("garble_rate", 1.0, ProtocolViolation),
    ("drop_rate", 0.5, ProtocolViolation),
    ("delay_s", 1.0, InstrumentTimeout),
    ("vanished", True, InstrumentGone),
]


@pytest.mark.parametrize(("fault", "value", "error"), FAULTS)
def test_transport_fault_is_a_clear_error_and_the_next_call_works(
    bench: Bench, fault: str, value: object, error: type[InstrumentError]
) -> None:
    driver = bench.driver(timeout_s=0.5)
    expected = driver.identify()
    setattr(bench.faults, fault, value)
    if fault == "vanished":
        assert eventually(lambda: not os.path.lexists(bench.link))
    with pytest.raises(error):
        driver.identify()
    bench.faults.clear()
    assert eventually(lambda: os.path.exists(bench.link))
    assert driver.identify() == expected
    assert driver.keys() == FakeKeypad.keys


@pytest.mark.parametrize("bench", [1.0], indirect=True)
def test_robot_falling_silent_mid_type_is_a_timeout_and_the_robot_is_stopped(
    bench: Bench,
) -> None:
    driver = bench.driver(timeout_s=0.3)
    driver.configure(100, 100)
    bench.faults.silent = True
    with pytest.raises(InstrumentTimeout):
        driver.type(list(TOKEN))
    assert eventually(lambda: not bench.robot.pressed)
    typed = len(bench.keypad.typed())
    time.sleep(0.3)  # the robot would go on pressing if it had not been stopped
    assert len(bench.keypad.typed()) == typed < len(TOKEN)
    bench.faults.clear()
    assert [e.key for e in driver.type(["1"])] == ["1"]


def test_garbled_events_stop_the_robot_and_raise(bench: Bench) -> None:
    driver = bench.driver(timeout_s=0.3)
    bench.faults.garble_rate = 1.0
    with pytest.raises(ProtocolViolation):
        driver.type(list(TOKEN))
    bench.faults.clear()
    assert eventually(lambda: not bench.robot.pressed)
    assert [e.key for e in driver.type(["2"])] == ["2"]


@pytest.mark.parametrize(
    "keys", [[], ["12"], ["EN TER"], [""], ["é"]], ids=["none", "run", "space", "empty", "utf8"]
)
def test_bad_key_names_are_refused_before_anything_is_sent(bench: Bench, keys: list[str]) -> None:
    driver = bench.driver()
    with pytest.raises(ValueError):
        driver.type(keys)
    assert not [e for e in driver.transcript.entries if e.direction == "tx"]


def test_bad_options_and_missing_port_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hold_ms"):
        Kpr1Keypad(str(tmp_path / "x"), hold_ms=3)
    with pytest.raises(InstrumentGone):
        Kpr1Keypad(str(tmp_path / "no-such-port"))


def test_fifty_drivers_open_and_close_without_leaks(bench: Bench) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with Kpr1Keypad(bench.link) as warm:
        warm.keys()
    before = fds()
    for _ in range(50):
        with Kpr1Keypad(bench.link) as driver:
            driver.keys()
    assert fds() <= before
    assert threading.active_count() < 20


def test_drivers_reach_devices_by_address_and_never_import_simlab() -> None:
    code = (
        "import sys, instruments.keypad, instruments.meter_port, instruments.card\n"
        "assert not [m for m in sys.modules if m.startswith('simlab')], 'simlab imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
