"""MSR605 card writer over a real pty with pyserial; card profile; card presenter."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from dut.card import CardLayout
from simlab.card_writer import (
    LINE_SPEED,
    CardPresenter,
    CardWriter,
    Status,
)
from simlab.faults import TransportFaults

TIMEOUT = 3.0  # what a reply may take: generous, it only runs out when a test fails
QUIET = 0.3  # how long a test listens to be sure nothing (sensible) comes
ESC, FS = b"\x1b", b"\x1c"
TOKEN = "12345678901234567890"


class FakeCardReader:
    """A meter card reader that keeps every card inserted."""

    def __init__(self) -> None:
        self.cards: list[dict[int, str]] = []

    def insert_card(self, tracks: dict[int, str]) -> None:
        self.cards.append(tracks)


def block(tracks: dict[int, str]) -> bytes:
    """An ISO write data block: ESC s, ESC 0n + data per track, ? FS."""
    body = b"".join(ESC + bytes([n]) + data.encode("latin-1") for n, data in tracks.items())
    return ESC + b"s" + body + b"?" + FS


def read_block(port: serial.Serial) -> bytes:
    """An ISO read response, up to and including its status byte."""
    data = port.read_until(b"?" + FS + ESC)
    return data + port.read(1)


@pytest.fixture
def writer() -> Iterator[CardWriter]:
    with CardWriter() as w:
        yield w


@pytest.fixture
def port(writer: CardWriter) -> Iterator[serial.Serial]:
    p = serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT)
    yield p
    p.close()


def command(port: serial.Serial, data: bytes, reply_length: int, timeout: float = TIMEOUT) -> bytes:
    port.timeout = timeout
    port.reset_input_buffer()
    port.write(data)
    return port.read(reply_length)


def test_identification_commands(port: serial.Serial) -> None:
    assert command(port, ESC + b"e", 2) == ESC + b"y"
    assert command(port, ESC + b"v", 9) == ESC + b"REVU1.00"
    assert command(port, ESC + b"t", 3) == ESC + b"3S"
    assert command(port, ESC + b"\x86", 2) == ESC + b"0"
    assert command(port, ESC + b"\x87", 2) == ESC + b"0"


def test_coercivity(port: serial.Serial, writer: CardWriter) -> None:
    assert command(port, ESC + b"d", 2) == ESC + b"h"
    assert command(port, ESC + b"y", 2) == ESC + b"0"
    assert command(port, ESC + b"d", 2) == ESC + b"l"
    assert not writer.hi_co
    assert command(port, ESC + b"x", 2) == ESC + b"0"
    assert command(port, ESC + b"d", 2) == ESC + b"h"


def test_led_commands_are_taken_without_reply(port: serial.Serial, writer: CardWriter) -> None:
    assert command(port, ESC + b"\x83" + ESC + b"\x85", 1, QUIET) == b""
    assert writer.leds == {"green", "red"}
    assert command(port, ESC + b"\x81", 1, QUIET) == b""
    assert writer.leds == frozenset()
    assert command(port, ESC + b"\x82", 1, QUIET) == b""
    assert writer.leds == {"green", "yellow", "red"}


def test_write_then_read_round_trip(port: serial.Serial, writer: CardWriter) -> None:
    tracks = {1: "ABC 123^SIMLAB", 2: TOKEN + "=0001", 3: "12345"}
    assert command(port, ESC + b"w" + block(tracks), 2) == ESC + b"0"
    port.write(ESC + b"r")
    assert read_block(port) == (
        ESC + b"s"
        b"\x1b\x01%ABC 123^SIMLAB?"
        b"\x1b\x02;" + TOKEN.encode() + b"=0001?"
        b"\x1b\x03;12345?"
        b"?" + FS + ESC + b"0"
    )
    assert writer.take_card() == tracks
    assert writer.take_card() is None


def test_unwritten_tracks_read_back_as_bare_markers(port: serial.Serial) -> None:
    assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"
    port.write(ESC + b"r")
    assert read_block(port) == (
        ESC + b"s\x1b\x01\x1b\x02;" + TOKEN.encode() + b"?\x1b\x03?" + FS + ESC + b"0"
    )


def test_reading_an_empty_slot_is_a_read_error(port: serial.Serial) -> None:
    port.write(ESC + b"r")
    assert read_block(port) == ESC + b"s\x1b\x01\x1b\x02\x1b\x03?" + FS + ESC + b"1"


@pytest.mark.parametrize(
    "tracks",
    [
        {2: "1234A"},  # letters on a numeric track
        {2: "12;34"},  # a start sentinel as data
        {1: "lower case"},  # track 1 has no lower case
        {1: "100%"},  # track 1 start sentinel as data
        {3: "12\x8034"},  # not even ASCII
        {2: "1" * 38},  # 40 with SS, ES and LRC is the limit: 37 data characters
        {1: "A" * 77},
        {3: "1" * 105},
        {1: "", 2: ""},  # nothing to write
    ],
)
def test_data_a_track_cannot_carry_is_a_format_error(
    port: serial.Serial, writer: CardWriter, tracks: dict[int, str]
) -> None:
    assert command(port, ESC + b"w" + block(tracks), 2) == ESC + b"2"
    assert writer.take_card() is None
    assert command(port, ESC + b"e", 2) == ESC + b"y"


def test_tracks_at_full_capacity_are_written(port: serial.Serial, writer: CardWriter) -> None:
    tracks = {1: "A" * 76, 2: "1" * 37, 3: "2" * 104}
    assert command(port, ESC + b"w" + block(tracks), 2) == ESC + b"0"
    assert writer.take_card() == tracks


@pytest.mark.parametrize(
    "data",
    [
        ESC + b"w" + b"\x1b\x02" + TOKEN.encode() + b"?" + FS,  # no ESC s
        ESC + b"w" + ESC + b"s\x1b\x02" + TOKEN.encode() + b"\x1b\x01ABC?" + FS,  # order
        ESC + b"w" + ESC + b"s\x1b\x04123?" + FS,  # there is no track 4
        ESC + b"w" + ESC + b"s\x1b\x021234?5" + FS,  # ? not followed by FS
        ESC + b"w" + ESC + b"s1234?" + FS,  # data before any track marker
        ESC + b"w" + ESC + b"s\x1b\x021234" + FS,  # FS without ?
        ESC + b"w" + ESC + b"s\x1b" + b"21234?" + FS,  # ASCII '2' is not a track marker
    ],
)
def test_malformed_block_is_a_format_error_and_the_writer_resynchronises(
    port: serial.Serial, writer: CardWriter, data: bytes
) -> None:
    # Exactly one status for the whole block, then the writer answers the next command.
    assert command(port, data + ESC + b"e", 4) == ESC + b"2" + ESC + b"y"
    assert writer.take_card() is None


def test_unknown_command_is_invalid(port: serial.Serial) -> None:
    assert command(port, ESC + b"Q", 2) == ESC + b"4"
    assert command(port, ESC + b"m", 2) == ESC + b"4"  # raw read: not covered
    assert command(port, ESC + b"e", 2) == ESC + b"y"


def test_reset_drops_a_half_sent_block(port: serial.Serial, writer: CardWriter) -> None:
    port.write(ESC + b"w" + ESC + b"s\x1b\x02123")
    assert command(port, ESC + b"a" + ESC + b"e", 2) == ESC + b"y"
    assert writer.take_card() is None
    assert command(port, ESC + b"w" + block({2: "42"}), 2) == ESC + b"0"


@pytest.mark.parametrize(
    ("failure", "status"),
    [(Status.READ_WRITE_ERROR, b"1"), (Status.INVALID_SWIPE, b"9")],
)
def test_failed_swipe_writes_nothing_and_the_next_one_works(
    port: serial.Serial, writer: CardWriter, failure: Status, status: bytes
) -> None:
    writer.fail_next_swipe(failure)
    assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + status
    assert writer.take_card() is None
    assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"
    assert writer.take_card() == {2: TOKEN}


def test_failed_read_swipe_is_a_read_error(port: serial.Serial, writer: CardWriter) -> None:
    assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"
    writer.fail_next_swipe(Status.INVALID_SWIPE)
    port.write(ESC + b"r")
    assert read_block(port) == ESC + b"s\x1b\x01\x1b\x02\x1b\x03?" + FS + ESC + b"1"
    port.write(ESC + b"r")  # the card is still in the slot: swipe again
    assert read_block(port).endswith(b";" + TOKEN.encode() + b"?\x1b\x03?" + FS + ESC + b"0")


def test_only_swipe_failures_can_be_injected(writer: CardWriter) -> None:
    with pytest.raises(ValueError):
        writer.fail_next_swipe(Status.COMMAND_FORMAT_ERROR)


def test_presenter_moves_each_written_card_into_the_meter(writer: CardWriter) -> None:
    reader = FakeCardReader()
    CardPresenter(writer, reader)
    with serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port:
        assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"
        deadline = time.monotonic() + 5
        while not reader.cards and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.cards == [{2: TOKEN}]
        assert writer.take_card() is None  # the card left the slot
        writer.fail_next_swipe(Status.READ_WRITE_ERROR)
        assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"1"
        assert reader.cards == [{2: TOKEN}]  # a failed write presents nothing


def test_manual_presenter(writer: CardWriter) -> None:
    reader = FakeCardReader()
    presenter = CardPresenter(writer, reader, automatic=False)
    assert presenter.present() is False
    with serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port:
        assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"
    assert reader.cards == []
    assert presenter.present() is True
    assert reader.cards == [{2: TOKEN}]
    assert presenter.present() is False


def test_token_travels_through_profile_writer_and_presenter(writer: CardWriter) -> None:
    profile = CardLayout(token_track=3, prefix="99", suffix="=1", field_separator="=")
    reader = FakeCardReader()
    CardPresenter(writer, reader)
    tracks = profile.tracks_for(TOKEN, fields=["0042"])
    assert tracks == {3: f"99{TOKEN}=0042=1"}
    with serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port:
        assert command(port, ESC + b"w" + block(tracks), 2) == ESC + b"0"
    deadline = time.monotonic() + 5
    while not reader.cards and time.monotonic() < deadline:
        time.sleep(0.01)
    assert profile.token_from(reader.cards[0]) == TOKEN


@pytest.mark.parametrize(
    ("fault", "value"),
    [("drop_rate", 1.0), ("garble_rate", 1.0), ("silent", True), ("delay_s", 0.9)],
)
def test_transport_fault_then_clear(fault: str, value: object) -> None:
    with (
        CardWriter(faults=TransportFaults(seed=11)) as writer,
        serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port,
    ):
        setattr(writer.faults, fault, value)
        reply = command(port, ESC + b"e", 2, QUIET)  # returns within its timeout, never hangs
        assert reply != ESC + b"y"
        if fault == "delay_s":
            assert reply == b""
            port.timeout = TIMEOUT
            assert port.read(2) == ESC + b"y"  # late, not lost
        writer.faults.clear()
        assert command(port, ESC + b"e", 2) == ESC + b"y"
        assert command(port, ESC + b"w" + block({2: TOKEN}), 2) == ESC + b"0"


def test_client_at_the_wrong_line_speed_reads_garbage(writer: CardWriter) -> None:
    with serial.serial_for_url(writer.path, baudrate=115200, timeout=TIMEOUT) as port:
        assert command(port, ESC + b"e", 2) == b"\x00\x00"


def test_hang_up_mid_block_leaves_the_next_client_a_clean_writer(writer: CardWriter) -> None:
    with serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port:
        port.write(ESC + b"w" + ESC + b"s\x1b\x02123")
        deadline = time.monotonic() + 5
        while not writer.endpoint.connected and time.monotonic() < deadline:
            time.sleep(0.01)
    while writer.endpoint.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    with serial.serial_for_url(writer.path, baudrate=LINE_SPEED, timeout=TIMEOUT) as port:
        assert command(port, ESC + b"e", 2) == ESC + b"y"


def test_fifty_writers_open_and_close_without_leaks(tmp_path: os.PathLike[str]) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for index in range(50):
        writer = CardWriter(link=os.path.join(tmp_path, "msr605"))
        if index % 10 == 0:
            with serial.serial_for_url(writer.address, baudrate=LINE_SPEED, timeout=TIMEOUT) as p:
                assert command(p, ESC + b"e", 2) == ESC + b"y"
        writer.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads
