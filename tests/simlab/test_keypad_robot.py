"""KPR/1 keypad robot over a real pty with pyserial, pressing a fake meter's keypad."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.keypad_robot import LINE_SPEED, KeypadRobot

TIMEOUT = 3.0  # what a reply may take: generous, it only runs out when a test fails
QUIET = 0.3  # how long a test listens to be sure nothing (sensible) comes
TOKEN = "12345678901234567890"


class FakeKeypad:
    """A meter keypad that records what the actuators do and which keys are down."""

    keys = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "ENTER", "BACK", "MENU")

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self._lock = threading.Lock()

    def key_down(self, key: str) -> None:
        assert key in self.keys
        with self._lock:
            assert key not in self.down, f"{key} pressed twice"
            self.down.add(key)
            self.log.append(("down", key))

    def key_up(self, key: str) -> None:
        with self._lock:
            self.down.discard(key)
            self.log.append(("up", key))

    def typed(self) -> list[str]:
        return [key for action, key in self.log if action == "down"]


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Client:
    """A line client, as a harness driver talks KPR/1."""

    def __init__(self, path: str, baudrate: int = LINE_SPEED) -> None:
        self.port = serial.serial_for_url(path, baudrate=baudrate, timeout=TIMEOUT)

    def send(self, line: str, end: bytes = b"\n") -> None:
        self.port.write(line.encode("ascii") + end)

    def line(self, timeout: float = TIMEOUT) -> str:
        self.port.timeout = timeout
        return self.port.readline().decode("ascii", errors="replace").rstrip("\n")

    def ask(self, line: str, timeout: float = TIMEOUT) -> str:
        self.port.reset_input_buffer()
        self.send(line)
        return self.line(timeout)

    def until_final(self, timeout: float = 10.0) -> list[str]:
        """Lines up to and including the final OK/ERR of a PRESS/TYPE."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.line()
            if line:
                lines.append(line)
                if not line.startswith("EVT"):
                    return lines
        raise AssertionError(f"no final line, got {lines}")

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def keypad() -> FakeKeypad:
    return FakeKeypad()


@pytest.fixture
def fast(keypad: FakeKeypad) -> Iterator[KeypadRobot]:
    robot = KeypadRobot(keypad, SimClock(speed=1000))
    yield robot
    robot.close()


@pytest.fixture
def slow(keypad: FakeKeypad) -> Iterator[KeypadRobot]:
    robot = KeypadRobot(keypad, SimClock(speed=1.0), hold_ms=10_000, gap_ms=10_000)
    yield robot
    robot.close()


@pytest.fixture
def client(fast: KeypadRobot) -> Iterator[Client]:
    c = Client(fast.path)
    yield c
    c.close()


def events(lines: list[str]) -> list[tuple[str, str, int]]:
    parsed = []
    for line in lines[:-1]:
        match = re.fullmatch(r"EVT (DOWN|UP) (\S+) t=(\d+)", line)
        assert match, line
        parsed.append((match.group(1), match.group(2), int(match.group(3))))
    return parsed


def test_identification_layout_and_configuration(client: Client) -> None:
    assert client.ask("*IDN?") == "OK SIMLAB,KPR1,KPR1-000001,1.0.0"
    assert client.ask("KEYS?") == "OK 0 1 2 3 4 5 6 7 8 9 ENTER BACK MENU"
    assert client.ask("CFG?") == "OK HOLD=80 GAP=120"
    assert client.ask("CFG HOLD 150") == "OK"
    assert client.ask("cfg gap 60") == "OK"
    assert client.ask("CFG?") == "OK HOLD=150 GAP=60"
    assert client.ask("STATUS?") == "OK IDLE"


def test_crlf_line_endings_are_accepted(client: Client) -> None:
    client.send("*IDN?", end=b"\r\n")
    assert client.line().startswith("OK SIMLAB,KPR1,")


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("JUMP", "ERR 10 unknown command JUMP"),
        ("CFG HOLD", "ERR 11 CFG takes HOLD <ms> or GAP <ms>"),
        ("CFG SPEED 5", "ERR 11 CFG takes HOLD <ms> or GAP <ms>"),
        ("*IDN? now", "ERR 11 expected 0 arguments, got 1"),
        ("CFG HOLD fast", "ERR 12 bad number fast"),
        ("CFG HOLD -5", "ERR 12 bad number -5"),
        ("CFG HOLD 5", "ERR 13 hold 5 ms out of range 20..10000"),
        ("CFG GAP 10001", "ERR 13 gap 10001 ms out of range 20..10000"),
        ("PRESS 5 1", "ERR 13 hold 1 ms out of range 20..10000"),
        ("PRESS", "ERR 11 PRESS takes <key> [hold_ms]"),
        ("TYPE", "ERR 11 TYPE takes at least one key"),
        ("PRESS STAR", "ERR 14 unknown key STAR"),
        ("TYPE 1 2 3 HASH", "ERR 14 unknown key HASH"),
        ("TYPE 12a4", "ERR 14 unknown key 12a4"),
        ("TYPE " + "1" * 257, "ERR 13 257 presses (at most 256)"),
    ],
)
def test_bad_commands_are_refused_and_press_nothing(
    client: Client, keypad: FakeKeypad, command: str, reply: str
) -> None:
    assert client.ask(command) == reply
    assert keypad.log == []
    assert client.ask("CFG?") == "OK HOLD=80 GAP=120"


def test_line_too_long_is_refused_whole(client: Client, keypad: FakeKeypad) -> None:
    assert client.ask("TYPE " + "1 " * 600) == "ERR 16 line too long"
    assert keypad.log == []
    assert client.ask("*IDN?").startswith("OK SIMLAB")


def test_typing_a_token_reports_each_press_with_hold_and_gap_on_the_sim_clock(
    client: Client, keypad: FakeKeypad, fast: KeypadRobot
) -> None:
    assert client.ask("CFG HOLD 100") == "OK"
    assert client.ask("CFG GAP 250") == "OK"
    client.send(f"TYPE {TOKEN} ENTER")
    lines = client.until_final()
    assert lines[-1] == "OK DONE 21"
    evts = events(lines)
    expected = [*TOKEN, "ENTER"]
    assert [(kind, key) for kind, key, _ in evts] == [
        (kind, key) for key in expected for kind in ("DOWN", "UP")
    ]
    times = [t for _, _, t in evts]
    assert times == sorted(times)
    for index in range(0, len(evts), 2):
        assert evts[index + 1][2] - evts[index][2] >= 100  # hold
        if index:
            assert evts[index][2] - evts[index - 1][2] >= 250  # gap after the previous UP
    assert keypad.typed() == expected
    assert keypad.down == set()
    assert fast.pressed == frozenset()
    assert client.ask("STATUS?") == "OK IDLE"


def test_press_with_its_own_hold_time(client: Client, keypad: FakeKeypad) -> None:
    client.send("PRESS menu 2000")
    lines = client.until_final()
    assert lines[-1] == "OK DONE 1"
    (down, up) = events(lines)
    assert down[:2] == ("DOWN", "MENU") and up[:2] == ("UP", "MENU")
    assert up[2] - down[2] >= 2000
    assert keypad.log == [("down", "MENU"), ("up", "MENU")]


def test_busy_robot_serves_only_status_and_abort_releases_every_actuator(
    slow: KeypadRobot, keypad: FakeKeypad
) -> None:
    client = Client(slow.path)
    try:
        client.send("TYPE 4 2")
        assert re.fullmatch(r"EVT DOWN 4 t=\d+", client.line())
        assert keypad.down == {"4"}
        assert client.ask("STATUS?") == "OK BUSY 0/2"
        assert client.ask("*IDN?") == "ERR 15 busy"
        assert client.ask("PRESS 1") == "ERR 15 busy"
        assert client.ask("CFG HOLD 100") == "ERR 15 busy"
        client.send("ABORT")
        lines = [client.line() for _ in range(3)]
        assert re.fullmatch(r"EVT UP 4 t=\d+", lines[0])
        assert lines[1:] == ["ERR 17 aborted 0/2", "OK"]
        assert keypad.down == set()
        assert slow.pressed == frozenset()
        assert keypad.typed() == ["4"]
        assert client.ask("STATUS?") == "OK IDLE"
        assert client.ask("ABORT") == "OK"  # nothing running: still fine
        assert client.ask("CFG HOLD 20") == "OK"
    finally:
        client.close()


@pytest.mark.parametrize("how", ["client closes", "port vanishes", "robot closes"])
def test_losing_the_client_releases_every_actuator(keypad: FakeKeypad, how: str) -> None:
    robot = KeypadRobot(keypad, SimClock(speed=1.0), hold_ms=10_000)
    client = Client(robot.path)
    try:
        client.send("PRESS 7")
        assert re.fullmatch(r"EVT DOWN 7 t=\d+", client.line())
        assert keypad.down == {"7"}
        if how == "client closes":
            client.close()
        elif how == "port vanishes":
            robot.faults.vanished = True
        else:
            robot.close()
        assert eventually(lambda: keypad.down == set())
        assert robot.pressed == frozenset()
        assert keypad.log == [("down", "7"), ("up", "7")]
    finally:
        client.close()
        robot.close()


def test_half_a_line_from_a_client_that_hung_up_is_forgotten(fast: KeypadRobot) -> None:
    first = Client(fast.path)
    first.port.write(b"*IDN")  # half a command, then gone
    assert eventually(lambda: fast.endpoint.connected)
    first.close()
    assert eventually(lambda: not fast.endpoint.connected)
    second = Client(fast.path)
    try:
        assert second.ask("STATUS?") == "OK IDLE"
    finally:
        second.close()


def test_client_at_the_wrong_line_speed_reads_garbage(fast: KeypadRobot) -> None:
    client = Client(fast.path, baudrate=9600)
    try:
        reply = client.ask("STATUS?", timeout=QUIET)
        assert reply != "OK IDLE"
        assert set(reply) <= {"\x00"}
    finally:
        client.close()


@pytest.mark.parametrize(
    ("fault", "value"),
    [("drop_rate", 1.0), ("garble_rate", 1.0), ("silent", True), ("delay_s", 0.9)],
)
def test_transport_fault_then_clear(keypad: FakeKeypad, fault: str, value: object) -> None:
    robot = KeypadRobot(keypad, SimClock(speed=1000), faults=TransportFaults(seed=3))
    client = Client(robot.path)
    try:
        setattr(robot.faults, fault, value)
        reply = client.ask("*IDN?", timeout=QUIET)  # returns within its timeout, never hangs
        assert not reply.startswith("OK SIMLAB")
        if fault == "delay_s":
            assert reply == ""
            assert client.line().startswith("OK SIMLAB")  # late, not lost
        robot.faults.clear()
        assert client.ask("*IDN?") == "OK SIMLAB,KPR1,KPR1-000001,1.0.0"
    finally:
        client.close()
        robot.close()


def test_stable_link_names_the_robot(keypad: FakeKeypad, tmp_path: os.PathLike[str]) -> None:
    link = os.path.join(tmp_path, "kpr")
    with KeypadRobot(keypad, SimClock(), link=link) as robot:
        assert robot.address == link
        client = Client(link)
        try:
            assert client.ask("STATUS?") == "OK IDLE"
        finally:
            client.close()
    assert not os.path.lexists(link)


def test_fifty_robots_open_and_close_without_leaks(keypad: FakeKeypad) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for index in range(50):
        robot = KeypadRobot(keypad, SimClock(speed=1000))
        if index % 10 == 0:
            client = Client(robot.path)
            client.send("TYPE 123")
            assert client.until_final()[-1] == "OK DONE 3"
            client.close()
        robot.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads


def test_robot_refuses_a_bad_default_configuration(keypad: FakeKeypad) -> None:
    with pytest.raises(ValueError, match="HOLD 5 ms"):
        KeypadRobot(keypad, SimClock(), hold_ms=5)
