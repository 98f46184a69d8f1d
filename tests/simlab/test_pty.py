"""PtyEndpoint through real ptys and pyserial: exchange, hang-up, line speed, faults, vanish."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from simlab.faults import TransportFaults
from simlab.pty import PtyEndpoint

TIMEOUT = 3.0  # what a reply may take: generous, it only runs out when a test fails
QUIET = 0.3  # how long a test listens to be sure nothing comes


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll ``condition`` until true or ``within`` real seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Echo:
    """A device that answers every chunk with it upper-cased."""

    def __init__(self, **kwargs: object) -> None:
        self.hangups = 0
        self.received = bytearray()
        self.endpoint = PtyEndpoint(self._on_bytes, on_hangup=self._on_hangup, **kwargs)

    def _on_bytes(self, data: bytes) -> None:
        self.received += data
        self.endpoint.write(data.upper())

    def _on_hangup(self) -> None:
        self.hangups += 1


@pytest.fixture
def echo() -> Iterator[Echo]:
    device = Echo()
    yield device
    device.endpoint.close()


def open_client(path: str, baudrate: int = 9600) -> serial.Serial:
    return serial.serial_for_url(path, baudrate=baudrate, timeout=TIMEOUT)


def exchange(client: serial.Serial, data: bytes, timeout: float = TIMEOUT) -> bytes:
    client.timeout = timeout
    client.reset_input_buffer()
    client.write(data)
    return client.read(len(data))


def listen(client: serial.Serial) -> bytes:
    """What arrives within QUIET seconds."""
    client.timeout = QUIET
    return client.read(100)


def test_client_exchanges_bytes_with_the_device(echo: Echo) -> None:
    with open_client(echo.endpoint.path) as client:
        assert exchange(client, b"hello\n") == b"HELLO\n"
        assert echo.endpoint.connected


def test_device_writes_without_a_client_are_dropped_and_the_port_still_works(echo: Echo) -> None:
    # No client: the master reports hang-up and EIO; nothing may pile up for the next client.
    assert echo.endpoint.write(b"stale\n") == 0
    assert not echo.endpoint.connected
    with open_client(echo.endpoint.path) as client:
        assert listen(client) == b""
        assert exchange(client, b"ping") == b"PING"


def test_client_closing_the_port_is_a_hang_up(echo: Echo) -> None:
    with open_client(echo.endpoint.path) as client:
        assert exchange(client, b"x") == b"X"
    assert eventually(lambda: echo.hangups == 1)
    assert not echo.endpoint.connected
    with open_client(echo.endpoint.path) as client:
        assert exchange(client, b"again") == b"AGAIN"
    assert eventually(lambda: echo.hangups == 2)


def test_reply_at_another_line_speed_arrives_as_garbage() -> None:
    device = Echo(baudrate=9600)
    try:
        with open_client(device.endpoint.path, baudrate=300) as client:
            assert device.endpoint.client_baudrate() == 300
            reply = exchange(client, b"abc")
            assert reply == b"\x00\x00\x00"
            assert device.received == b"abc"  # what the client sends is taken at any speed
            client.baudrate = 9600
            assert device.endpoint.client_baudrate() == 9600
            assert exchange(client, b"abc") == b"ABC"
    finally:
        device.endpoint.close()


@pytest.mark.parametrize(
    ("fault", "value"),
    [("drop_rate", 1.0), ("garble_rate", 1.0), ("silent", True)],
)
def test_fault_spoils_the_reply_and_clearing_it_restores_the_exchange(
    fault: str, value: object
) -> None:
    echo = Echo(faults=TransportFaults(seed=7))
    setattr(echo.endpoint.faults, fault, value)
    with echo.endpoint, open_client(echo.endpoint.path) as client:
        reply = exchange(client, b"hello", timeout=QUIET)  # never hangs
        assert reply != b"HELLO"
        if fault == "garble_rate":
            assert len(reply) == 5
            assert all(bin(a ^ b).count("1") == 1 for a, b in zip(reply, b"HELLO", strict=True))
        else:
            assert reply == b""
        echo.endpoint.faults.clear()
        assert exchange(client, b"hello") == b"HELLO"


def test_delay_fault_makes_the_reply_late_not_lost(echo: Echo) -> None:
    echo.endpoint.faults.delay_s = 3 * QUIET
    with open_client(echo.endpoint.path) as client:
        client.write(b"slow")
        assert listen(client) == b""  # within the client's timeout: nothing
        client.timeout = TIMEOUT
        assert client.read(4) == b"SLOW"
        echo.endpoint.faults.clear()
        assert exchange(client, b"fast") == b"FAST"


def test_vanish_removes_the_port_and_return_gives_a_new_path_behind_the_same_link(
    tmp_path: os.PathLike[str],
) -> None:
    link = os.path.join(tmp_path, "ttyUSB-meter")
    device = Echo(link=link)
    try:
        first = device.endpoint.path
        assert os.path.realpath(link) == first
        client = open_client(link)
        assert exchange(client, b"a") == b"A"

        device.endpoint.faults.vanished = True
        assert eventually(lambda: not os.path.exists(first))
        assert not os.path.lexists(link)
        with pytest.raises(serial.SerialException):
            client.write(b"b")
            client.read(1)
        client.close()
        assert eventually(lambda: device.hangups == 1)
        with pytest.raises(serial.SerialException):
            open_client(link)

        device.endpoint.faults.clear()
        assert eventually(lambda: os.path.lexists(link))
        assert device.endpoint.path != first
        assert os.path.realpath(link) == device.endpoint.path
        with open_client(link) as client:
            assert exchange(client, b"back") == b"BACK"
    finally:
        device.endpoint.close()
    assert not os.path.lexists(link)


def test_link_refuses_to_replace_a_regular_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "not-a-link")
    with open(path, "w") as handle:
        handle.write("keep me")
    with pytest.raises(FileExistsError):
        PtyEndpoint(lambda data: None, link=path)
    with open(path) as handle:
        assert handle.read() == "keep me"


def test_close_removes_the_port_and_is_idempotent(echo: Echo) -> None:
    path = echo.endpoint.path
    with open_client(path) as client:
        echo.endpoint.close()
        assert not os.path.exists(path)
        with pytest.raises(serial.SerialException):
            client.read(1)
    echo.endpoint.close()
    assert echo.endpoint.write(b"after close") == 0
    assert echo.endpoint.client_baudrate() is None


def test_opening_and_closing_fifty_endpoints_leaks_no_fds_or_threads(
    tmp_path: os.PathLike[str],
) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for index in range(50):
        device = Echo(link=os.path.join(tmp_path, f"dev{index}"))
        if index % 10 == 0:
            with open_client(device.endpoint.path) as client:
                assert exchange(client, b"q") == b"Q"
        device.endpoint.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads
    assert os.listdir(tmp_path) == []
