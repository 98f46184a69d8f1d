"""The IEC 62056-21 mode C driver against SimLab's optical port (pty) and a scripted meter on
a TCP socket (``socket://``)."""

from __future__ import annotations

import functools
import operator
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dut.profile import MeterProfile
from instruments.base import (
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    driver_class,
)
from instruments.keypad import CommandRefused
from instruments.meter_port import Iec62056ModeC
from instruments.roles import MeterPort
from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.meter import SimMeter, create_meter
from simlab.optical_port import OpticalPort
from simlab.plant import Plant
from sts.tokens import TransferCredit, encode

PASSWORD = "S3cret-77"
DEVICE_ADDRESS = "12345678"
SOH, STX, ETX, ACK, NAK = b"\x01", b"\x02", b"\x03", b"\x06", b"\x15"


def xor(data: bytes) -> bytes:
    """The block check character, worked out here rather than trusted to the driver."""
    return bytes([functools.reduce(operator.xor, data, 0)])


def block(payload: str, *, start: bytes = STX, corrupt_bcc: bool = False) -> bytes:
    body = payload.encode("ascii") + ETX
    check = xor(start[1:] + body) if start == SOH else xor(body)
    if corrupt_bcc:
        check = bytes([check[0] ^ 0x01])
    return start + body + check


def even_parity(data: bytes) -> bytes:
    return bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in data)


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- SimLab's meter behind its optical port ---------------------------------------------------


class Meter:
    """SimLab's meter on a powered plant (shared by the module: building it takes a while)."""

    def __init__(self) -> None:
        profile = MeterProfile.builtin()
        port = profile.port.model_copy(
            update={"password": PASSWORD, "device_address": DEVICE_ADDRESS}
        )
        self.profile = profile.model_copy(update={"port": port})
        self.clock = SimClock(10.0)
        self.plant = Plant(self.clock)
        self.plant.set_source_voltage(230.0)
        self.plant.set_source_output(True)
        self.meter: SimMeter = create_meter(self.profile, self.plant)
        self.meter.start()


class Bench:
    """The shared meter behind a fresh optical port; one driver on it at a time."""

    def __init__(self, shared: Meter, tmp: Path) -> None:
        self.profile, self.clock, self.plant = shared.profile, shared.clock, shared.plant
        self.meter = shared.meter
        self.faults = TransportFaults(seed=3)
        self.link = str(tmp / "optical")
        self.port = OpticalPort(self.meter, self.clock, link=self.link, faults=self.faults)
        self.drivers: list[Iec62056ModeC] = []

    def driver(self, **options: Any) -> Iec62056ModeC:
        for driver in self.drivers:
            driver.close()  # a port takes one driver (the driver locks it)
        options.setdefault("timeout_s", 1.0)
        options.setdefault("password", PASSWORD)
        options.setdefault("token_register", "C.60.0")
        driver = Iec62056ModeC(self.link, **options)
        self.drivers.append(driver)
        return driver

    def token(self, tid: int, amount: int = 100) -> str:
        credit = TransferCredit(subclass=0, tid=tid, amount=amount, rnd=5)
        return encode(credit, self.profile.decoder_key())

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        self.port.close()


@pytest.fixture(scope="module")
def shared_meter() -> Iterator[Meter]:
    shared = Meter()
    yield shared
    shared.meter.stop()


@pytest.fixture
def bench(shared_meter: Meter, tmp_path: Path) -> Iterator[Bench]:
    b = Bench(shared_meter, tmp_path)
    yield b
    b.close()


def test_registered_and_identifies_the_meter(bench: Bench) -> None:
    assert driver_class("iec62056-21") is Iec62056ModeC
    driver = bench.driver()
    assert isinstance(driver, MeterPort)
    identity = driver.identify()
    flag = bench.profile.port.manufacturer_flag
    assert (identity.manufacturer, identity.model) == (flag, "SL-100")
    assert (identity.serial, identity.firmware) == ("SL100-000001", "1.4.2")
    assert identity.raw == f"/{flag}5SL-100"
    assert "switched to 9600 baud" in driver.transcript.render()


def test_readout_is_parsed_with_units(bench: Bench) -> None:
    readings = bench.driver().readout()
    assert readings["1.8.0"].unit == "kWh"
    assert float(readings["1.8.0"].value) == pytest.approx(bench.plant.energy_wh() / 1000)
    assert readings["C.55.0"].unit == "W"
    assert readings["C.1.0"].value == "SL100-000001" and readings["C.1.0"].unit is None
    relay = "CLOSED" if bench.meter.snapshot().relay_closed else "OPEN"
    assert readings["C.52.0"].value == relay
    assert readings["C.54.2"].value == "01"


def test_write_token_credits_the_meter_and_never_shows_the_password(bench: Bench) -> None:
    driver = bench.driver()
    before = bench.meter.snapshot().credit.get(0, 0)
    driver.write_token(bench.token(tid=5871715, amount=100))
    assert bench.meter.snapshot().credit[0] == before + 100
    assert driver.readout()["C.53.0"].value == "01"  # Accept
    rendered = driver.transcript.render()
    assert PASSWORD not in rendered
    assert "W1<02>C.60.0(" in rendered and "<01>B0<03>" in rendered
    p1 = [e.data for e in driver.transcript.entries if e.data.startswith("\x01P1")]
    assert p1 == ["\x01P1\x02(********)\x03*"]  # its BCC would leak bits of the password


def test_wrong_password_is_refused_with_the_meters_code(bench: Bench) -> None:
    driver = bench.driver(password="wrong-one")
    entries = bench.meter.snapshot().entries
    with pytest.raises(CommandRefused) as refused:
        driver.write_token("12345678901234567890")  # never reaches the meter
    assert refused.value.code == "ERR03"
    assert bench.meter.snapshot().entries == entries
    assert "wrong-one" not in driver.transcript.render()
    assert driver.readout()  # the session was ended properly


def test_read_register_and_an_unknown_register(bench: Bench) -> None:
    driver = bench.driver()
    reading = driver.read_register("C.55.0")
    assert (reading.address, reading.unit) == ("C.55.0", "W")
    with pytest.raises(CommandRefused) as refused:
        driver.read_register("9.9.9")
    assert refused.value.code == "ERR04"


def test_bad_token_or_missing_register_changes_nothing(bench: Bench) -> None:
    entries = bench.meter.snapshot().entries
    with pytest.raises(ValueError):
        bench.driver().write_token("1234-5678")
    with pytest.raises(InstrumentError, match="token_register"):
        bench.driver(token_register=None).write_token("12345678901234567890")
    assert bench.meter.snapshot().entries == entries


def test_sign_on_carries_the_device_address(bench: Bench) -> None:
    assert bench.driver(device_address=DEVICE_ADDRESS).readout()
    with pytest.raises(InstrumentTimeout):
        bench.driver(device_address="999", timeout_s=0.3).readout()


@pytest.mark.parametrize("max_baud", [300, 2400])
def test_max_baud_caps_the_switch(bench: Bench, max_baud: int) -> None:
    driver = bench.driver(max_baud=max_baud)
    assert driver.readout()["C.1.0"].value == "SL100-000001"
    assert (f"switched to {max_baud} baud" in driver.transcript.render()) == (max_baud != 300)


class GarblingMeter:
    """The meter, with its port's replies garbled from the readout on (not the sign-on)."""

    def __init__(self, meter: SimMeter, faults: TransportFaults) -> None:
        self._meter = meter
        self._faults = faults
        self.garble = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meter, name)

    def readout(self) -> Any:
        if self.garble:
            self._faults.garble_rate = 0.05
        return self._meter.readout()


def test_garbled_readout_is_a_protocol_violation_and_a_retry_works(
    bench: Bench, tmp_path: Path
) -> None:
    faults = TransportFaults(seed=11)
    meter = GarblingMeter(bench.meter, faults)
    link = str(tmp_path / "garbling")
    with OpticalPort(meter, bench.clock, link=link, faults=faults):  # type: ignore[arg-type]
        driver = Iec62056ModeC(link, timeout_s=0.5)
        try:
            with pytest.raises(ProtocolViolation):
                driver.readout()
            meter.garble = False
            faults.clear()
            assert driver.readout()["C.1.0"].value == "SL100-000001"
            assert "readout: retry after" in driver.transcript.render()
        finally:
            driver.close()


FAULTS = [
    ("silent", True, InstrumentTimeout),
    ("garble_rate", 1.0, ProtocolViolation),
    ("drop_rate", 0.5, ProtocolViolation),
    ("delay_s", 0.5, InstrumentTimeout),
    ("vanished", True, InstrumentGone),
]


@pytest.mark.parametrize(("fault", "value", "error"), FAULTS)
def test_transport_fault_is_a_clear_error_and_the_next_call_works(
    bench: Bench, fault: str, value: Any, error: type[InstrumentError]
) -> None:
    driver = bench.driver(timeout_s=0.3)
    setattr(bench.faults, fault, value)
    if fault == "vanished":
        assert eventually(lambda: not os.path.lexists(bench.link))
    with pytest.raises(error):
        driver.readout()
    bench.faults.clear()
    if fault == "delay_s":
        time.sleep(value)  # the late identification has come and gone
    assert eventually(lambda: os.path.exists(bench.link))
    assert driver.readout()["C.1.0"].value == "SL100-000001"


def test_options_are_checked(bench: Bench) -> None:
    with pytest.raises(ValueError, match="quote"):
        Iec62056ModeC(bench.link, password=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_baud"):
        Iec62056ModeC(bench.link, max_baud=1234)
    with pytest.raises(ValueError, match="baudrate"):
        Iec62056ModeC(bench.link, baudrate=9600)
    with pytest.raises(ValueError, match="forbids"):
        Iec62056ModeC(bench.link, device_address="12!")


def test_fifty_drivers_open_and_close_without_leaks(bench: Bench) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    Iec62056ModeC(bench.link).close()
    before = fds()
    for _ in range(50):
        with Iec62056ModeC(bench.link):
            pass
    assert fds() <= before


# -- a scripted meter on a TCP socket ---------------------------------------------------------


class ScriptedMeter:
    """An IEC 62056-21 meter on 127.0.0.1 whose answers each test scripts.

    ``script[kind]`` is a list of replies for a message kind ("sign-on", "readout",
    "programming", "P1", "W1", "R1", "NAK"); each message takes the first (the last one
    stays). ``parity`` sends replies with even parity in bit 7, as a 7E1 line delivers them
    to an 8N1 port.
    """

    def __init__(self, script: dict[str, list[bytes]], *, parity: bool = False) -> None:
        self.script = {kind: list(replies) for kind, replies in script.items()}
        self.parity = parity
        self.raw = bytearray()
        self.received: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.05)
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            self.raw += data
            buffer += bytes(b & 0x7F for b in data)
            while (found := _next_message(buffer)) is not None:
                kind, buffer = found
                self.received.append(kind)
                replies = self.script.get(kind, [b""])
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply:
                    conn.sendall(even_parity(reply) if self.parity else reply)


def _next_message(buffer: bytes) -> tuple[str, bytes] | None:
    for index, byte in enumerate(buffer):
        if byte == ord("/"):
            end = buffer.find(b"\r\n", index)
            return None if end < 0 else ("sign-on", buffer[end + 2 :])
        if byte == ACK[0]:
            if len(buffer) < index + 6:
                return None
            kind = "readout" if buffer[index + 3] == ord("0") else "programming"
            return kind, buffer[index + 6 :]
        if byte == NAK[0]:
            return "NAK", buffer[index + 1 :]
        if byte == SOH[0]:
            etx = buffer.find(ETX, index)
            if etx < 0 or len(buffer) < etx + 2:
                return None
            return buffer[index + 1 : index + 3].decode(), buffer[etx + 2 :]
    return None


IDENT = b"/ABc5SCRIPTED\r\n"  # lower-case third letter: 20 ms reaction time
READOUT = "C.1.0(42)\r\n1.8.0(0001234.5*kWh)(0001200.0*kWh)\r\n0.9.1(123456)\r\n!\r\n"
P0 = block("P0\x02(1)", start=SOH)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedMeter]]:
    made: list[ScriptedMeter] = []

    def make(script: dict[str, list[bytes]], *, parity: bool = False) -> ScriptedMeter:
        meter = ScriptedMeter({"sign-on": [IDENT], **script}, parity=parity)
        made.append(meter)
        return meter

    yield make
    for meter in made:
        meter.close()


def test_readout_over_a_socket_with_parity_both_ways(
    scripted: Callable[..., ScriptedMeter],
) -> None:
    meter = scripted({"readout": [block(READOUT)]}, parity=True)
    with Iec62056ModeC(meter.url, timeout_s=1.0) as driver:
        readings = driver.readout()
        assert readings["1.8.0"].value == "0001234.5"
        assert readings["1.8.0#2"].value == "0001200.0"  # a second value of the same address
        assert readings["0.9.1"].unit is None
        assert driver.last_identification is not None
        assert driver.last_identification.ident == "SCRIPTED"
    assert all(bin(b).count("1") % 2 == 0 for b in meter.raw)  # 7E1 on the wire
    assert bytes(b & 0x7F for b in meter.raw).startswith(b"/?!\r\n\x06050\r\n")


def test_a_damaged_readout_is_a_protocol_violation_naming_the_damage(
    scripted: Callable[..., ScriptedMeter],
) -> None:
    good = even_parity(block(READOUT))
    lost_parity = good[:5] + bytes([good[5] ^ 0x80]) + good[6:]  # the BCC still matches
    bad_bcc = even_parity(block(READOUT, corrupt_bcc=True))
    meter = scripted({"readout": [bad_bcc, lost_parity, good]})
    with Iec62056ModeC(meter.url, timeout_s=1.0) as driver:
        with pytest.raises(ProtocolViolation, match="BCC"):
            driver.readout()
        with pytest.raises(ProtocolViolation, match="parity"):
            driver.readout()
        assert driver.readout()["C.1.0"].value == "42"
        assert "readout: retry after" in driver.transcript.render()


def test_a_nak_gets_one_repeat_and_a_second_nak_is_refused(
    scripted: Callable[..., ScriptedMeter],
) -> None:
    meter = scripted({"programming": [P0], "W1": [NAK, ACK, NAK, NAK]})
    with Iec62056ModeC(meter.url, token_register="C.60.0", timeout_s=1.0) as driver:
        driver.write_token("12345678901234567890")
        assert "meter answered NAK: repeating W1" in driver.transcript.render()
        assert meter.received.count("W1") == 2 and meter.received[-1] == "B0"
        with pytest.raises(CommandRefused) as refused:
            driver.write_token("12345678901234567890")
        assert refused.value.code == "NAK"
    assert meter.received.count("W1") == 4
    assert meter.received[-1] == "B0"


def test_a_damaged_reply_is_asked_for_again(scripted: Callable[..., ScriptedMeter]) -> None:
    refusal = block("(ERR05)")
    meter = scripted(
        {"programming": [P0], "W1": [block("(ERR05)", corrupt_bcc=True)], "NAK": [refusal]}
    )
    with Iec62056ModeC(meter.url, token_register="C.60.0", timeout_s=1.0) as driver:
        with pytest.raises(CommandRefused) as refused:
            driver.write_token("12345678901234567890")
        assert refused.value.code == "ERR05"
    assert meter.received.count("W1") == 1 and "NAK" in meter.received


def test_no_password_configured_sends_no_p1(scripted: Callable[..., ScriptedMeter]) -> None:
    meter = scripted({"programming": [P0], "R1": [block("C.50.0(000012.500*kWh)")]})
    with Iec62056ModeC(meter.url, timeout_s=1.0) as driver:
        reading = driver.read_register("C.50.0")
    assert (reading.value, reading.unit) == ("000012.500", "kWh")
    assert "P1" not in meter.received
