"""Magnetic card carrier: the MSR605 card writer driver, the card layout, the presenters.

MSR605 (MSR206 command set, ISO mode) at 9600 8N1; every command starts with ESC:

==================  ===================================================================
``ESC a``           reset (no reply)
``ESC e``           communication test -> ``ESC y``
``ESC t``           model -> ``ESC <model> S``
``ESC v``           firmware -> ``ESC REV?X.XX``
``ESC x``/``ESC y`` high / low coercivity -> ``ESC <status>``
``ESC d``           coercivity? -> ``ESC h`` / ``ESC l`` (either case)
``ESC w <block>``   write ISO tracks -> ``ESC <status>`` (after the card is swiped)
``ESC r``           read ISO tracks -> ``ESC s ESC 01 t1 ESC 02 t2 ESC 03 t3 ? FS ESC <status>``
==================  ===================================================================

Data block: ``ESC s``, then per track ``ESC 01|02|03`` (binary track numbers) and its
characters without sentinels, ended by ``? FS``. Status ``0`` is success; ``1`` read/write
error, ``2`` command format error, ``4`` invalid command, ``9`` invalid card swipe raise
:class:`~instruments.keypad.CommandRefused` with that code. A write or read waits for the
swipe up to ``swipe_timeout_s``; on a timeout the writer is reset (``ESC a``) so it does not
write the next card that comes along.

The card layout (:class:`CardLayout`) is PROVISIONAL: the IEC 62055-51 magnetic card layout is
not public, so a meter's card profile declares where the token sits.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from dut.card import (  # noqa: F401  (re-exported: the driver's card layout)
    SENTINELS,
    TRACK_CAPACITY,
    TRACK_CHARACTERS,
    CardLayout,
    iso_track_problem,
)
from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    InstrumentTimeout,
    ProtocolViolation,
    register,
)
from instruments.keypad import CommandRefused, SerialLink, check_options, escaped

ESC, FS = 0x1B, 0x1C
LINE_SPEED = 9600
STATUS_TEXT = {
    "1": "read/write error",
    "2": "command format error",
    "4": "invalid command",
    "9": "invalid card swipe",
}
_ERROR_STATUS = frozenset(ord(c) for c in STATUS_TEXT)
_STATUS = _ERROR_STATUS | {ord("0")}


def _reply_framer(length: int, *, model: bool = False) -> Callable[[bytes], tuple[int, int] | None]:
    """``ESC`` and ``length - 1`` bytes, or ``ESC <error status>`` alone."""

    def framer(buffer: bytes) -> tuple[int, int] | None:
        start = buffer.find(bytes([ESC]))
        if start < 0 or len(buffer) < start + 2:
            return None
        if buffer[start + 1] in _ERROR_STATUS:
            if not model:
                return start, start + 2
            # A model reply "ESC 1 S" starts like status 1: the S decides.
            if len(buffer) < start + 3:
                return None
            if buffer[start + 2] != ord("S"):
                return start, start + 2
        if len(buffer) < start + length:
            return None
        return start, start + length

    return framer


def _read_framer(buffer: bytes) -> tuple[int, int] | None:
    """``ESC s ... FS ESC <status>``, or ``ESC <error status>`` alone."""
    start = buffer.find(bytes([ESC]))
    if start < 0 or len(buffer) < start + 2:
        return None
    if buffer[start + 1] != ord("s"):
        return start, start + 2
    fs = buffer.find(bytes([FS]), start)
    if fs < 0 or len(buffer) < fs + 3:
        return None
    return start, fs + 3


@register
class Msr605(Driver):
    """An MSR605 (MSR206-compatible) magnetic card writer (bench name ``msr605``).

    Options: ``baudrate`` (9600), ``swipe_timeout_s`` (how long a write or read waits for
    the card to be swiped; 30 s), ``coercivity`` (``"hi"``/``"lo"``: set before the first
    write).
    """

    name = "msr605"
    role = "card"

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 2.0,
        baudrate: int = LINE_SPEED,
        swipe_timeout_s: float = 30.0,
        coercivity: Literal["hi", "lo"] | None = None,
        **options: Any,
    ) -> None:
        check_options(self.name, options)
        if not swipe_timeout_s > 0:
            raise ValueError("swipe_timeout_s must be positive")
        if coercivity not in (None, "hi", "lo"):
            raise ValueError(f"coercivity {coercivity!r} is not 'hi' or 'lo'")
        super().__init__(
            address,
            timeout_s=timeout_s,
            baudrate=baudrate,
            swipe_timeout_s=swipe_timeout_s,
            coercivity=coercivity,
        )
        self.swipe_timeout_s = swipe_timeout_s
        self._wanted_coercivity = coercivity
        self._lock = threading.Lock()
        self._link = SerialLink(self, baudrate=baudrate)
        self._link.open()

    # -- roles.CardWriter -----------------------------------------------------------------

    def identify(self) -> Identity:
        """Communication test (``ESC e``), model (``ESC t``), firmware (``ESC v``)."""
        with self._exclusive():
            self._test()
            model = self._ask(b"t", 3, "model", model=True)
            if model[2:3] != b"S":
                raise self.error(ProtocolViolation, f"malformed model reply {escaped(model)}")
            firmware = self._ask(b"v", 9, "firmware")[1:].decode("ascii", errors="replace")
        model_char = chr(model[1])
        raw = f"model {model_char}S firmware {firmware}"
        return Identity("MSR605", f"model {model_char}", "", firmware, raw=raw)

    def reset(self) -> None:
        """``ESC a`` (drop whatever the writer was doing), then the communication test."""
        with self._exclusive():
            self._reset()
            self._test()

    def set_coercivity(self, level: Literal["hi", "lo"]) -> None:
        """``ESC x`` (hi-co) or ``ESC y`` (lo-co), verified with ``ESC d``."""
        if level not in ("hi", "lo"):
            raise ValueError(f"coercivity {level!r} is not 'hi' or 'lo'")
        with self._exclusive():
            self._set_coercivity(level)
            self._wanted_coercivity = None  # an explicit setting overrides the option

    def coercivity(self) -> Literal["hi", "lo"]:
        """``ESC d``: the coercivity writes are set for."""
        with self._exclusive():
            return self._coercivity()

    def write_tracks(self, tracks: dict[int, str]) -> None:
        """``ESC w``: write the tracks (data without sentinels) on the next card swiped.

        Only what would break the command's framing is refused here (ValueError); whether a
        track can carry the data is the writer's to say (status 2, command format error).
        """
        block = _data_block(tracks)
        with self._exclusive():
            if self._wanted_coercivity is not None:
                self._set_coercivity(self._wanted_coercivity)
                self._wanted_coercivity = None
            self._discard()
            self._send(b"\x1bw" + block)
            self.transcript.note("waiting for the card to be swiped")
            reply = self._await_swipe(_reply_framer(2), "write status")
            self._check_status(reply[1], "write")

    def read_tracks(self) -> dict[int, str]:
        """``ESC r``: the tracks of the next card swiped, sentinels stripped (empty tracks
        left out)."""
        with self._exclusive():
            self._discard()
            self._send(b"\x1br")
            self.transcript.note("waiting for the card to be swiped")
            reply = self._await_swipe(_read_framer, "read data")
            if reply[1] != ord("s"):
                self._check_status(reply[1], "read")
                raise self.error(ProtocolViolation, f"read: unexpected reply {escaped(reply)}")
            self._check_status(reply[-1], "read")
            if reply[-2] != ESC or reply[-4:-2] != b"?\x1c":
                raise self.error(ProtocolViolation, f"read: malformed data block {escaped(reply)}")
            return self._parse_tracks(reply[2:-4])

    def close(self) -> None:
        """Close the port. Idempotent."""
        got = self._lock.acquire(timeout=self.swipe_timeout_s + self.timeout_s)
        try:
            self._link.close()
        finally:
            if got:
                self._lock.release()

    # -- commands -------------------------------------------------------------------------

    def _exclusive(self) -> _Exclusive:
        return _Exclusive(self)

    def _reset(self) -> None:
        self._discard()
        self._send(b"\x1ba")

    def _test(self) -> None:
        reply = self._ask(b"e", 2, "communication test")
        if reply[1:] != b"y":
            raise self.error(ProtocolViolation, f"communication test answered {escaped(reply)}")

    def _set_coercivity(self, level: Literal["hi", "lo"]) -> None:
        reply = self._ask(b"x" if level == "hi" else b"y", 2, f"set {level}-co")
        self._check_status(reply[1], f"set {level}-co")
        if self._coercivity() != level:
            raise self.error(ProtocolViolation, f"writer did not switch to {level}-co")

    def _coercivity(self) -> Literal["hi", "lo"]:
        reply = self._ask(b"d", 2, "coercivity")
        answer = chr(reply[1]).lower()
        if answer == "h":
            return "hi"
        if answer == "l":
            return "lo"
        self._check_status(reply[1], "coercivity")
        raise self.error(ProtocolViolation, f"coercivity answered {escaped(reply)}")

    def _ask(self, command: bytes, length: int, what: str, *, model: bool = False) -> bytes:
        """``ESC command``; the ``length``-byte reply (``ESC <error status>`` raises)."""
        self._discard()
        self._send(b"\x1b" + command)
        reply = self._receive(_reply_framer(length, model=model), self.timeout_s, what)
        if len(reply) == 2 and reply[1] in _ERROR_STATUS:
            self._check_status(reply[1], what)
        return reply

    def _await_swipe(self, framer: Callable[[bytes], tuple[int, int] | None], what: str) -> bytes:
        try:
            return self._receive(framer, self.swipe_timeout_s, what)
        except InstrumentTimeout:
            # Cancel the pending command so the writer does not act on the next card.
            self._reset()
            raise self.error(
                InstrumentTimeout, f"no card swiped (or no answer) within {self.swipe_timeout_s} s"
            ) from None

    def _check_status(self, status: int, what: str) -> None:
        if status == ord("0"):
            return
        text = STATUS_TEXT.get(chr(status))
        if text is None:
            raise self.error(ProtocolViolation, f"{what}: unknown status byte {status:02X}")
        raise CommandRefused(
            f"{what}: {text} (status {chr(status)})",
            code=chr(status),
            text=text,
            role=self.role,
            address=self.address,
        )

    def _parse_tracks(self, block: bytes) -> dict[int, str]:
        """``ESC 01 %data? ESC 02 ;data? ...`` -> ``{track: data}``."""
        tracks: dict[int, str] = {}
        if block and block[0] != ESC:
            raise self.error(ProtocolViolation, "read: data before the first track marker")
        for segment in block.split(bytes([ESC]))[1:]:
            if not segment:
                raise self.error(ProtocolViolation, "read: empty track marker")
            marker, data = segment[0], segment[1:].decode("ascii", errors="replace")
            track = marker - 0x30 if marker in b"123" else marker
            if track not in SENTINELS or track in tracks:
                raise self.error(ProtocolViolation, f"read: bad track marker {marker:02X}")
            if data:
                start, end = SENTINELS[track]
                if not (len(data) >= 2 and data.startswith(start) and data.endswith(end)):
                    raise self.error(
                        ProtocolViolation, f"read: track {track} {data!r} lacks its sentinels"
                    )
                data = data[1:-1]
            tracks[track] = data
        return {track: data for track, data in tracks.items() if data}

    # -- bytes ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.transcript.tx(data)
        self._link.write(data)

    def _receive(
        self, framer: Callable[[bytes], tuple[int, int] | None], timeout_s: float, what: str
    ) -> bytes:
        junk, reply = self._link.read_message(
            framer, timeout_s=timeout_s, max_bytes=1024, what=what
        )
        if junk:
            self.transcript.note(f"skipped before the {what}: {escaped(junk, 200)}")
        self.transcript.rx(reply)
        return reply

    def _discard(self) -> None:
        dropped = self._link.discard_input()
        if dropped:
            self.transcript.note(f"discarded before the command: {escaped(dropped, 200)}")


class _Exclusive:
    """One command at a time; a fault notes itself in the transcript."""

    def __init__(self, driver: Msr605) -> None:
        self._driver = driver

    def __enter__(self) -> None:
        d = self._driver
        if not d._lock.acquire(timeout=d.swipe_timeout_s + d.timeout_s):
            raise d.error(InstrumentTimeout, "another command is still running")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, InstrumentError):
            self._driver.transcript.note(f"{type(exc).__name__}: {exc.reason}")
        self._driver._lock.release()


def _data_block(tracks: Mapping[int, str]) -> bytes:
    """``ESC s (ESC n data)... ? FS``; ValueError for what the framing cannot carry."""
    if not isinstance(tracks, Mapping) or not tracks:
        raise ValueError("write_tracks needs at least one track")
    block = bytearray(b"\x1bs")
    for track in sorted(tracks):
        data = tracks[track]
        if isinstance(track, bool) or track not in TRACK_CAPACITY:
            raise ValueError(f"there is no track {track!r} (1, 2 or 3)")
        if not isinstance(data, str) or not data.isascii() or not data.isprintable():
            raise ValueError(f"track {track}: {data!r} is not printable ASCII")
        block += bytes([ESC, track]) + data.encode("ascii")
    return bytes(block + b"?\x1c")


# -- presenters ------------------------------------------------------------------------------

OPERATOR_MESSAGE = (
    "Take the card just written from the card writer, insert it in the meter's card reader, "
    "then confirm."
)


@register
class OperatorCardPresenter(Driver):
    """An operator moves the written card into the meter (bench name ``operator``).

    ``prompt(message)`` shows the message and returns once the operator confirms (raising
    if they refuse); without one the console is used (the message on stderr, Enter on
    stdin). ``confirm_timeout_s`` (600 s) bounds the wait: a prompt still unanswered then
    is an :class:`InstrumentTimeout`, and a later :meth:`present` refuses to run until it
    has been answered.
    """

    name = "operator"
    role = "presenter"

    def __init__(
        self,
        address: str = "operator",
        *,
        timeout_s: float = 2.0,
        prompt: Callable[[str], None] | None = None,
        confirm_timeout_s: float = 600.0,
        message: str = OPERATOR_MESSAGE,
        **options: Any,
    ) -> None:
        check_options(self.name, options)
        if not confirm_timeout_s > 0:
            raise ValueError("confirm_timeout_s must be positive")
        super().__init__(address, timeout_s=timeout_s, confirm_timeout_s=confirm_timeout_s)
        self._prompt = prompt
        self.confirm_timeout_s = confirm_timeout_s
        self.message = message
        self._pending: threading.Thread | None = None

    def identify(self) -> Identity:
        how = "console" if self._prompt is None else "prompt"
        return Identity("stslab", "operator card presenter", "", "", raw=how)

    def present(self, timeout_s: float | None = None) -> None:
        """Ask the operator to move the card; return once they confirm."""
        wait = self.confirm_timeout_s if timeout_s is None else timeout_s
        self.transcript.note(f"asked the operator: {self.message}")
        if self._prompt is None:
            _console_confirm(self, self.message, wait)
        else:
            self._ask(wait)
        self.transcript.note("the operator confirmed")

    def close(self) -> None:
        """Forget a prompt left unanswered (its thread ends when the prompt returns)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.join(timeout=0.1)

    def _ask(self, wait: float) -> None:
        if self._pending is not None:
            if self._pending.is_alive():
                raise self.error(InstrumentError, "the operator has not answered the last prompt")
            self._pending = None
        prompt = self._prompt
        assert prompt is not None
        failure: list[BaseException] = []

        def run() -> None:
            try:
                prompt(self.message)
            except BaseException as exc:  # reported to the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=run, name="operator-prompt", daemon=True)
        thread.start()
        thread.join(wait)
        if thread.is_alive():
            self._pending = thread
            raise self.error(InstrumentTimeout, f"the operator did not confirm within {wait} s")
        if failure:
            raise self.error(
                InstrumentError, f"the operator did not confirm: {failure[0]}"
            ) from failure[0]


def _console_confirm(driver: Driver, message: str, wait: float) -> None:
    """The message on stderr, then a line on stdin within ``wait`` seconds."""
    stream = sys.stdin
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        raise driver.error(InstrumentError, "no operator console (stdin is not readable)") from None
    sys.stderr.write(f"\n{message} [Enter] ")
    sys.stderr.flush()
    deadline = time.monotonic() + wait
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise driver.error(InstrumentTimeout, f"the operator did not confirm within {wait} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise driver.error(InstrumentError, "the operator console closed")
        if b"\n" in chunk:
            return


@register
class AutomaticCardPresenter(Driver):
    """A presenter that moves every written card by itself (bench name ``automatic``).

    SimLab's is one: the harness side only waits ``settle_s`` (0.5 s) for the meter to take
    the card.
    """

    name = "automatic"
    role = "presenter"

    def __init__(
        self,
        address: str = "automatic",
        *,
        timeout_s: float = 2.0,
        settle_s: float = 0.5,
        **options: Any,
    ) -> None:
        check_options(self.name, options)
        if settle_s < 0:
            raise ValueError("settle_s must not be negative")
        super().__init__(address, timeout_s=timeout_s, settle_s=settle_s)
        self.settle_s = settle_s
        self._closed = threading.Event()

    def identify(self) -> Identity:
        return Identity("stslab", "automatic card presenter", "", "", raw=self.address)

    def present(self, timeout_s: float | None = None) -> None:
        """Wait the settle time (cut short by :meth:`close`)."""
        self.transcript.note(f"automatic presenter: waiting {self.settle_s} s")
        self._closed.wait(self.settle_s)

    def close(self) -> None:
        self._closed.set()
