"""Every driver's reply parser, fed damaged and made-up replies (hypothesis): KPR/1 lines,
IEC 62056-21 frames, MSR605 status bytes and data blocks, SCPI answers over TCP, camera
frames. A call returns, or raises :class:`InstrumentError` (or one of its kinds) naming the
role and the address; nothing else comes out and nothing outlives its time limit.

Serial devices answer through pyserial's ``loop://`` port with a scripted device behind it
(each write is answered by the next reply of the script), SCPI instruments through a TCP
socket, the camera through a frame file. ``pytest --hypothesis-profile fuzz`` runs the long
version."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from serial.urlhandler import protocol_loop

from instruments.base import Driver, InstrumentError
from instruments.card import Msr605, _read_framer, _reply_framer
from instruments.display import CameraSegmentReader, open_frame
from instruments.keypad import Kpr1Keypad, _line_framer
from instruments.meter_port import (
    ACK,
    ETX,
    NAK,
    SOH,
    STX,
    Iec62056ModeC,
    _block_framer,
    _ident_framer,
    bcc,
    parse_readout,
)
from instruments.scpi import Chroma61500Source, Chroma63800Load, Wt300Analyzer
from simlab import lcd
from tests.fuzzing import fuzz_settings, within

TIMEOUT_S = 0.05  # the drivers' call timeout: a reply that never completes costs this
LIMIT_S = 30.0  # no call, with its retries and resynchronisation, comes near this
FUZZ = fuzz_settings(modest=20)


def block(start: int, text: str) -> bytes:
    body = text.encode("ascii") + bytes([ETX])
    return bytes([start]) + body + bytes([bcc(body)])


KPR1_REPLIES = [b"OK SimLab,KPR1,00042,1.0\n", b"OK 0 1 2 3 4 5 6 7 8 9 ENTER BACK\n",
                b"OK HOLD=80 GAP=120\n", b"OK\n", b"OK IDLE\n", b"OK BUSY 1/3\n",
                b"EVT DOWN 1 t=0\nEVT UP 1 t=80\nOK DONE 1\n", b"ERR 15 busy\n"]  # fmt: skip
IEC_REPLIES = [b"/SIm5SL100\r\n", b"/ABC4METER\r\n",
               block(STX, "C.1.0(12345)\r\n0.2.0(1.0)\r\n!\r\n"), block(SOH, "P0\x02(00000000)"),
               bytes([ACK]), bytes([NAK]),
               block(STX, "(ERR03)"), block(STX, "C.1.0(123)")]  # fmt: skip
MSR_REPLIES = [b"\x1by", b"\x1b0", b"\x1b1", b"\x1b3S", b"\x1bREVU3.10", b"\x1bh", b"\x1bl",
               b"\x1bs\x1b\x01%ABC?\x1b\x02;123?\x1b\x03;?" + b"?\x1c\x1b0"]  # fmt: skip
SCPI_REPLIES = [b"YOKOGAWA,WT310E,C3XX,F1.01\n", b"CHROMA,61501,123,1.0\n",
                b"230.0,0.5,115.0,50.0\n", b"1.234E+00\n", b'0,"No error"\n',
                b'-113,"Undefined header"\n', b"1\n",
                b"START\n", b"9.91E+37\n"]  # fmt: skip


def replies(valid: list[bytes], min_size: int = 0) -> st.SearchStrategy[list[bytes]]:
    """A device's answers: valid ones, valid ones damaged, bytes from nowhere."""

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(valid)))
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(data)))
            kind = draw(st.sampled_from(["flip", "cut", "insert"]))
            if kind == "flip" and i < len(data):
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif kind == "cut":
                del data[i:]
            else:
                data[i:i] = draw(st.binary(max_size=8))
        return bytes(data)

    one = st.sampled_from(valid) | damaged() | st.binary(max_size=64)
    return st.lists(one, min_size=min_size, max_size=12)


class ScriptedPort(protocol_loop.Serial):
    """pyserial's ``loop://`` port, with a device behind it: each write is answered by the
    next reply of the script instead of an echo (then silence)."""

    def __init__(self, script: list[bytes], **kwargs: Any) -> None:
        self.script = list(script)
        kwargs.pop("exclusive", None)
        super().__init__("loop://", **kwargs)

    def write(self, data: bytes) -> int:
        if self.script:
            for byte in self.script.pop(0):
                self.queue.put(bytes([byte]))
        return len(data)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[bytes]], None]:
    """Make the next serial port a driver opens answer with ``script``."""

    def use(script: list[bytes]) -> None:
        monkeypatch.setattr(serial, "serial_for_url", lambda _url, **kw: ScriptedPort(script, **kw))

    return use


def each_call(driver: Driver, calls: list[Callable[[], object]]) -> None:
    """Every call returns or raises an InstrumentError naming the driver's role and address."""
    for call in calls:
        with within(LIMIT_S, f"{driver.name} call"):
            try:
                call()
            except InstrumentError as exc:
                assert str(exc).startswith(f"[{driver.role}] {driver.address}: "), str(exc)


@FUZZ
@given(replies(KPR1_REPLIES))
def test_kpr1_lines(scripted: Callable, script: list[bytes]) -> None:
    scripted(script)
    with Kpr1Keypad("fuzz://keypad", timeout_s=TIMEOUT_S) as keypad:
        each_call(keypad, [keypad.identify, keypad.keys, lambda: keypad.configure(80, 120),
                           lambda: keypad.type(["1", "2", "ENTER"]), keypad.abort])  # fmt: skip


IEC_CALLS: dict[str, Callable[[Iec62056ModeC], object]] = {
    "identify": lambda port: port.identify(),
    "readout": lambda port: port.readout(),
    "read_register": lambda port: port.read_register("C.1.0"),
    "write_token": lambda port: port.write_token("12345678901234567890"),
}


@fuzz_settings(modest=15)
@given(st.sampled_from(sorted(IEC_CALLS)), replies(IEC_REPLIES, min_size=1))
def test_iec62056_21_frames(scripted: Callable, call: str, script: list[bytes]) -> None:
    # One call per case on a new port: after a failed call the standard has the driver keep
    # quiet for 1.5 s, time a case need not spend.
    scripted(script)
    with Iec62056ModeC("fuzz://port", timeout_s=TIMEOUT_S, password="00000000",
                       token_register="C.51.0", max_baud=300) as port:  # fmt: skip
        each_call(port, [lambda: IEC_CALLS[call](port)])


@FUZZ
@given(replies(MSR_REPLIES))
def test_msr605_status_bytes_and_data_blocks(scripted: Callable, script: list[bytes]) -> None:
    scripted(script)
    with Msr605("fuzz://card", timeout_s=TIMEOUT_S, swipe_timeout_s=TIMEOUT_S) as writer:
        each_call(writer, [writer.identify, writer.reset, lambda: writer.set_coercivity("hi"),
                           lambda: writer.write_tracks({2: "1234"}),
                           writer.read_tracks])  # fmt: skip


@pytest.fixture
def scpi_server() -> Iterator[Callable[[list[bytes]], int]]:
    """A TCP instrument answering each line it receives with the next reply of a script."""
    servers: list[socket.socket] = []

    def start(script: list[bytes]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                pending = list(script)
                buffer = b""
                while True:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                    while b"\n" in buffer:
                        _, buffer = buffer.split(b"\n", 1)
                        if pending:
                            try:
                                conn.sendall(pending.pop(0))
                            except OSError:
                                return

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in servers:
        listener.close()


SCPI_CALLS: dict[type, Callable[[Any], list[Callable[[], object]]]] = {
    Wt300Analyzer: lambda d: [d.identify, d.sample, d.energy_wh, d.integration_state, d.errors],
    Chroma61500Source: lambda d: [d.identify, lambda: d.set_voltage(230.0), d.measure, d.errors],
    Chroma63800Load: lambda d: [d.identify, lambda: d.load(True), d.measure, d.errors],
}


@FUZZ
@given(st.sampled_from(sorted(SCPI_CALLS, key=lambda c: c.name)), replies(SCPI_REPLIES))
def test_scpi_answers(scpi_server: Callable, cls: type, script: list[bytes]) -> None:
    port = scpi_server(script)
    address = f"TCPIP::127.0.0.1::{port}::SOCKET"
    with within(LIMIT_S, f"{cls.name} connecting"):
        try:
            driver = cls(address, timeout_s=0.2, check_identity=False)
        except InstrumentError as exc:
            assert str(exc).startswith(f"[{cls.role}] {address}: "), str(exc)
            return
    with driver:
        each_call(driver, SCPI_CALLS[cls](driver))


LAYOUT = lcd.SegmentLayout.builtin("lcd_8digit")
FRAME = lcd.render_png(LAYOUT, lcd.DisplayState("123.45", {"kwh"}).segments(LAYOUT))
SEGMENT_MAP = Path(lcd.__file__).parents[1] / "dut" / "profiles" / "lcd_8digit.yaml"


def frames() -> st.SearchStrategy[bytes]:
    """A camera frame damaged (bytes flipped or cut), an image of another size or kind, or
    bytes from nowhere."""

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        data = bytearray(FRAME)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            if draw(st.booleans()):
                data[i] ^= 1 << draw(st.integers(0, 7))
            else:
                del data[i:]
                break
        return bytes(data)

    @st.composite
    def other_image(draw: st.DrawFn) -> bytes:
        size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
        mode = draw(st.sampled_from(["L", "RGB", "RGBA", "1", "P"]))
        out = io.BytesIO()
        Image.new(mode, size).save(out, format=draw(st.sampled_from(["PNG", "BMP", "GIF"])))
        return out.getvalue()

    return damaged() | other_image() | st.binary(max_size=256)


@FUZZ
@given(frames())
def test_camera_frames(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    # ValueError: the documented answer to a corrupt or unsupported frame.
    with within(LIMIT_S, "decoding a frame"), contextlib.suppress(ValueError):
        open_frame(data)
    path = tmp_path_factory.mktemp("frame") / "lcd.png"
    path.write_bytes(data)
    with CameraSegmentReader(str(path), segment_map=SEGMENT_MAP, timeout_s=0.5, consecutive=1,
                             max_frames=1) as reader:  # fmt: skip
        each_call(reader, [reader.read])


@FUZZ
@given(st.text(st.sampled_from(list("()*!/\r\n.:-ABC019 \x02")), max_size=120))
def test_iec62056_21_readout_bodies(text: str) -> None:
    # ValueError: the driver turns it into a ProtocolViolation naming the port.
    with within(LIMIT_S, "parsing a readout"), contextlib.suppress(ValueError):
        parse_readout(text)


FRAMERS = {
    "KPR/1 line": _line_framer,
    "IEC 62056-21 identification": _ident_framer,
    "IEC 62056-21 block": _block_framer,
    "MSR605 reply": _reply_framer(9, model=True),
    "MSR605 read data": _read_framer,
}


@FUZZ
@given(st.sampled_from(sorted(FRAMERS)), st.binary(max_size=200))
def test_framers_find_a_message_inside_what_arrived(name: str, data: bytes) -> None:
    """What a serial driver reads is cut into messages by a framer: it finds none, or one
    lying inside the bytes received."""
    with within(LIMIT_S, f"framing a {name}"):
        found = FRAMERS[name](data)
    if found is not None:
        start, end = found
        assert 0 <= start < end <= len(data)
