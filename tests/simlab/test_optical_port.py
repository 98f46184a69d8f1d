"""IEC 62056-21 mode C optical port over a real pty with pyserial, in front of a fake meter."""

from __future__ import annotations

import functools
import operator
import os
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.meter_io import DataLine, PortError, WriteResult
from simlab.optical_port import (
    ACK,
    ETX,
    NAK,
    SOH,
    STX,
    OpticalPort,
    bcc,
    identification_baud,
)


def xor(data: bytes) -> int:
    """The block check character, worked out here rather than trusted to the module."""
    return functools.reduce(operator.xor, data, 0)


TIMEOUT = 3.0  # what a reply may take: generous, it only runs out when a test fails
QUIET = 0.3  # how long a test listens to be sure nothing (sensible) comes
PASSWORD = "00000000"
TOKEN_REGISTER = "C.51.0"
TOKEN = "12345678901234567890"


class FakeMeter:
    """A meter that keeps a few registers and takes tokens through one writable register."""

    device_address = "12345678"

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.writes: list[tuple[str, str, str | None]] = []

    def identification(self) -> str:
        return "SIM5STS-SIM-1"

    def readout(self) -> list[DataLine]:
        return [
            DataLine("C.1.0", self.device_address),
            DataLine("1.8.0", "0001234.5", "kWh"),
            DataLine("C.50.1", "0000012.30", "kWh"),
            DataLine("C.50.2", "CLOSED"),
            DataLine("C.51.1", "1 Accept" if self.tokens else "0"),
        ]

    def check_password(self, password: str) -> bool:
        return password == PASSWORD

    def write_register(self, address: str, value: str, password: str | None) -> WriteResult:
        self.writes.append((address, value, password))
        if password != PASSWORD:
            return WriteResult.error(PortError.PASSWORD)
        if address != TOKEN_REGISTER:
            return WriteResult.error(PortError.NOT_WRITABLE)
        if value == "busy":
            return WriteResult.nak()
        self.tokens.append(value)
        return WriteResult.ack()


class Head:
    """An optical head as a harness driver uses it, at 300 baud to sign on.

    By default the port is 8N1 and the head carries even parity in bit 7 itself (the same
    frames as 7E1 on a real line); ``seven_e_one`` sets the port to 7E1 instead.
    """

    def __init__(self, path: str, *, seven_e_one: bool = False) -> None:
        self.seven_e_one = seven_e_one
        framing = {"bytesize": 7, "parity": serial.PARITY_EVEN} if seven_e_one else {}
        # A short port timeout, never changed: a 7E1 port on a pty may refuse reconfiguring.
        self.port = serial.serial_for_url(path, baudrate=300, timeout=0.05, **framing)
        self.raw = bytearray()  # every byte as it arrived, parity bit included

    def send(self, data: bytes) -> None:
        if not self.seven_e_one:
            data = bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in data)
        self.port.write(data)
        self.port.flush()

    def speed(self, baud: int) -> None:
        if self.port.baudrate != baud:
            self.port.baudrate = baud

    def read(self, n: int, within: float = TIMEOUT) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + within
        while len(data) < n and time.monotonic() < deadline:
            data += self.port.read(n - len(data))
        self.raw += data
        return bytes(b & 0x7F for b in data)

    def read_until(self, terminator: bytes, within: float = TIMEOUT) -> bytes:
        data = b""
        deadline = time.monotonic() + within
        while not data.endswith(terminator) and time.monotonic() < deadline:
            data += self.read(1, within=deadline - time.monotonic())
        return data

    def sign_on(self, address: str = "", within: float = TIMEOUT) -> bytes:
        self.speed(300)
        self.port.reset_input_buffer()
        self.send(b"/?" + address.encode() + b"!\r\n")
        return self.read_until(b"\r\n", within)

    def option_select(self, baud_char: str, mode: str, *, switch: bool = True) -> None:
        self.send(b"\x06" + b"0" + baud_char.encode() + mode.encode() + b"\r\n")
        if switch:
            self.speed({"0": 300, "4": 4800, "5": 9600}[baud_char])

    def block(self) -> tuple[bytes, int]:
        """A message up to ETX, and its BCC byte (-1 when it did not arrive)."""
        body = self.read_until(bytes([ETX]))
        check = self.read(1)
        return body, check[0] if check else -1

    def frame(self, command: str, data: str | None) -> bytes:
        body = command.encode() + (bytes([STX]) + data.encode() if data is not None else b"")
        body += bytes([ETX])
        return bytes([SOH]) + body + bytes([xor(body)])

    def programming(self) -> tuple[bytes, int]:
        """Sign on for programming mode: the meter's P0 message and its BCC."""
        assert self.sign_on() == b"/SIM5STS-SIM-1\r\n"
        self.option_select("5", "1")
        return self.block()

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def meter() -> FakeMeter:
    return FakeMeter()


@pytest.fixture
def port(meter: FakeMeter) -> Iterator[OpticalPort]:
    with OpticalPort(meter, SimClock(speed=10), min_real_timeout_s=0.0) as p:
        yield p


@pytest.fixture
def head(port: OpticalPort) -> Iterator[Head]:
    h = Head(port.path)
    yield h
    h.close()


def test_sign_on_gets_the_identification(head: Head) -> None:
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


def test_sign_on_with_the_meter_address(head: Head) -> None:
    assert head.sign_on("87654321", within=QUIET) == b""  # another meter's address: silence
    assert head.sign_on("12345678") == b"/SIM5STS-SIM-1\r\n"


def test_sign_on_at_the_wrong_speed_reads_garbage(head: Head) -> None:
    head.speed(9600)
    head.send(b"/?!\r\n")
    reply = head.read_until(b"\r\n", within=QUIET)
    assert reply and set(reply) == {0}
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


def _check_readout(head: Head) -> None:
    stx = head.read(1)
    assert stx == bytes([STX])
    body, check = head.block()
    assert check == xor(body)
    assert body == (
        b"C.1.0(12345678)\r\n"
        b"1.8.0(0001234.5*kWh)\r\n"
        b"C.50.1(0000012.30*kWh)\r\n"
        b"C.50.2(CLOSED)\r\n"
        b"C.51.1(0)\r\n"
        b"!\r\n\x03"
    )


def test_readout_after_the_baud_switch_with_a_good_bcc(head: Head, port: OpticalPort) -> None:
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"
    head.option_select("5", "0")
    _check_readout(head)
    assert port.state == "sign-on"
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"  # back at 300 baud for the next session


def test_readout_at_a_lower_speed_than_offered(head: Head) -> None:
    head.sign_on()
    head.option_select("4", "0")
    _check_readout(head)


def test_meter_sends_plain_seven_bit_ascii(head: Head) -> None:
    head.sign_on()
    head.option_select("5", "0")
    _check_readout(head)
    assert head.raw and all(byte < 0x80 for byte in head.raw)


def test_client_with_its_port_set_to_7e1(port: OpticalPort) -> None:
    head = Head(port.path, seven_e_one=True)
    try:
        for _ in range(2):
            assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"
            head.option_select("5", "0")
            _check_readout(head)
    finally:
        head.close()
    again = Head(port.path, seven_e_one=True)  # a second 7E1 client can open the port
    try:
        assert again.sign_on() == b"/SIM5STS-SIM-1\r\n"
    finally:
        again.close()


def test_client_that_does_not_switch_speed_reads_garbage(head: Head) -> None:
    head.sign_on()
    head.option_select("5", "0", switch=False)
    reply = head.read(20)
    assert reply and set(reply) == {0}
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


@pytest.mark.parametrize("ack", [b"\x06150\r\n", b"\x06060\r\n", b"\x06052\r\n", b"\x06050\r\r"])
def test_unacceptable_option_select_returns_to_sign_on_silently(
    head: Head, port: OpticalPort, ack: bytes
) -> None:
    head.sign_on()
    head.send(ack)  # secondary protocol, a speed above the meter's, unknown mode, bad ending
    assert head.read(10, within=QUIET) == b""
    assert port.state == "sign-on"
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


def test_programming_session_writes_a_token(head: Head, meter: FakeMeter) -> None:
    body, check = head.programming()
    assert body == b"\x01P0\x02(12345678)\x03"
    assert check == xor(body[1:])
    head.send(head.frame("P1", f"({PASSWORD})"))
    assert head.read(1) == bytes([ACK])
    head.send(head.frame("W1", f"{TOKEN_REGISTER}({TOKEN})"))
    assert head.read(1) == bytes([ACK])
    assert meter.tokens == [TOKEN]
    assert meter.writes == [(TOKEN_REGISTER, TOKEN, PASSWORD)]
    head.send(head.frame("R1", "C.51.1()"))
    assert head.read(1) == bytes([STX])
    reply, check = head.block()
    assert reply == b"C.51.1(1 Accept)\x03"
    assert check == xor(reply)
    head.send(head.frame("B0", None))
    assert head.read(1, within=QUIET) == b""
    head.send(head.frame("W1", f"{TOKEN_REGISTER}({TOKEN})"))  # session over: ignored
    assert head.read(1, within=QUIET) == b""
    assert meter.tokens == [TOKEN]
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


def test_frame_with_a_bad_bcc_is_refused_with_nak(head: Head, meter: FakeMeter) -> None:
    head.programming()
    frame = bytearray(head.frame("W1", f"{TOKEN_REGISTER}({TOKEN})"))
    frame[-1] ^= 0x01
    head.send(head.frame("P1", f"({PASSWORD})"))
    assert head.read(1) == bytes([ACK])
    head.send(bytes(frame))
    assert head.read(1) == bytes([NAK])
    assert meter.writes == []
    head.send(head.frame("W1", f"{TOKEN_REGISTER}({TOKEN})"))  # the repeat goes through
    assert head.read(1) == bytes([ACK])
    assert meter.tokens == [TOKEN]


def test_wrong_password_is_refused_and_writes_go_without_one(head: Head, meter: FakeMeter) -> None:
    head.programming()
    head.send(head.frame("P1", "(11111111)"))
    assert head.read(1) == bytes([STX])
    body, check = head.block()
    assert (body, check) == (b"(ERR03)\x03", xor(b"(ERR03)\x03"))
    head.send(head.frame("W1", f"{TOKEN_REGISTER}({TOKEN})"))
    assert head.read(1) == bytes([STX])
    assert head.block()[0] == b"(ERR03)\x03"  # now the meter's own refusal
    assert meter.writes == [(TOKEN_REGISTER, TOKEN, None)]
    assert meter.tokens == []


@pytest.mark.parametrize(
    ("command", "data", "error"),
    [
        ("E2", "C.51.0(1)", b"(ERR01)"),
        ("W5", "C.51.0(1)", b"(ERR01)"),
        ("W1", "C.51.0", b"(ERR02)"),
        ("W1", None, b"(ERR02)"),
        ("P1", "password", b"(ERR02)"),
        ("R1", "9.9.9()", b"(ERR04)"),
        ("W1", "1.8.0(0)", b"(ERR05)"),
    ],
)
def test_programming_errors(
    head: Head, meter: FakeMeter, command: str, data: str | None, error: bytes
) -> None:
    head.programming()
    head.send(head.frame("P1", f"({PASSWORD})"))
    assert head.read(1) == bytes([ACK])
    head.send(head.frame(command, data))
    assert head.read(1) == bytes([STX])
    body, check = head.block()
    assert body == error + b"\x03"
    assert check == xor(body)
    assert meter.tokens == []


def test_meter_nak_and_client_nak(head: Head) -> None:
    head.programming()
    head.send(head.frame("P1", f"({PASSWORD})"))
    assert head.read(1) == bytes([ACK])
    head.send(head.frame("W1", f"{TOKEN_REGISTER}(busy)"))
    assert head.read(1) == bytes([NAK])
    expected = b"\x021.8.0(0001234.5*kWh)\x03" + bytes([xor(b"1.8.0(0001234.5*kWh)\x03")])
    head.send(head.frame("R1", "1.8.0()"))
    assert head.read(len(expected)) == expected
    head.send(bytes([NAK]))  # "say that again"
    assert head.read(len(expected)) == expected


def test_no_ack_within_the_character_timeout_returns_to_sign_on(
    head: Head, port: OpticalPort
) -> None:
    head.sign_on()
    assert port.state == "await-ack"
    time.sleep(0.3)  # 3 simulated seconds at speed 10: past the 1.5 s time-out
    head.option_select("5", "0", switch=False)
    assert head.read(10, within=QUIET) == b""
    assert port.state == "sign-on"
    assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"


def test_programming_session_times_out(meter: FakeMeter) -> None:
    with OpticalPort(
        meter, SimClock(speed=10), session_timeout_s=2.0, min_real_timeout_s=0.0
    ) as port:
        head = Head(port.path)
        try:
            head.programming()
            time.sleep(0.4)  # 4 simulated seconds of silence
            head.send(head.frame("P1", f"({PASSWORD})"))
            assert head.read(1, within=QUIET) == b""
            assert port.state == "sign-on"
        finally:
            head.close()


def test_time_outs_wait_at_least_the_real_floor(meter: FakeMeter) -> None:
    # At speed 1000 the 1.5 s time-out is 1.5 ms: a real-time client needs the floor.
    with OpticalPort(meter, SimClock(speed=1000), min_real_timeout_s=5.0) as port:
        head = Head(port.path)
        try:
            head.sign_on()
            time.sleep(0.05)  # 50 simulated seconds, well under the real floor
            head.option_select("5", "0")
            assert head.read(1) == bytes([STX])
        finally:
            head.close()


@pytest.mark.parametrize(
    ("fault", "value"),
    [("drop_rate", 1.0), ("garble_rate", 1.0), ("silent", True), ("delay_s", 0.9)],
)
def test_transport_fault_then_clear(meter: FakeMeter, fault: str, value: object) -> None:
    with OpticalPort(meter, SimClock(), faults=TransportFaults(seed=5)) as port:
        head = Head(port.path)
        try:
            setattr(port.faults, fault, value)
            reply = head.sign_on(within=QUIET)  # returns within its timeout, never hangs
            assert reply != b"/SIM5STS-SIM-1\r\n"
            if fault == "delay_s":
                assert reply == b""
                assert head.read_until(b"\r\n") == b"/SIM5STS-SIM-1\r\n"
            port.faults.clear()
            assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"
            head.option_select("5", "0")
            _check_readout(head)
        finally:
            head.close()


def test_vanished_port_returns_behind_its_link(
    meter: FakeMeter, tmp_path: os.PathLike[str]
) -> None:
    link = os.path.join(tmp_path, "optical")
    with OpticalPort(meter, SimClock(), link=link) as port:
        port.faults.vanished = True
        deadline = time.monotonic() + 5
        while os.path.lexists(link) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.lexists(link)
        port.faults.clear()
        while not os.path.lexists(link) and time.monotonic() < deadline:
            time.sleep(0.01)
        head = Head(link)
        try:
            assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"
        finally:
            head.close()


def test_fifty_ports_open_and_close_without_leaks(meter: FakeMeter) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for index in range(50):
        port = OpticalPort(meter, SimClock())
        if index % 10 == 0:
            head = Head(port.path)
            assert head.sign_on() == b"/SIM5STS-SIM-1\r\n"
            head.close()
        port.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads


@pytest.mark.parametrize(
    ("ident", "baud"), [("SIM5STS-SIM", 9600), ("ABC0X", 300), ("LGZ6ZMD120", 19200)]
)
def test_identification_baud(ident: str, baud: int) -> None:
    assert identification_baud(ident) == baud


@pytest.mark.parametrize("ident", ["SIM5", "SI5ABC", "SIM9ABC", "SIM5A/B", "SIM5" + "X" * 17])
def test_malformed_identification_is_refused(ident: str) -> None:
    with pytest.raises(ValueError, match="identification"):
        identification_baud(ident)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "1.8(0)", "value": "1"},
        {"address": "", "value": "1"},
        {"address": "1.8.0", "value": "1*2"},
        {"address": "1.8.0", "value": "1", "unit": "k!"},
    ],
)
def test_data_line_refuses_framing_characters(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        DataLine(**kwargs)


def test_bcc_vectors() -> None:
    assert bcc(b"P0\x02(12345678)\x03") == 0x50 ^ 0x30 ^ 0x02 ^ xor(b"(12345678)") ^ 0x03
    assert bcc(b"B0\x03") == 0x71
    assert bcc(b"") == 0
