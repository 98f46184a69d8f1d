"""The MSR605 driver against SimLab's card writer over a real pty (and a scripted writer on a
TCP socket), the card layout, and the card presenters."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from instruments.base import (
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    driver_class,
)
from instruments.card import (
    AutomaticCardPresenter,
    CardLayout,
    Msr605,
    OperatorCardPresenter,
    iso_track_problem,
)
from instruments.keypad import CommandRefused
from instruments.roles import CardPresenter, CardWriter
from simlab.card_writer import CardPresenter as SimPresenter
from simlab.card_writer import CardWriter as SimWriter
from simlab.card_writer import Status
from simlab.faults import TransportFaults

TOKEN = "12345678901234567890"


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.faults = TransportFaults(seed=5)
        self.link = str(tmp / "msr605")
        self.writer = SimWriter(link=self.link, faults=self.faults)
        self.drivers: list[Msr605] = []

    def driver(self, **options: Any) -> Msr605:
        options.setdefault("timeout_s", 0.5)
        options.setdefault("swipe_timeout_s", 0.5)
        driver = Msr605(self.link, **options)
        self.drivers.append(driver)
        return driver

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        self.writer.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.close()


def test_registered_and_identifies_the_writer(bench: Bench) -> None:
    assert driver_class("msr605") is Msr605
    driver = bench.driver()
    assert isinstance(driver, CardWriter)
    identity = driver.identify()
    assert (identity.model, identity.firmware) == ("model 3", "REVU1.00")
    driver.reset()
    assert "<1B>a" in driver.transcript.render()


def test_coercivity_is_set_and_verified(bench: Bench) -> None:
    driver = bench.driver()
    driver.set_coercivity("lo")
    assert not bench.writer.hi_co and driver.coercivity() == "lo"
    driver.set_coercivity("hi")
    assert bench.writer.hi_co and driver.coercivity() == "hi"
    with pytest.raises(ValueError):
        driver.set_coercivity("medium")  # type: ignore[arg-type]


def test_coercivity_option_is_applied_before_the_first_write(bench: Bench) -> None:
    driver = bench.driver(coercivity="lo")
    assert bench.writer.hi_co
    driver.write_tracks({2: "1234"})
    assert not bench.writer.hi_co


def test_write_then_read_round_trip_through_the_layout(bench: Bench) -> None:
    driver = bench.driver()
    layout = CardLayout(token_track=2, prefix="9", suffix="0", field_separator="=")
    tracks = layout.tracks_for(TOKEN, ["42"]) | {1: "STS TOKEN CARD", 3: "0123456789"}
    driver.write_tracks(tracks)
    read = driver.read_tracks()
    assert read == tracks
    assert layout.token_from(read) == TOKEN
    rendered = driver.transcript.render()
    assert "<1B>w<1B>s<1B><01>STS TOKEN CARD<1B><02>9" in rendered  # binary track markers
    assert "<1B><02>;9" + TOKEN + "=420?" in rendered  # sentinels come back on read


def test_written_card_reaches_the_meter_through_the_presenters(bench: Bench) -> None:
    inserted: list[dict[int, str]] = []

    class Reader:
        def insert_card(self, tracks: dict[int, str]) -> None:
            inserted.append(tracks)

    SimPresenter(bench.writer, Reader(), automatic=True)
    presenter = AutomaticCardPresenter("simlab:auto", settle_s=0.01)
    assert isinstance(presenter, CardPresenter)
    assert driver_class("automatic") is AutomaticCardPresenter
    layout = CardLayout()
    bench.driver().write_tracks(layout.tracks_for(TOKEN))
    presenter.present()
    assert [layout.token_from(card) for card in inserted] == [TOKEN]
    presenter.close()


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        (Status.READ_WRITE_ERROR, "1", "read/write error"),
        (Status.INVALID_SWIPE, "9", "invalid card swipe"),
    ],
)
def test_failed_swipe_is_refused_and_the_next_write_works(
    bench: Bench, status: Status, code: str, text: str
) -> None:
    driver = bench.driver()
    bench.writer.fail_next_swipe(status)
    with pytest.raises(CommandRefused) as refused:
        driver.write_tracks({2: TOKEN})
    assert (refused.value.code, refused.value.text) == (code, text)
    assert text in str(refused.value)
    driver.write_tracks({2: TOKEN})
    assert driver.read_tracks() == {2: TOKEN}


def test_data_a_track_cannot_carry_is_a_command_format_error(bench: Bench) -> None:
    with pytest.raises(CommandRefused) as refused:
        bench.driver().write_tracks({2: "NOT DIGITS"})
    assert (refused.value.code, refused.value.text) == ("2", "command format error")


def test_reading_an_empty_slot_or_a_failed_read_is_a_read_error(bench: Bench) -> None:
    driver = bench.driver()
    with pytest.raises(CommandRefused) as refused:
        driver.read_tracks()
    assert refused.value.code == "1"
    driver.write_tracks({2: "1234"})
    bench.writer.fail_next_swipe(Status.READ_WRITE_ERROR)
    with pytest.raises(CommandRefused):
        driver.read_tracks()


@pytest.mark.parametrize(
    "tracks",
    [{}, {4: "1"}, {0: "1"}, {2: "12\x1b"}, {2: "12\x1c"}, {1: "é"}, {True: "1"}],
    ids=["none", "track4", "track0", "esc", "fs", "utf8", "bool"],
)
def test_what_the_framing_cannot_carry_is_refused_before_anything_is_sent(
    bench: Bench, tracks: dict[int, str]
) -> None:
    driver = bench.driver()
    with pytest.raises(ValueError):
        driver.write_tracks(tracks)
    assert not [e for e in driver.transcript.entries if e.direction == "tx"]


FAULTS = [
    ("silent", True, InstrumentTimeout),
    ("garble_rate", 1.0, ProtocolViolation),
    ("drop_rate", 0.5, (ProtocolViolation, InstrumentTimeout)),
    ("delay_s", 0.8, InstrumentTimeout),
    ("vanished", True, InstrumentGone),
]


@pytest.mark.parametrize(("fault", "value", "error"), FAULTS)
def test_transport_fault_is_a_clear_error_and_the_next_call_works(
    bench: Bench, fault: str, value: Any, error: Any
) -> None:
    driver = bench.driver()
    driver.write_tracks({2: "1111"})
    setattr(bench.faults, fault, value)
    if fault == "vanished":
        assert eventually(lambda: not os.path.lexists(bench.link))
    with pytest.raises(error):
        driver.read_tracks()
    bench.faults.clear()
    if fault == "delay_s":
        time.sleep(value)  # the late reply has come and gone
    assert eventually(lambda: os.path.exists(bench.link))
    driver.write_tracks({2: "2222"})
    assert driver.read_tracks() == {2: "2222"}


def test_a_swipe_that_never_comes_times_out_and_resets_the_writer(bench: Bench) -> None:
    driver = bench.driver()
    bench.faults.silent = True
    with pytest.raises(InstrumentTimeout, match="swiped"):
        driver.write_tracks({2: "1234"})
    tx = [e.data for e in driver.transcript.entries if e.direction == "tx"]
    assert tx[-1] == "\x1ba"


def test_options_are_checked(bench: Bench) -> None:
    with pytest.raises(ValueError, match="coercivity"):
        Msr605(bench.link, coercivity="mid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="swipe_timeout_s"):
        Msr605(bench.link, swipe_timeout_s=0)
    with pytest.raises(ValueError, match="password"):
        Msr605(bench.link, password="x")


def test_fifty_drivers_open_and_close_without_leaks(bench: Bench) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    Msr605(bench.link).close()
    before = fds()
    for _ in range(50):
        with Msr605(bench.link) as driver:
            driver.identify()
    assert fds() <= before


# -- a scripted writer on a TCP socket -------------------------------------------------------


class ScriptedWriter:
    """An MSR605 on 127.0.0.1 that answers every write block with ``ESC <status>``."""

    def __init__(self, status: bytes) -> None:
        self.status = status
        self.received = bytearray()
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
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    self.received += data
                    if self.received.endswith(b"?\x1c"):
                        conn.sendall(b"\x1b" + self.status)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (b"1", "read/write error"),
        (b"2", "command format error"),
        (b"4", "invalid command"),
        (b"9", "invalid card swipe"),
    ],
)
def test_every_status_byte_over_a_socket_is_a_clear_error(status: bytes, text: str) -> None:
    writer = ScriptedWriter(status)
    try:
        with Msr605(writer.url, timeout_s=0.5, swipe_timeout_s=1.0) as driver:
            with pytest.raises(CommandRefused) as refused:
                driver.write_tracks({2: TOKEN})
            assert (refused.value.code, refused.value.text) == (status.decode(), text)
        assert bytes(writer.received) == b"\x1bw\x1bs\x1b\x02" + TOKEN.encode() + b"?\x1c"
    finally:
        writer.close()


def test_an_unknown_status_byte_is_a_protocol_violation() -> None:
    writer = ScriptedWriter(b"7")
    try:
        with (
            Msr605(writer.url, timeout_s=0.5, swipe_timeout_s=1.0) as driver,
            pytest.raises(ProtocolViolation, match="status"),
        ):
            driver.write_tracks({2: TOKEN})
    finally:
        writer.close()


# -- card layout ----------------------------------------------------------------------------


def test_default_layout_puts_the_token_alone_on_track_2() -> None:
    layout = CardLayout()
    assert layout.tracks_for(TOKEN) == {2: TOKEN}
    assert layout.token_from({2: TOKEN}) == TOKEN


def test_layout_with_prefix_suffix_and_fields_round_trips() -> None:
    layout = CardLayout(token_track=1, prefix="STS", suffix="END", field_separator="^")
    tracks = layout.tracks_for(TOKEN, ["SMITH", "2024"])
    assert tracks == {1: f"STS{TOKEN}^SMITH^2024END"}
    assert layout.token_from(tracks) == TOKEN


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_track": 4},
        {"field_separator": "=="},
        {"field_separator": "5"},
        {"prefix": "A"},  # track 2 is numeric
        {"prefix": "1" * 20},  # with the token: over track 2's 37 characters
    ],
)
def test_layout_that_cannot_fit_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CardLayout(**kwargs)


@pytest.mark.parametrize("token", ["1234", "1234567890123456789X", "１" * 20])
def test_layout_refuses_what_is_not_a_token(token: str) -> None:
    with pytest.raises(ValueError):
        CardLayout().tracks_for(token)


@pytest.mark.parametrize("tracks", [{}, {2: "1234"}, {1: TOKEN}, {2: "9" + TOKEN}])
def test_card_that_does_not_fit_the_layout_is_refused(tracks: dict[int, str]) -> None:
    with pytest.raises(ValueError):
        CardLayout().token_from(tracks)


def test_iso_track_problem_names_the_problem() -> None:
    assert iso_track_problem(2, "0123456789:<=>") is None
    assert "cannot carry" in (iso_track_problem(2, "A") or "")
    assert "at most 37" in (iso_track_problem(2, "1" * 38) or "")
    assert iso_track_problem(1, "A" * 76) is None
    assert "no track" in (iso_track_problem(5, "") or "")


# -- presenters -----------------------------------------------------------------------------


def test_operator_presenter_asks_and_waits_for_confirmation() -> None:
    assert driver_class("operator") is OperatorCardPresenter
    asked: list[str] = []
    presenter = OperatorCardPresenter(prompt=asked.append)
    assert isinstance(presenter, CardPresenter)
    presenter.present()
    assert asked == [presenter.message]
    assert "the operator confirmed" in presenter.transcript.render()


def test_operator_who_does_not_confirm_is_a_timeout() -> None:
    answered = threading.Event()
    presenter = OperatorCardPresenter(prompt=lambda message: answered.wait())
    try:
        with pytest.raises(InstrumentTimeout):
            presenter.present(timeout_s=0.1)
        with pytest.raises(InstrumentError, match="not answered"):
            presenter.present(timeout_s=0.1)
        answered.set()  # the operator answers the old prompt at last

        def confirmed() -> bool:
            try:
                presenter.present(timeout_s=1.0)
            except InstrumentError:
                return False
            return True

        assert eventually(confirmed)
    finally:
        answered.set()
        presenter.close()


def test_operator_who_refuses_is_an_error() -> None:
    def refuse(message: str) -> None:
        raise RuntimeError("card jammed")

    with pytest.raises(InstrumentError, match="card jammed"):
        OperatorCardPresenter(prompt=refuse).present()


def test_console_prompt_reads_enter_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stdin, os.fdopen(write_fd, "w") as typist:
        monkeypatch.setattr(sys, "stdin", stdin)
        presenter = OperatorCardPresenter()
        with pytest.raises(InstrumentTimeout):
            presenter.present(timeout_s=0.05)
        typist.write("\n")
        typist.flush()
        presenter.present(timeout_s=1.0)
        typist.close()
        with pytest.raises(InstrumentError, match="closed"):
            presenter.present(timeout_s=1.0)


def test_automatic_presenter_waits_the_settle_time_and_close_cuts_it_short() -> None:
    presenter = AutomaticCardPresenter(settle_s=30.0)
    worker = threading.Thread(target=presenter.present, daemon=True)
    worker.start()
    presenter.close()
    worker.join(5)
    assert not worker.is_alive()
    with pytest.raises(ValueError):
        AutomaticCardPresenter(settle_s=-1)
    assert AutomaticCardPresenter().identify().model == "automatic card presenter"
