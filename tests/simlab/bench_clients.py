"""Minimal clients for SimLab's devices, speaking each one's own protocol on its transport.

They are written from the protocol descriptions (KPR/1, IEC 62056-21 mode C, MSR605, HTTP
snapshots, the segment map YAML), not from SimLab's code, so a test that passes through them
shows a bench driver written the same way would work. Every read has a deadline.
"""

from __future__ import annotations

import functools
import http.client
import io
import itertools
import operator
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyvisa
import serial
import yaml
from PIL import Image, ImageDraw
from pyvisa.resources import MessageBasedResource

TIMEOUT_S = 5.0  # the longest any single reply may take; only a failing test waits this long

# ---- KPR/1 keypad robot ----------------------------------------------------------------------


class KeypadRobotClient:
    """KPR/1 over a serial port at 115200 8N1, lines ending ``\\n``."""

    def __init__(self, address: str) -> None:
        self.port = serial.serial_for_url(address, baudrate=115200, timeout=0.1)
        self.events: list[str] = []

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> KeypadRobotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, deadline: float) -> str:
        data = b""
        while not data.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"keypad robot: no complete line (got {data!r})")
            data += self.port.readline()
        return data.decode("ascii").rstrip("\r\n")

    def reply(self, within: float = TIMEOUT_S) -> str:
        """The next line that is not an ``EVT`` event (events are kept in :attr:`events`)."""
        deadline = time.monotonic() + within
        while True:
            line = self._line(deadline)
            if not line.startswith("EVT "):
                return line
            self.events.append(line)

    def command(self, line: str, within: float = TIMEOUT_S) -> str:
        self.port.write(line.encode("ascii") + b"\n")
        self.port.flush()
        return self.reply(within)

    def type(self, *words: str, within: float = 30.0) -> str:
        """``TYPE words...``; the final line (``OK DONE <n>`` when every press was made)."""
        return self.command("TYPE " + " ".join(words), within)


# ---- IEC 62056-21 mode C optical port -------------------------------------------------------

STX, ETX, SOH, ACK = 0x02, 0x03, 0x01, 0x06
MODE_C_BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
DATA_SET = re.compile(r"([^()\r\n]+)\(([^()*]*)(?:\*([^()]*))?\)")


def bcc(data: bytes) -> int:
    """IEC 62056-21 block check: XOR of the bytes after STX/SOH up to and including ETX."""
    return functools.reduce(operator.xor, data, 0)


def with_even_parity(data: bytes) -> bytes:
    """7E1 characters carried in 8N1 bytes: even parity in bit 7."""
    return bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in data)


class OpticalHead:
    """A mode C optical head: sign-on at 300 baud, ACK and baud switch, readout with BCC.

    The serial port stays 8N1 and the head puts even parity into bit 7 itself (the same
    10-bit frames as 7E1 on a real line); received bytes have bit 7 stripped.
    """

    def __init__(self, address: str) -> None:
        self.port = serial.serial_for_url(address, baudrate=300, timeout=0.05)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> OpticalHead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, data: bytes) -> None:
        self.port.write(with_even_parity(data))
        self.port.flush()

    def _read_until(self, end: bytes, deadline: float, extra: int = 0) -> bytes:
        """Bytes up to and including ``end`` plus ``extra`` more (bit 7 stripped)."""
        data = bytearray()
        while True:
            at = data.find(end)
            if at >= 0 and len(data) >= at + len(end) + extra:
                return bytes(data)
            if time.monotonic() > deadline:
                raise TimeoutError(f"optical port: no {end!r} (got {bytes(data)!r})")
            data += bytes(b & 0x7F for b in self.port.read(64))

    def sign_on(self, address: str = "", attempts: int = 3) -> str:
        """``/?address!``: the meter's identification line, without ``/`` and CR LF.

        A meter may miss a sign-on (it is still closing a session): like any mode C driver,
        the head repeats it after a second without an answer.
        """
        if self.port.baudrate != 300:
            self.port.baudrate = 300
        for attempt in range(attempts):
            self.port.reset_input_buffer()
            self._send(b"/?" + address.encode("ascii") + b"!\r\n")
            try:
                line = self._read_until(b"\r\n", time.monotonic() + 1.0)
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
                continue
            if not line.startswith(b"/"):
                raise ValueError(f"optical port: identification {line!r} does not start with /")
            return line[1:].rstrip(b"\r\n").decode("ascii")
        raise AssertionError("unreachable")

    def readout(self) -> dict[str, tuple[str, str | None]]:
        """A full mode C data readout at the meter's highest speed: address -> (value, unit)."""
        ident = self.sign_on()
        baud_char = ident[3]
        self._send(bytes([ACK]) + b"0" + baud_char.encode("ascii") + b"0\r\n")
        self.port.baudrate = MODE_C_BAUD[baud_char]
        block = self._read_until(bytes([ETX]), time.monotonic() + TIMEOUT_S, extra=1)
        start = block.index(STX)
        etx = block.index(ETX, start)
        body, check = block[start + 1 : etx + 1], block[etx + 1]
        if bcc(body) != check:
            raise ValueError(f"optical port: BCC {check:#04x} != {bcc(body):#04x}")
        text = body[:-1].decode("ascii")
        if not text.endswith("!\r\n"):
            raise ValueError(f"optical port: readout does not end with '!': {text[-20:]!r}")
        return {m.group(1): (m.group(2), m.group(3)) for m in DATA_SET.finditer(text)}

    def write_register(self, address: str, value: str, password: str) -> bytes:
        """Programming mode: P1 password, W1 ``address(value)``, B0. The meter's W1 answer."""
        ident = self.sign_on()
        baud_char = ident[3]
        self._send(bytes([ACK]) + b"0" + baud_char.encode("ascii") + b"1\r\n")
        self.port.baudrate = MODE_C_BAUD[baud_char]
        self._read_until(bytes([ETX]), time.monotonic() + TIMEOUT_S, extra=1)  # P0 (address)
        for command, data in (("P1", f"({password})"), ("W1", f"{address}({value})")):
            body = command.encode("ascii") + bytes([STX]) + data.encode("ascii") + bytes([ETX])
            self.port.reset_input_buffer()
            self._send(bytes([SOH]) + body + bytes([bcc(body)]))
            deadline = time.monotonic() + TIMEOUT_S
            answer = b""
            while not answer:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"optical port: no answer to {command}")
                answer = bytes(b & 0x7F for b in self.port.read(1))
            if answer[0] != ACK:
                answer += self._read_until(bytes([ETX]), deadline, extra=1)
            if command == "P1" and answer[0] != ACK:
                raise ValueError(f"optical port: password refused: {answer!r}")
        body = b"B0" + bytes([ETX])
        self._send(bytes([SOH]) + body + bytes([bcc(body)]))
        time.sleep(0.2)  # the meter goes back to 300 baud; the next sign-on waits for that
        return answer


# ---- MSR605 magnetic card writer --------------------------------------------------------------

ESC, FS = 0x1B, 0x1C


class CardWriterClient:
    """The MSR605 ESC command subset at 9600 8N1."""

    def __init__(self, address: str) -> None:
        self.port = serial.serial_for_url(address, baudrate=9600, timeout=0.05)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> CardWriterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reply(self, n: int) -> bytes:
        deadline = time.monotonic() + TIMEOUT_S
        data = b""
        while len(data) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"card writer: {n} bytes expected, got {data!r}")
            data += self.port.read(n - len(data))
        return data

    def test_link(self) -> bool:
        """``ESC e`` -> ``ESC y``: the communication test."""
        self.port.reset_input_buffer()
        self.port.write(bytes([ESC, ord("e")]))
        return self._reply(2) == bytes([ESC, ord("y")])

    def write_tracks(self, tracks: dict[int, str]) -> int:
        """``ESC w ESC s (ESC n data)... ? FS``; the status byte of the answer ``ESC status``."""
        block = bytearray([ESC, ord("a"), ESC, ord("w"), ESC, ord("s")])
        for track in sorted(tracks):
            block += bytes([ESC, track]) + tracks[track].encode("ascii")
        block += b"?" + bytes([FS])
        self.port.reset_input_buffer()
        self.port.write(bytes(block))
        answer = self._reply(2)
        if answer[0] != ESC:
            raise ValueError(f"card writer: answer {answer!r} does not start with ESC")
        return answer[1]


# ---- the camera and a segment sampler -------------------------------------------------------


def snapshot(url: str) -> Image.Image:
    """One camera frame by HTTP GET (no proxy: the camera is on this machine)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise ValueError(f"camera: HTTP {response.status}")
        if response.getheader("Content-Type") != "image/png":
            raise ValueError(f"camera: {response.getheader('Content-Type')} is not a PNG")
    finally:
        conn.close()
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


#: Seven-segment glyphs (segments a-g) -> character; S shares 5's glyph, O shares 0's.
GLYPHS = {
    "": " ", "abcdef": "0", "bc": "1", "abdeg": "2", "abcdg": "3", "bcfg": "4", "acdfg": "5",
    "acdefg": "6", "abc": "7", "abcdefg": "8", "abcdfg": "9", "g": "-", "d": "_",
    "abcefg": "A", "cdefg": "b", "adef": "C", "deg": "c", "bcdeg": "d", "adefg": "E",
    "aefg": "F", "acdef": "G", "bcefg": "H", "cefg": "h", "ef": "I", "c": "i", "bcde": "J",
    "def": "L", "ceg": "n", "cdeg": "o", "abefg": "P", "eg": "r", "defg": "t", "bcdef": "U",
    "cde": "u", "bcdfg": "y",
}  # fmt: skip


def as_lcd_reads(text: str) -> str:
    """``text`` as a seven-segment display can be read back (S reads 5, O reads 0)."""
    return text.replace("S", "5").replace("O", "0")


class SegmentSampler:
    """Reads a frame with a calibrated segment map: mean intensity inside each segment's
    polygons, lit where darker than a threshold found in the frame's own intensities."""

    def __init__(self, map_path: str | Path) -> None:
        doc = yaml.safe_load(Path(map_path).read_text())
        width, height = doc["size"]
        self.size = (int(width), int(height))
        shapes: dict[str, list] = {}
        for index, cell in enumerate(doc["digits"]):
            for segment, shape in cell.items():
                shapes[f"d{index + 1}.{segment}"] = shape
        for name, shape in doc["annunciators"].items():
            shapes[f"ann.{name}"] = shape
        self.digits = len(doc["digits"])
        self.masks = {sid: self._mask(shape) for sid, shape in shapes.items()}

    def _mask(self, shape: list) -> np.ndarray:
        polygons = [shape] if isinstance(shape[0][0], int | float) else shape
        image = Image.new("L", self.size, 0)
        draw = ImageDraw.Draw(image)
        for polygon in polygons:
            draw.polygon([(float(x), float(y)) for x, y in polygon], fill=255)
        mask = np.asarray(image) > 0
        if not mask.any():
            raise ValueError("segment map: a segment covers no pixel")
        return mask

    def lit(self, frame: Image.Image) -> set[str]:
        """Segment ids that are dark (lit LCD segments are dark on the glass)."""
        if frame.size != self.size:
            raise ValueError(f"frame is {frame.size}, the map is for {self.size}")
        grey = np.asarray(frame.convert("L"), float)
        means = {sid: float(grey[mask].mean()) for sid, mask in self.masks.items()}
        levels = sorted(means.values())
        gaps = [(b - a, (a + b) / 2) for a, b in itertools.pairwise(levels)]
        widest, threshold = max(gaps)
        if widest < 0.25 * (levels[-1] - levels[0] + 1e-9) or widest < 20:
            raise ValueError("frame: lit and unlit segments cannot be told apart")
        return {sid for sid, mean in means.items() if mean < threshold}

    def read(self, frame: Image.Image) -> tuple[str, set[str]]:
        """(text on the digit cells, lit annunciator names)."""
        lit = self.lit(frame)
        text = ""
        for index in range(1, self.digits + 1):
            bars = "".join(s for s in "abcdefg" if f"d{index}.{s}" in lit)
            if bars not in GLYPHS:
                raise ValueError(f"cell {index}: segments {bars!r} are no character")
            text += GLYPHS[bars] + ("." if f"d{index}.dp" in lit else "")
        return text.strip(), {sid[4:] for sid in lit if sid.startswith("ann.")}


# ---- SCPI ---------------------------------------------------------------------------------


def open_scpi(manager: pyvisa.ResourceManager, address: str) -> MessageBasedResource:
    """An instrument by its VISA address with ``\\n`` terminations."""
    resource = manager.open_resource(
        address, read_termination="\n", write_termination="\n", timeout=int(TIMEOUT_S * 1000)
    )
    assert isinstance(resource, MessageBasedResource)
    return resource
